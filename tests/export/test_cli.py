"""The shared export flow (export/cli.py, export/all.py): where results go, what is checked before exporting,
and checkpoints trained at another input size (issues 18 and 20)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import runtimes
from export import all as export_all
from export import cli
from export.cli import run
from export.to_onnx import build as onnx_build
from core.safeio import file_sha256
from model.networks.checkpoint import load_checkpoint
from core.errors import InputError
from tests.conftest import REPO

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def ckpt64(tmp_path_factory):
    """A tiny checkpoint trained by model/train.py at --size 64 on a small synthetic folder."""
    from model.data.synthetic import write_synthetic_dataset
    from model.train import main as train_main

    root = tmp_path_factory.mktemp("size64")
    data = write_synthetic_dataset(root / "data", n=12, shape=(96, 128))
    train_main(["--data", str(data), "--epochs", "1", "--limit-train", "8", "--limit-val", "4", "--size", "64",
                "--no-compile", "--no-progress", "--threads", "1", "--out", str(root / "run")])
    return root / "run" / "best.pt"


def committed_state():
    return {p.name: file_sha256(p) for p in sorted((REPO / "exports").iterdir()) if p.is_file()}


# ------------------------------------------------------------------ where the results go

def test_default_out_is_outputs_and_committed_exports_need_the_flag(ckpt64, tmp_path, monkeypatch):
    before = committed_state()
    monkeypatch.setattr(cli, "OUTPUTS", tmp_path / "outputs")
    monkeypatch.setattr(cli, "EXPORTS", tmp_path / "committed")  # stands in for exports/ (the flag's default)
    run("onnx", onnx_build, ["--weights", str(ckpt64), "--eval-count", "1"])
    assert (tmp_path / "outputs" / "best.onnx").is_file() and (tmp_path / "outputs" / "best.onnx.numerics.json").is_file()
    assert not (tmp_path / "committed").exists()
    run("onnx", onnx_build, ["--weights", str(ckpt64), "--eval-count", "1", "--update-results"])
    assert (tmp_path / "committed" / "best.onnx").is_file()
    assert committed_state() == before


@pytest.mark.parametrize("target", ["exports/aulunet_v3_ph2.onnx", "exports/new_name.onnx"])
def test_out_inside_committed_exports_is_refused_without_the_flag(shipped, target):
    before = committed_state()
    with pytest.raises(SystemExit, match=rf"^error: {target}: is a committed result; pass --update-results to replace "
                                         rf"it or leave --out out to write under outputs/exports/$"):
        run("onnx", onnx_build, ["--weights", str(shipped), "--eval-count", "1", "--out", str(REPO / target)])
    with pytest.raises(SystemExit, match=r"^error: exports: is a committed result; pass --update-results"):
        export_all.main(["--weights", str(shipped), "--formats", "onnx", "--out", str(REPO / "exports")])
    assert committed_state() == before


# ------------------------------------------------------------------ checked before anything is exported

@pytest.mark.parametrize("fmt,blocked", [("onnx", "m.onnx"), ("onnx", "m.onnx.numerics.json"), ("openvino", "m.bin"),
                                         ("openvino", "m.xml.numerics.json")])
def test_a_folder_in_the_way_is_refused_before_exporting(shipped, tmp_path, fmt, blocked):
    from core.formats import FORMATS

    (tmp_path / blocked).mkdir()
    out = tmp_path / f"m{FORMATS[fmt].suffix}"
    with pytest.raises(SystemExit, match=rf"^error: {tmp_path}/{blocked}: is a folder.*pass --out with a file name "
                                         rf"ending in {FORMATS[fmt].suffix}, or move the folder away$"):
        run(fmt, lambda *a: pytest.fail("exported before checking its outputs"),
            ["--weights", str(shipped), "--eval-count", "1", "--out", str(out)])
    assert sorted(p.name for p in tmp_path.iterdir()) == [blocked]


@pytest.mark.parametrize("q,flags", [("none", ["--calib", "."]), ("fp16", ["--calib", "."]), ("none", ["--calib-count", "4"])])
def test_calibration_flags_without_int8_are_refused(shipped, tmp_path, q, flags):
    with pytest.raises(SystemExit, match=rf"^error: {flags[0]} applies to --quantize int8 only \(got --quantize {q}\); "
                                         rf"drop {flags[0]} or pass --quantize int8$"):
        run("onnx", onnx_build, ["--weights", str(shipped), "--quantize", q, "--out", str(tmp_path / "m.onnx"), *flags])
    assert not list(tmp_path.iterdir())


def test_export_all_exports_a_repeated_format_once(ckpt64, tmp_path, capsys):
    rows = export_all.main(["--weights", str(ckpt64), "--formats", "onnx,onnx", "--out", str(tmp_path)])
    assert [r["artifact"] for r in rows] == ["best.onnx", "best_fp16.onnx", "best_int8.onnx"]
    assert all(r["passed"] for r in rows)


# ------------------------------------------------------------------ a checkpoint trained at 64x64

def test_checkpoint_at_64_exports_to_onnx_and_runs_at_its_size(ckpt64, tmp_path):
    n = run("onnx", onnx_build, ["--weights", str(ckpt64), "--out", str(tmp_path / "m.onnx"), "--eval-count", "2"])
    assert n["passed"] and n["input_size"] == 64
    seg = runtimes.load(tmp_path / "m.onnx", threads=1)
    assert seg.input_size == 64 and seg.metadata["preprocessing"]["input_size"] == [64, 64]
    x = np.random.default_rng(0).random((2, 3, 64, 64), dtype=np.float32)
    ref = runtimes.load(ckpt64, threads=1)
    # ONNX Runtime vs PyTorch: different float32 kernels; the logits of a 1-epoch model are O(1), so 1e-4 is
    # ~100 ulps of float32 at that size, far below any real difference
    np.testing.assert_allclose(seg.run(x), ref.run(x), rtol=1e-4, atol=1e-4)
    rgb = np.random.default_rng(1).integers(0, 255, (100, 80, 3), dtype=np.uint8)
    prob, mask = seg.predict(rgb)
    assert prob.shape == mask.shape == (100, 80)
    with pytest.raises(InputError, match=r"m\.onnx: takes 64x64 inputs, got 256x256"):
        seg.run(np.zeros((1, 3, 256, 256), np.float32))


@pytest.mark.slow
def test_checkpoint_at_64_int8_calibrates_at_its_size(ckpt64, tmp_path):
    n = run("onnx", onnx_build, ["--weights", str(ckpt64), "--quantize", "int8", "--calib-count", "2",
                                 "--out", str(tmp_path / "q.onnx"), "--eval-count", "2"])
    assert n["passed"] and n["calibration"]["n_images"] == 2 and runtimes.load(tmp_path / "q.onnx").input_size == 64


@pytest.mark.slow
def test_checkpoint_at_64_exports_to_openvino(ckpt64, tmp_path):
    pytest.importorskip("openvino")
    from export.to_openvino import build

    n = run("openvino", build, ["--weights", str(ckpt64), "--out", str(tmp_path / "m.xml"), "--eval-count", "2"])
    assert n["passed"]
    seg = runtimes.load(tmp_path / "m.xml", threads=1)
    assert seg.input_size == 64 and seg.run(np.full((1, 3, 64, 64), 0.5, np.float32)).shape == (1, 1, 64, 64)
    assert seg.predict(np.random.default_rng(1).integers(0, 255, (70, 90, 3), dtype=np.uint8))[0].shape == (70, 90)
    assert seg.metadata["bin_sha256"] == file_sha256(tmp_path / "m.bin")


def test_errors_name_the_users_file_not_the_temporary(ckpt64, tmp_path):
    def broken(model, meta, quantize, calib, path):  # a converter that writes a graph of the wrong input size
        onnx_build(model, {**meta, "preprocessing": {**meta["preprocessing"], "input_size": [32, 32]}}, quantize, calib, path)
    with pytest.raises(SystemExit) as e:
        run("onnx", broken, ["--weights", str(ckpt64), "--out", str(tmp_path / "m.onnx"), "--eval-count", "1"])
    msg = str(e.value)
    assert msg.startswith(f"error: {tmp_path / 'm.onnx'}: ") and ".tmp" not in msg and "\n" not in msg
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".m.")]


@pytest.mark.slow
@pytest.mark.training
@pytest.mark.parametrize("variant,size_flags,size", [("aulunet_v3_in128", [], 128), ("aulunet_v3_stride2", ["--size", "64"], 64)])
def test_registry_variants_export_at_their_own_size(tmp_path, variant, size_flags, size):
    """aulunet_v3_in128 trains at its config's 128 by default; the stride-2 stem at 64 in and out."""
    from model.data.synthetic import write_synthetic_dataset
    from model.train import main as train_main

    data = write_synthetic_dataset(tmp_path / "data", n=8, shape=(96, 128))
    train_main(["--data", str(data), "--variant", variant, "--epochs", "1", "--limit-train", "4", "--limit-val", "2",
                *size_flags, "--no-compile", "--no-progress", "--threads", "1", "--out", str(tmp_path / "run")])
    n = run("onnx", onnx_build, ["--weights", str(tmp_path / "run" / "best.pt"), "--out", str(tmp_path / "m.onnx"),
                                 "--eval-count", "2"])
    assert n["passed"] and n["input_size"] == size
    seg = runtimes.load(tmp_path / "m.onnx", threads=1)
    assert seg.input_size == size and seg.metadata["variant"] == variant
    assert seg.run(np.full((1, 3, size, size), 0.5, np.float32)).shape == (1, 1, size, size)


