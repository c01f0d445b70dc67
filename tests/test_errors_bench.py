"""benchmarks/ on bad input and where results go (issue 11)."""
import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks import run as bench
from tests.conftest import save_png
from tests.test_data import make_generic

REPO = Path(__file__).resolve().parents[1]
TINY = ["--formats", "onnx", "--threads", "1", "--eval-count", "2", "--warmup", "0", "--runs", "2", "--min-seconds", "0",
        "--no-progress"]


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.mark.parametrize("case,message", [
    ("corrupt", r"a1\.png: cannot decode image"),
    ("empty", r"data: folder is empty"),
    ("weights", r"noise\.pt: not a readable PyTorch checkpoint"),
    ("mask", r"b2_segmentation\.png: mask is 10x10 but its image is 48x40"),
])
def test_bad_data_or_weights_are_one_line(tmp_path, case, message):
    data = tmp_path / "data"
    data.mkdir()
    argv = ["--data", str(data), "--out", str(tmp_path / "out"), "--split", "all", *TINY]
    if case != "empty":
        make_generic(data)
    if case == "corrupt":
        (data / "images" / "a1.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    if case == "mask":
        save_png(data / "masks" / "b2_segmentation.png", np.zeros((10, 10), np.uint8))
    if case == "weights":
        (tmp_path / "noise.pt").write_bytes(np.random.default_rng(0).bytes(4096))
        argv += ["--weights", str(tmp_path / "noise.pt")]
    with pytest.raises(SystemExit, match=r"^error: .*" + message):
        bench.main(argv)
    assert not list((tmp_path / "out").glob("*.npz")) if (tmp_path / "out").exists() else True


@pytest.mark.parametrize("argv,message", [
    (["--runs", "0"], r"--runs must be at least 1 \(got 0\)"),
    (["--warmup", "-1"], r"--warmup must be at least 0 \(got -1\)"),
    (["--min-seconds", "-1"], r"--min-seconds must be at least 0 \(got -1\.0\)"),
    (["--eval-count", "-2"], r"--eval-count must be at least 0 \(got -2\)"),
    (["--port", "0"], r"--port must be at least 1 \(got 0\)"),
    (["--port", "70000"], r"--port 70000: give a TCP port"),
    (["--device", "rpi"], r"this machine is not a Raspberry Pi .* or from here with --device rpi --host user@raspberrypi\.local"),
    (["--update-results", "--out", "x"], r"--update-results writes to benchmarks/results/; drop --out"),
    (["--formats", ""], r"^error: --formats '': name at least one format"),
    (["--formats", " , "], r"^error: --formats ' , ': name at least one format"),
    (["--identity", "/nope/key", "--host", "pi@192.0.2.1"], r"^error: --identity /nope/key: file not found"),
    (["--known-hosts", "/nope/kh", "--host", "pi@192.0.2.1"], r"^error: --known-hosts /nope/kh: file not found"),
])
def test_bad_arguments(argv, message):
    with pytest.raises(SystemExit, match=message):
        bench.main(argv + ["--no-progress"])


def test_runs_go_to_outputs_and_leave_committed_results_alone(ph2, tmp_path, monkeypatch, capsys):
    committed = {p: _sha(p) for p in (REPO / "benchmarks" / "results").glob("host.*")}
    assert committed, "benchmarks/results/host.* must be committed"
    res = bench.main(["--data", str(ph2), *TINY])
    assert (bench.DEFAULT_OUT / "host.json").is_file() and bench.DEFAULT_OUT.relative_to(REPO).parts[0] == "outputs"
    assert {p: _sha(p) for p in committed} == committed
    assert "committed benchmarks/results/ is unchanged" in capsys.readouterr().out
    assert res["results"][0]["name"] == "onnx"
    # --update-results is the one way to replace them (here pointed at a scratch folder)
    monkeypatch.setattr(bench, "RESULTS", tmp_path / "results")
    bench.main(["--data", str(ph2), "--update-results", *TINY])
    assert (tmp_path / "results" / "host.json").is_file() and (tmp_path / "results" / "host.md").is_file()
    assert not list((tmp_path / "results").glob("*.npz"))


def test_runner_help_names_no_hidden_flag():
    p = subprocess.run([sys.executable, str(REPO / "benchmarks" / "runner.py"), "--help"], capture_output=True, text=True)
    assert p.returncode == 0 and "--one" not in p.stdout and "--save-probs" in p.stdout


def test_profile_ops_bad_numbers():
    from benchmarks import profile_ops

    with pytest.raises(SystemExit, match=r"--runs must be at least 1 \(got 0\)"):
        profile_ops.main(["--runs", "0"])


def test_remote_bundle_is_self_contained(tmp_path):
    """What --host streams to a device (benchmarks/remote.py bundle()) must run the runner on its own, without
    torch: every module the runner imports travels with it."""
    import io
    import json
    import tarfile

    from benchmarks.remote import pack

    np.savez_compressed(tmp_path / "eval.npz", x=np.random.default_rng(0).random((1, 3, 256, 256), dtype=np.float32),
                        y=np.zeros((1, 256, 256), bool), ref=np.zeros((1, 256, 256), np.float16))
    with tarfile.open(fileobj=io.BytesIO(pack([REPO / "exports" / "aulunet_v3_ph2.onnx"], tmp_path / "eval.npz"))) as tar:
        tar.extractall(tmp_path / "device", filter="data")
    dev = tmp_path / "device"
    # no torch, and not the repository either (the editable install's finder would supply missing modules)
    code = ("import sys, runpy; sys.modules['torch'] = None; "
            "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in getattr(f, '__module__', '') "
            "and 'editable' not in getattr(type(f), '__module__', '')]; "
            "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")
    p = subprocess.run([sys.executable, "-c", code, str(dev / "benchmarks" / "runner.py"), "--one",
                        str(dev / "models" / "aulunet_v3_ph2.onnx"), "--eval", str(dev / "eval" / "eval.npz"), "--runs", "2",
                        "--warmup", "0", "--min-seconds", "0"], capture_output=True, text=True, cwd=dev,
                       env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert p.returncode == 0, p.stderr[-1500:]
    assert json.loads(p.stdout.splitlines()[-1])["n_runs"] >= 2


CORES = os.cpu_count() or 1
TOO_MANY = str(CORES + 1)
THREADS_MSG = rf"^error: --threads {TOO_MANY}: this machine has {CORES} cores?; give 1\.\.{CORES}$"


def test_exports_folder_missing_or_without_exports_is_one_line(ph2, tmp_path):
    """--exports /typo used to benchmark PyTorch alone and say nothing."""
    out = tmp_path / "out"
    with pytest.raises(SystemExit, match=r"^error: --exports \S*typo: folder not found; pass the folder that export/all\.py wrote"):
        bench.main(["--data", str(ph2), "--exports", str(tmp_path / "typo"), "--out", str(out), "--no-progress"])
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no models here\n")
    with pytest.raises(SystemExit, match=r"^error: --exports \S*empty: no exported file of aulunet_v3_\w+\.pt "
                                         r"\(e\.g\. aulunet_v3_\w+\.onnx\); run python export/all\.py .*or pass --formats torch$"):
        bench.main(["--data", str(ph2), "--exports", str(tmp_path / "empty"), "--out", str(out), "--no-progress"])
    assert not out.exists()


def test_too_many_threads_are_refused_by_every_benchmark(tmp_path):
    """--threads 1000 was accepted (35.6 s for what takes 2.6 s): refused before anything runs."""
    from benchmarks import profile_ops, runner, train_speed

    with pytest.raises(SystemExit, match=THREADS_MSG):
        bench.main(["--threads", f"1,{TOO_MANY}", "--out", str(tmp_path / "out"), "--no-progress"])
    with pytest.raises(SystemExit, match=THREADS_MSG):
        runner.main(["--models", str(REPO / "exports" / "aulunet_v3_ph2.onnx"), "--eval", str(tmp_path / "e.npz"),
                     "--threads", TOO_MANY])
    with pytest.raises(SystemExit, match=THREADS_MSG):
        profile_ops.main(["--threads", TOO_MANY])
    with pytest.raises(SystemExit, match=THREADS_MSG):
        train_speed.main(["--threads", TOO_MANY, "--json", str(tmp_path / "speed.json")])
    with pytest.raises(SystemExit, match=r"^error: --threads must be at least 0 \(got -2\)$"):
        train_speed.main(["--threads", "-2"])
    assert not (tmp_path / "out").exists() and not (tmp_path / "speed.json").exists()


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


@pytest.mark.parametrize("tool,argv", [
    ("run", ["--json", "benchmarks/results/host.json"]),
    ("run", ["--markdown", "benchmarks/results/host.md"]),
    ("run", ["--plot", "benchmarks/results/host.png"]),
    ("runner", ["--models", "exports/aulunet_v3_ph2.onnx", "--eval", "e.npz", "--json", "benchmarks/results/host.json"]),
    ("profile_ops", ["--json", "benchmarks/results/profile_ops_host.json"]),
    ("train_speed", ["--json", "benchmarks/results/train_speed_cpu.json"]),
])
def test_committed_results_only_with_update_results(tool, argv, monkeypatch):
    """Every benchmark refuses, before measuring anything, to write into benchmarks/results/ without --update-results."""
    import importlib

    monkeypatch.chdir(REPO)
    committed = {p: _sha(p) for p in (REPO / "benchmarks" / "results").iterdir()}
    target = argv[-1]
    with pytest.raises(SystemExit, match=rf"^error: {re.escape(target)}: is a committed result; pass --update-results"):
        importlib.import_module(f"benchmarks.{tool}").main(argv + (["--no-progress"] if tool != "profile_ops" else []))
    assert {p: _sha(p) for p in (REPO / "benchmarks" / "results").iterdir()} == committed


@pytest.mark.parametrize("argv,message", [
    (["--size", "100"], r"--size 100: give a multiple of 32"),
    (["--size", "0"], r"--size must be at least 32 \(got 0\)"),
    (["--steps", "0"], r"--steps must be at least 1 \(got 0\)"),
    (["--device", "gpu"], r"--device gpu: give auto, cpu or cuda\[:N\]"),
    (["--paths", " , "], r"--paths: name at least one path"),
])
def test_train_speed_bad_arguments(argv, message, tmp_path):
    from benchmarks import train_speed

    with pytest.raises(SystemExit, match=rf"^error: {message}"):
        train_speed.main(argv + ["--json", str(tmp_path / "speed.json"), "--no-progress"])
    assert not (tmp_path / "speed.json").exists()
