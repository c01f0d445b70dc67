"""The shared export flow (export/cli.py, export/all.py): where results go, what is checked before exporting,
and checkpoints trained at another input size (issues 18 and 20)."""
import json
import os
from pathlib import Path

import numpy as np
import pytest

import runtimes
from export import all as export_all
from export import cli
from export.cli import run
from export.to_onnx import build as onnx_build
from core.safeio import file_sha256
from core.errors import InputError

REPO = Path(__file__).resolve().parents[1]

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def ckpt64(tmp_path_factory):
    """A tiny checkpoint trained by model/train.py at --size 64 on a small synthetic folder."""
    from model.synthetic import write_synthetic_dataset
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


def test_checkpoint_at_64_int8_calibrates_at_its_size(ckpt64, tmp_path):
    n = run("onnx", onnx_build, ["--weights", str(ckpt64), "--quantize", "int8", "--calib-count", "2",
                                 "--out", str(tmp_path / "q.onnx"), "--eval-count", "2"])
    assert n["passed"] and n["calibration"]["n_images"] == 2 and runtimes.load(tmp_path / "q.onnx").input_size == 64


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


@pytest.mark.parametrize("variant,size_flags,size", [("aulunet_v3_in128", [], 128), ("aulunet_v3_stride2", ["--size", "64"], 64)])
def test_registry_variants_export_at_their_own_size(tmp_path, variant, size_flags, size):
    """aulunet_v3_in128 trains at its config's 128 by default; the stride-2 stem at 64 in and out."""
    from model.synthetic import write_synthetic_dataset
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
    from model.evaluate import evaluate_samples
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