def test_evaluate_scores_a_smaller_model_on_the_protocols_grid(ckpt64):
    """A 64x64 model is scored on the same 256x256 masks as every other model: its probabilities are resized
    to the grid, and the result equals scoring those resized maps by hand."""
    from model.data import load_arrays, open_dataset
    from model.evaluation.pooled import evaluate_samples
    from core.metrics import PooledMetrics
    from core.preprocess import resize_bilinear

    seg = runtimes.load(ckpt64, threads=1)
    samples = open_dataset(ckpt64.parent.parent / "data").samples[:3]
    res = evaluate_samples(seg, samples, keep_probs=True)
    assert res["probs"].shape == (3, 256, 256)
    x, _ = load_arrays(samples, 64, with_masks=False)
    _, y = load_arrays(samples, 256)
    p = np.stack([resize_bilinear(q[..., None], (256, 256))[..., 0] for q in seg.probabilities(x)])
    pm = PooledMetrics()
    pm.update(p > seg.threshold, y)
    assert res["dsc"] == pm.result()["dsc"] and res["n_images"] == 3


# ------------------------------------------------------------------ --postprocess: the mask clean-up a file asks for

def test_postprocess_flag_writes_the_metadata_key_and_none_leaves_the_metadata_as_it_was(ckpt64, tmp_path):
    import onnx

    plain = run("onnx", onnx_build, ["--weights", str(ckpt64), "--out", str(tmp_path / "plain.onnx"), "--eval-count", "1"])
    steps = run("onnx", onnx_build, ["--weights", str(ckpt64), "--out", str(tmp_path / "steps.onnx"), "--eval-count", "1",
                                     "--postprocess", "fill-holes,largest-component"])
    assert plain["passed"] and steps["passed"]
    raw = {name: onnx.load(str(tmp_path / name)).metadata_props[0].value for name in ("plain.onnx", "steps.onnx")}
    with_steps, without = json.loads(raw["steps.onnx"]), json.loads(raw["plain.onnx"])
    assert with_steps.pop("postprocess") == ["largest-component", "fill-holes"]  # canonical order in the file
    assert "postprocess" not in without and with_steps == without  # nothing else differs; no key without steps
    assert runtimes.load(tmp_path / "steps.onnx").postprocess == ("largest-component", "fill-holes")
    assert runtimes.load(tmp_path / "plain.onnx").postprocess == ()
    # the numerics JSON (parity of the model itself) carries no new key either way
    assert set(json.loads((tmp_path / "steps.onnx.numerics.json").read_text())) == \
        set(json.loads((tmp_path / "plain.onnx.numerics.json").read_text()))


