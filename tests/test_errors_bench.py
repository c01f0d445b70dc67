"""benchmarks/ on bad input and where results go (issue 11)."""
import hashlib
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
    """What --host streams to a device (benchmarks/remote.py BUNDLE) must run the runner on its own, without
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
