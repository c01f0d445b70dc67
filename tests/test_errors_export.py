"""Exporters on bad input (issue 11): an explicit path that is missing, unwritable output, stale temporaries,
quiet output. One line and a non-zero exit, nothing half-written, and the other formats carry on."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from export import all as export_all
from export.cli import run
from export.to_onnx import build
from model.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def nodata_ckpt(shipped, tmp_path_factory):
    """The shipped checkpoint as seen on a machine without its training data (split hash matches nothing)."""
    ck = load_checkpoint(shipped)
    p = tmp_path_factory.mktemp("ck") / "nodata.pt"
    torch.save({**ck, "data": {**ck["data"], "root": "/nonexistent/ph2", "split_hash": "0" * 16}}, p)
    return p


def test_explicit_eval_data_that_does_not_exist_is_an_error(shipped, tmp_path):
    with pytest.raises(SystemExit, match=r"^error: .*nowhere: --eval-data folder not found; pass a dataset folder"):
        run("onnx", build, ["--weights", str(shipped), "--out", str(tmp_path / "m.onnx"), "--eval-data", str(tmp_path / "nowhere")])
    assert not list(tmp_path.iterdir())
    with pytest.raises(SystemExit, match=r"nowhere: --eval-data folder not found"):
        export_all.main(["--weights", str(shipped), "--formats", "onnx", "--out", str(tmp_path), "--eval-data", str(tmp_path / "nowhere")])
    with pytest.raises(SystemExit, match=r"nowhere: --calib folder not found; pass a folder of real lesion images"):
        export_all.main(["--weights", str(shipped), "--formats", "onnx", "--out", str(tmp_path), "--calib", str(tmp_path / "nowhere")])
    with pytest.raises(SystemExit, match=r"nowhere: calibration folder not found"):
        run("onnx", build, ["--weights", str(shipped), "--quantize", "int8", "--out", str(tmp_path / "m.onnx"),
                            "--calib", str(tmp_path / "nowhere")])
    assert not list(tmp_path.iterdir())


def test_default_eval_data_falls_back_to_synthetic_and_says_so(nodata_ckpt, tmp_path, capsys):
    n = run("onnx", build, ["--weights", str(nodata_ckpt), "--out", str(tmp_path / "m.onnx"), "--eval-count", "2"])
    out, err = capsys.readouterr()
    assert n["eval"]["synthetic"] and n["eval"]["n_images"] == 2
    assert "note: the checkpoint's data (/nonexistent/ph2) is not here: parity is checked on 2 SYNTHETIC images" in err
    assert '"eval": "SYNTHETIC images"' in out and str(tmp_path / "m.onnx") in out


@pytest.mark.parametrize("flag", ["--eval-count", "--calib-count"])
def test_negative_counts_are_refused(shipped, tmp_path, flag):
    with pytest.raises(SystemExit, match=rf"{flag} must be at least 0 \(got -1\)"):
        run("onnx", build, ["--weights", str(shipped), "--out", str(tmp_path / "m.onnx"), flag, "-1"])


def test_output_folder_that_cannot_be_created(shipped, tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(SystemExit, match=r"afile: is a file, not a folder; pass --out with a folder"):
        run("onnx", build, ["--weights", str(shipped), "--out", str(tmp_path / "afile" / "m.onnx")])
    with pytest.raises(SystemExit, match=r"afile/sub: cannot create the folder \(Not a directory\)"):
        run("onnx", build, ["--weights", str(shipped), "--out", str(tmp_path / "afile" / "sub" / "m.onnx")])


def test_read_only_folder_is_one_line_and_leaves_nothing(shipped, nodata_ckpt, tmp_path, monkeypatch):
    """Root ignores chmod, so the refusal is simulated where the OS gives it: at the check, and mid-write."""
    import core.safeio

    real_access = os.access
    monkeypatch.setattr(core.safeio.os, "access", lambda p, m: False if str(p) == str(tmp_path / "ro") else real_access(p, m))
    (tmp_path / "ro").mkdir()
    with pytest.raises(SystemExit, match=r"ro: folder is not writable; pass --out with a writable location"):
        run("onnx", build, ["--weights", str(shipped), "--out", str(tmp_path / "ro" / "m.onnx")])
    with pytest.raises(SystemExit, match=r"ro: folder is not writable"):  # once, before any format is tried
        export_all.main(["--weights", str(shipped), "--out", str(tmp_path / "ro")])

    def denied(model, meta, quantize, calib, path):
        Path(path).write_bytes(b"partial")
        raise PermissionError(13, "Permission denied", str(path))
    # the export writes a hidden temporary first; the message names the file the user asked for
    with pytest.raises(SystemExit, match=rf"^error: {tmp_path}/m\.onnx: cannot write it \(Permission denied\); pass --out in a writable folder$"):
        run("onnx", denied, ["--weights", str(nodata_ckpt), "--out", str(tmp_path / "m.onnx"), "--eval-count", "1"])
    assert not list(tmp_path.glob("*.onnx")) and not list(tmp_path.glob(".m.*"))


def test_export_all_goes_on_after_a_broken_tool(nodata_ckpt, tmp_path, monkeypatch, capsys):
    import export.to_onnx

    real = export.to_onnx.build

    def flaky(model, meta, quantize, calib, path):
        if quantize == "fp16":
            raise RuntimeError("converter exploded\nat src/x.cpp:1")
        return real(model, meta, quantize, calib, path)
    monkeypatch.setattr(export.to_onnx, "build", flaky)
    with pytest.raises(SystemExit) as e:
        export_all.main(["--weights", str(nodata_ckpt), "--formats", "onnx", "--out", str(tmp_path)])
    assert e.value.code == 1
    out = capsys.readouterr().out
    assert "| nodata.onnx | 156 |" in out and "pass |" in out  # the format before the failure is written
    assert "FAIL: " in out and "RuntimeError: converter exploded); rerun with --verbose" in out
    assert "SYNTHETIC" in out and f"in {tmp_path}/" in out
    assert (tmp_path / "nodata.onnx").is_file() and not (tmp_path / "nodata_fp16.onnx").exists()


def test_stale_temporaries_of_a_killed_export_are_removed(nodata_ckpt, tmp_path):
    dead = 2 ** 22 + 12345  # above the default pid_max: no such process
    stale = [tmp_path / f".m.tmp{dead}.onnx", tmp_path / f".m.numerics.json.tmp{dead}.abc"]
    for p in stale:
        p.write_bytes(b"half")
    mine = tmp_path / f".m.tmp{os.getpid()}x.onnx"  # a live process's temporary is left alone
    mine.write_bytes(b"busy")
    run("onnx", build, ["--weights", str(nodata_ckpt), "--out", str(tmp_path / "m.onnx"), "--eval-count", "1"])
    assert not stale[0].exists() and mine.exists()
    assert (tmp_path / "m.onnx").is_file()
    from core.safeio import atomic_write_text, clean_stale_temps, temp_prefix

    atomic_write_text(tmp_path / "m.numerics.json", "{}")  # the next atomic write of a file clears its own
    assert not stale[1].exists()
    assert clean_stale_temps(tmp_path, temp_prefix("m")) == []


def _cli(*args):
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, cwd=REPO)


def test_export_is_quiet_unless_verbose(shipped, ph2, tmp_path):
    """INT8 ONNX: onnxruntime's quantizer logs 'Please consider pre-processing' warnings; hidden by default."""
    common = ["export/to_onnx.py", "--weights", shipped, "--quantize", "int8", "--calib", ph2, "--calib-count", "4",
              "--eval-data", ph2, "--eval-count", "2"]
    p = _cli(*common, "--out", tmp_path / "q.onnx")
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stderr == "", p.stderr[-2000:]
    lines = p.stdout.splitlines()
    assert len(lines) == 1 and '"wrote": [' in lines[0] and str(tmp_path / "q.onnx") in lines[0]
    p = _cli(*common, "--out", tmp_path / "v.onnx", "--verbose")
    assert p.returncode == 0 and "pre-processing" in p.stderr


def test_help_of_the_export_entry_points():
    p = _cli("export/cli.py", "--help")
    assert p.returncode == 0 and "onnx = export/to_onnx.py" in p.stdout and "FORMAT --help" in p.stdout
    p = _cli("export/to_tflite.py", "--help")
    assert p.returncode == 0 and "output file, its name ending in .tflite" in " ".join(p.stdout.split())
    p = _cli("export/cli.py", "coreml")
    # argparse errors take the toolkit's one-line form (core.clitools.ArgumentParser): exit 1, no usage block
    assert p.returncode == 1 and "invalid choice: 'coreml'" in p.stderr and len(p.stderr.strip().splitlines()) == 1