def test_build_metadata_without_steps_is_unchanged(shipped):
    """The committed exports stay byte-identical: no steps, no key; the key only with steps."""
    from export.metadata import build_metadata, dumps

    ckpt = load_checkpoint(shipped)
    before = build_metadata(ckpt, shipped, "onnx", "none", None, "NCHW")
    assert "postprocess" not in before
    assert dumps(build_metadata(ckpt, shipped, "onnx", "none", None, "NCHW", ())) == dumps(before)
    after = build_metadata(ckpt, shipped, "onnx", "none", None, "NCHW", ("largest-component",))
    assert after.pop("postprocess") == ["largest-component"] and dumps(after) == dumps(before)


def test_export_all_passes_postprocess_on(ckpt64, tmp_path):
    rows = export_all.main(["--weights", str(ckpt64), "--formats", "onnx", "--out", str(tmp_path),
                            "--postprocess", "fill-holes"])
    assert [r["artifact"] for r in rows] == ["best.onnx", "best_fp16.onnx", "best_int8.onnx"] and all(r["passed"] for r in rows)
    for r in rows:
        assert runtimes.load(tmp_path / r["artifact"]).metadata["postprocess"] == ["fill-holes"], r["artifact"]


@pytest.mark.parametrize("entry", ["onnx", "all"])
def test_unknown_postprocess_is_refused_before_exporting(shipped, tmp_path, entry):
    message = (r"^error: --postprocess 'holes': unknown post-processing; choose none, largest-component, fill-holes or "
               r"largest-component,fill-holes$")
    with pytest.raises(SystemExit, match=message):
        if entry == "onnx":
            run("onnx", lambda *a: pytest.fail("exported with a bad --postprocess"),
                ["--weights", str(shipped), "--out", str(tmp_path / "m.onnx"), "--postprocess", "holes"])
        else:
            export_all.main(["--weights", str(shipped), "--formats", "onnx", "--out", str(tmp_path), "--postprocess", "holes"])
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------ bad input (issue 11): an explicit path that is
# missing, unwritable output, stale temporaries, quiet output. One line and a non-zero exit, nothing half-written,
# and the other formats carry on
@pytest.fixture(scope="module")
def nodata_ckpt(shipped, tmp_path_factory):
    """The shipped checkpoint as seen on a machine without its training data (split hash matches nothing)."""
    ck = load_checkpoint(shipped)
    p = tmp_path_factory.mktemp("ck") / "nodata.pt"
    torch.save({**ck, "data": {**ck["data"], "root": "/nonexistent/ph2", "split_hash": "0" * 16}}, p)
    return p


