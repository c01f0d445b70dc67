"""benchmarks/runner.py, the device side: numpy and the runtimes only, no torch; a bad eval file in one line."""
import json
import re
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO


def test_runner_needs_no_torch(tmp_path):
    """The device side: block `import torch` and run the runner on an ONNX and a TFLite file."""
    np.savez_compressed(tmp_path / "eval.npz", x=np.random.default_rng(0).random((1, 3, 256, 256), dtype=np.float32),
                        y=np.zeros((1, 256, 256), bool), ref=np.zeros((1, 256, 256), np.float16))
    code = ("import sys, runpy; sys.modules['torch'] = None; sys.argv = sys.argv[1:]; "
            "runpy.run_path(sys.argv[0], run_name='__main__')")
    for name in ("aulunet_v3_ph2.onnx", "aulunet_v3_ph2_int8.tflite"):
        proc = subprocess.run([sys.executable, "-c", code, str(REPO / "benchmarks" / "runner.py"), "--one",
                               str(REPO / "exports" / name), "--eval", str(tmp_path / "eval.npz"), "--runs", "2",
                               "--warmup", "0", "--min-seconds", "0"], capture_output=True, text=True, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-500:]
        assert json.loads(proc.stdout.splitlines()[-1])["n_runs"] >= 2


def test_runner_help_names_no_hidden_flag():
    p = subprocess.run([sys.executable, str(REPO / "benchmarks" / "runner.py"), "--help"], capture_output=True, text=True)
    assert p.returncode == 0 and "--one" not in p.stdout and "--save-probs" in p.stdout


def _object_npz(path):
    np.savez(path, x=np.array([{"a": 1}], dtype=object), y=np.zeros((1, 4, 4), bool), ref=np.zeros((1, 4, 4), np.float16))


@pytest.mark.parametrize("case,reason", [
    ("pickle", r"a pickle or an unknown format, not an \.npz of arrays"),
    ("npy", r"a single \.npy array, not an \.npz archive"),
    ("no_ref", r"no array ref"),
    ("object", r"'x' holds Python objects, not numbers"),
    ("shape", r"y is \(1, 8, 8\), expected \(1, 4, 4\) to match x"),
    ("truncated", r"unreadable: BadZipFile"),
])
def test_runner_bad_eval_file_says_what_it_should_be(tmp_path, case, reason):
    """A bad --eval used to come back, once per model, as numpy's advice to load it 'unsafely using allow_pickle'."""
    import pickle

    from benchmarks import runner

    ev = tmp_path / "eval.npz"
    x = np.zeros((1, 3, 4, 4), np.float32)
    if case == "pickle":
        ev.write_bytes(pickle.dumps({"x": x}))
    elif case == "npy":
        with open(ev, "wb") as f:
            np.save(f, x)
    elif case == "no_ref":
        np.savez(ev, x=x, y=np.zeros((1, 4, 4), bool))
    elif case == "object":
        _object_npz(ev)
    elif case == "shape":
        np.savez(ev, x=x, y=np.zeros((1, 8, 8), bool), ref=np.zeros((1, 4, 4), np.float16))
    elif case == "truncated":
        np.savez(ev, x=x, y=np.zeros((1, 4, 4), bool), ref=np.zeros((1, 4, 4), np.float16))
        ev.write_bytes(ev.read_bytes()[:60])
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(SystemExit) as e:
        runner.main(["--models", str(REPO / "exports" / "aulunet_v3_ph2.onnx"), "--eval", str(ev), "--no-progress",
                     "--json", str(tmp_path / "res.json")])
    msg = str(e.value.code)
    assert re.fullmatch(rf"error: --eval \S+eval\.npz: not an eval set \({reason}\); give the \.npz of arrays x "
                        r"\(N,3,S,S float32\), y \(N,S,S bool\) and ref \(N,S,S float16\) that benchmarks/run\.py writes", msg), msg
    assert "allow_pickle" not in msg and "\n" not in msg
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no results file


def test_runner_child_reports_a_bad_eval_file_in_one_line(tmp_path):
    """The per-model child (what --host and arm-emu runs use) says the same, as the entry's error."""
    from benchmarks import runner

    _object_npz(tmp_path / "eval.npz")
    r = runner._child(REPO / "exports" / "aulunet_v3_ph2.onnx", 1, tmp_path / "eval.npz", 0, 1, 0.0, 0)
    assert r["error"].startswith("error: --eval ") and "'x' holds Python objects" in r["error"]
    assert "allow_pickle" not in r["error"]


def test_load_note_warns_past_the_limit():
    from benchmarks.runner import load_note
    from core.machine import OTHER_LOAD_WARN

    quiet = {"device": {"cores": 2}, "other_load_cores": 0.03}
    assert load_note(quiet) == ", other processes kept 0.03 of 2 cores busy"
    busy = {"device": {"cores": 2}, "other_load_cores": OTHER_LOAD_WARN + 0.5}
    assert load_note(busy).endswith("(a busy machine: rerun on a quiet one before trusting the latency)")
    assert load_note({"device": {"cores": 2}}) == ""  # results from before it was recorded


def test_a_row_knows_when_its_file_was_replaced(tmp_path):
    from benchmarks.runner import changed_since

    (tmp_path / "m.onnx").write_bytes(b"x" * 100)
    assert not changed_since({"file": "m.onnx", "file_bytes": 100}, tmp_path)
    assert changed_since({"file": "m.onnx", "file_bytes": 99}, tmp_path)  # re-exported since it was measured
    assert not changed_since({"file": "gone.onnx", "file_bytes": 99}, tmp_path)  # not here: nothing to say
    (tmp_path / "v.xml").write_bytes(b"x" * 10)
    (tmp_path / "v.bin").write_bytes(b"x" * 90)
    assert not changed_since({"file": "v.xml", "file_bytes": 100}, tmp_path)  # OpenVINO's .bin counted, as measured
    assert changed_since({"file": "v.xml", "file_bytes": 10}, tmp_path)