def test_explicit_eval_data_that_does_not_exist_is_an_error(shipped, tmp_path):
    with pytest.raises(SystemExit, match=r"^error: .*nowhere: --eval-data folder not found; pass a dataset folder"):
        run("onnx", onnx_build, ["--weights", str(shipped), "--out", str(tmp_path / "m.onnx"), "--eval-data", str(tmp_path / "nowhere")])
    assert not list(tmp_path.iterdir())
    with pytest.raises(SystemExit, match=r"nowhere: --eval-data folder not found"):
        export_all.main(["--weights", str(shipped), "--formats", "onnx", "--out", str(tmp_path), "--eval-data", str(tmp_path / "nowhere")])
    with pytest.raises(SystemExit, match=r"nowhere: --calib folder not found; pass a folder of real lesion images"):
        export_all.main(["--weights", str(shipped), "--formats", "onnx", "--out", str(tmp_path), "--calib", str(tmp_path / "nowhere")])
    with pytest.raises(SystemExit, match=r"nowhere: calibration folder not found"):
        run("onnx", onnx_build, ["--weights", str(shipped), "--quantize", "int8", "--out", str(tmp_path / "m.onnx"),
                            "--calib", str(tmp_path / "nowhere")])
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_default_eval_data_falls_back_to_synthetic_and_says_so(nodata_ckpt, tmp_path, capsys):
    n = run("onnx", onnx_build, ["--weights", str(nodata_ckpt), "--out", str(tmp_path / "m.onnx"), "--eval-count", "2"])
    out, err = capsys.readouterr()
    assert n["eval"]["synthetic"] and n["eval"]["n_images"] == 2
    assert "note: the checkpoint's data (/nonexistent/ph2) is not here: parity is checked on 2 SYNTHETIC images" in err
    assert '"eval": "SYNTHETIC images"' in out and str(tmp_path / "m.onnx") in out


@pytest.mark.parametrize("flag", ["--eval-count", "--calib-count"])
def test_negative_counts_are_refused(shipped, tmp_path, flag):
    with pytest.raises(SystemExit, match=rf"{flag} must be at least 0 \(got -1\)"):
        run("onnx", onnx_build, ["--weights", str(shipped), "--out", str(tmp_path / "m.onnx"), flag, "-1"])


def test_output_folder_that_cannot_be_created(shipped, tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(SystemExit, match=r"afile: is a file, not a folder; pass --out with a folder"):
        run("onnx", onnx_build, ["--weights", str(shipped), "--out", str(tmp_path / "afile" / "m.onnx")])
    with pytest.raises(SystemExit, match=r"afile/sub: cannot create the folder \(Not a directory\)"):
        run("onnx", onnx_build, ["--weights", str(shipped), "--out", str(tmp_path / "afile" / "sub" / "m.onnx")])


def test_read_only_folder_is_one_line_and_leaves_nothing(shipped, nodata_ckpt, tmp_path, monkeypatch):
    """Root ignores chmod, so the refusal is simulated where the OS gives it: at the check, and mid-write."""
    import core.safeio

    real_access = os.access
    monkeypatch.setattr(core.safeio.os, "access", lambda p, m: False if str(p) == str(tmp_path / "ro") else real_access(p, m))
    (tmp_path / "ro").mkdir()
    with pytest.raises(SystemExit, match=r"ro: folder is not writable; pass --out with a writable location"):
        run("onnx", onnx_build, ["--weights", str(shipped), "--out", str(tmp_path / "ro" / "m.onnx")])
    with pytest.raises(SystemExit, match=r"ro: folder is not writable"):  # once, before any format is tried
        export_all.main(["--weights", str(shipped), "--out", str(tmp_path / "ro")])

    def denied(model, meta, quantize, calib, path):
        Path(path).write_bytes(b"partial")
        raise PermissionError(13, "Permission denied", str(path))
    # the export writes a hidden temporary first; the message names the file the user asked for
    with pytest.raises(SystemExit, match=rf"^error: {tmp_path}/m\.onnx: cannot write it \(Permission denied\); pass --out in a writable folder$"):
        run("onnx", denied, ["--weights", str(nodata_ckpt), "--out", str(tmp_path / "m.onnx"), "--eval-count", "1"])
    assert not list(tmp_path.glob("*.onnx")) and not list(tmp_path.glob(".m.*"))


@pytest.mark.slow
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
    run("onnx", onnx_build, ["--weights", str(nodata_ckpt), "--out", str(tmp_path / "m.onnx"), "--eval-count", "1"])
    assert not stale[0].exists() and mine.exists()
    assert (tmp_path / "m.onnx").is_file()
    from core.safeio import atomic_write_text, clean_stale_temps, temp_prefix

    atomic_write_text(tmp_path / "m.numerics.json", "{}")  # the next atomic write of a file clears its own
    assert not stale[1].exists()
    assert clean_stale_temps(tmp_path, temp_prefix("m")) == []


def _cli(*args):
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, cwd=REPO)


@pytest.mark.slow
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


@pytest.mark.slow
def test_help_of_the_export_entry_points():
    p = _cli("export/cli.py", "--help")
    assert p.returncode == 0 and "onnx = export/to_onnx.py" in p.stdout and "FORMAT --help" in p.stdout
    p = _cli("export/to_tflite.py", "--help")
    assert p.returncode == 0 and "output file, its name ending in .tflite" in " ".join(p.stdout.split())
    p = _cli("export/cli.py", "coreml")
    # argparse errors take the toolkit's one-line form (core.clitools.ArgumentParser): exit 1, no usage block
    assert p.returncode == 1 and "invalid choice: 'coreml'" in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_all_summary_only_rebuilds_the_table_from_the_numerics(tmp_path):
    """After one format is re-exported on its own, export/all.py --summary-only rebuilds <model>.summary.* from the
    numerics JSON in the folder, exporting nothing; an empty folder is a one-line error."""
    import shutil

    from export.all import main as all_main

    for n in sorted((REPO / "exports").glob("aulunet_v3_ph2*.numerics.json")):
        shutil.copy(n, tmp_path / n.name)
    weights = str(REPO / "model" / "weights" / "aulunet_v3_ph2.pt")
    rows = all_main(["--summary-only", "--weights", weights, "--out", str(tmp_path)])
    md = (tmp_path / "aulunet_v3_ph2.summary.md").read_text()
    assert len(rows) == len(list(tmp_path.glob("*.numerics.json"))) == md.count("| aulunet_v3_ph2")
    assert json.loads((tmp_path / "aulunet_v3_ph2.summary.json").read_text()) == rows
    assert not list(tmp_path.glob("*.onnx"))  # nothing exported
    with pytest.raises(SystemExit, match=r"--out \S+empty: no numerics JSON of aulunet_v3_ph2 there; export it first"):
        all_main(["--summary-only", "--weights", weights, "--out", str(tmp_path / "empty")])
