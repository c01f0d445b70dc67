"""ONNX exports of the shipped checkpoint, run in ONNX Runtime and compared with PyTorch."""
import json

import numpy as np
import pytest

import runtimes
from tests.conftest import export_every_quantization
from export.cli import EXPORTS
from core.formats import FORMATS, for_path, markdown_table
from export.parity import GATES, check_gates, compare
from export.to_onnx import build
from export.cli import run
from core.safeio import file_sha256

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def onnx_exports(shipped, ph2, tmp_path_factory):
    return export_every_quantization("onnx", build, shipped, ph2, tmp_path_factory.mktemp("onnx"))


@pytest.mark.slow
@pytest.mark.parametrize("q", ["none", "fp16", "int8"])
def test_onnx_gates_on_ph2_val(onnx_exports, q):
    out, res = onnx_exports
    n = json.loads((out / f"m_{q}.onnx.numerics.json").read_text())
    assert n["passed"] and n["eval"]["n_images"] == 30 and not n["eval"]["synthetic"]
    assert all(g["passed"] for g in n["gates"].values())
    assert set(n["gates"]) == set(GATES[q])
    if q == "none":
        # export/parity.py's fp32 gate: |prob diff| <= 1e-4. Probabilities are sigmoid(logit), |d prob| <= |d logit| / 4;
        # the logits of two runtimes differ by ~3e-5 relative (~20 layers of float32 sums of <= 540 terms) plus their exp/sigmoid
        # approximations: measured 1.1e-5 to 4.1e-5 on PH2 val (exports/*.numerics.json), any x86-64 or ARM CPU within
        # 1e-4. A flip counts only away from the threshold by more than that, so flips_outside_band == 0 follows.
        assert n["max_abs_diff"] <= 1e-4 and n["flips_outside_band"] == 0
    if q == "fp16":
        assert n["mask_iou_pooled"] >= 0.995
    if q == "int8":
        assert n["mask_iou_mean"] >= 0.95 and n["dsc_drop_points"] <= 0.5
        assert n["calibration"]["n_images"] == 120 and n["calibration"]["split"] == "train"
    assert n["sha256"] == file_sha256(out / f"m_{q}.onnx")


@pytest.mark.slow
def test_onnx_metadata_and_dynamic_batch(onnx_exports, shipped):
    out, _ = onnx_exports
    seg = runtimes.load(out / "m_none.onnx", threads=1)
    meta = seg.metadata
    assert meta["source_checkpoint"]["sha256"] == file_sha256(shipped)
    assert meta["preprocessing"]["input_size"] == [256, 256] and meta["threshold"] == 0.5
    assert meta["input"]["layout"] == "NCHW" and meta["classes"] == ["lesion"] and meta["variant"] == "aulunet_v3"
    assert meta["graph_rewrites"] == ["akf_delta", "lsg_sum", "upsample_after_pointwise"]
    ref = runtimes.load(shipped, threads=1)
    x = np.random.default_rng(0).random((3, 3, 256, 256), dtype=np.float32)
    # different kernels: ~20 layers of sums of <= 540 terms, ~sqrt(540) * 2^-24 ~ 1.4e-6 relative each,
    # ~3e-5 in all, of a scale that grows with |logit|, plus the runtimes' own exp/sigmoid approximations
    # (~1e-6): |diff| <= 2e-4 * (1 + |logit|) holds on any x86-64 or ARM CPU, ~7x over
    for n in (1, 3):
        np.testing.assert_allclose(seg.run(x[:n]), ref.run(x[:n]), rtol=2e-4, atol=2e-4)
    rgb = np.random.default_rng(1).integers(0, 255, (120, 90, 3), dtype=np.uint8)
    p1, m1 = seg.predict(rgb)
    p2, m2 = ref.predict(rgb)
    assert p1.shape == (120, 90) and np.abs(p1 - p2).max() < 1e-4  # probabilities: the fp32 gate's bound (above)


@pytest.mark.slow
def test_onnx_backend_picks_the_optimization_level_per_file(onnx_exports):
    """Float files without the NCHWc layout pass (faster here), INT8 files with the full level."""
    import onnxruntime as ort

    out, _ = onnx_exports
    level = {q: runtimes.load(out / f"m_{q}.onnx", threads=1).session.get_session_options().graph_optimization_level
             for q in ("none", "fp16", "int8")}
    assert level["none"] == level["fp16"] == ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    assert level["int8"] == ort.GraphOptimizationLevel.ORT_ENABLE_ALL


@pytest.mark.slow
def test_onnx_graph_carries_the_rewrites(onnx_exports):
    """The exported graph is the rewritten one: no Concat (LSG as two convs), and every bilinear Resize
    carries the narrower width c[i] (pointwise conv before the upsample)."""
    import onnx
    from onnx import shape_inference

    out, _ = onnx_exports
    m = shape_inference.infer_shapes(onnx.load(str(out / "m_none.onnx")))
    assert not [n for n in m.graph.node if n.op_type == "Concat"]
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in m.graph.value_info}
    resized = sorted(shapes[n.output[0]][1:] for n in m.graph.node if n.op_type == "Resize")
    assert resized == [[5, 256, 256], [10, 128, 128], [15, 64, 64], [25, 32, 32], [35, 16, 16]]


@pytest.mark.slow
def test_evaluate_cli_takes_an_onnx_file(onnx_exports, ph2, tmp_path):
    from model.evaluate import main as evaluate_main
    out, res = onnx_exports
    r = evaluate_main(["--weights", str(out / "m_int8.onnx"), "--data", str(ph2), "--no-progress"])
    # The same file and runtime, other batch sizes, so other kernels for the float ops between the quantized ones:
    # a rounding there can move a requantized value by one INT8 step and flip pixels whose logit is that close to 0
    # (~20 px measured here). One flip moves the pooled DSC over 30 images of 256x256 by ~1e-6 (|P| + |G| ~ 1e6):
    # abs 2e-4 allows ~200 px (0.01% of the pixels); a wrong preprocessing or threshold moves it by > 1e-2.
    assert r["backend"] == "onnxruntime" and r["dsc"] == pytest.approx(res["int8"]["export_metrics"]["dsc"], abs=2e-4)


def test_gate_logic_fails_on_flipped_masks():
    rng = np.random.default_rng(0)
    ref = rng.random((4, 32, 32)).astype(np.float32)
    got = ref.copy()
    got[:, :8] = 1 - got[:, :8]  # flip a quarter of every image
    n = compare(ref, got, ref > 0.5)
    for q in ("none", "fp16", "int8"):
        assert not all(g["passed"] for g in check_gates(n, q).values())
    same = compare(ref, ref + 5e-5, ref > 0.5)
    assert all(g["passed"] for g in check_gates(same, "none").values())


def test_bad_inputs(tmp_path, shipped, ph2):
    trunc = tmp_path / "bad.onnx"
    trunc.write_bytes(b"\x08\x07garbage")
    with pytest.raises(runtimes.ModelFileError, match=r"bad\.onnx: ONNX Runtime cannot load it"):
        runtimes.load(trunc)
    with pytest.raises(SystemExit, match=r"missing\.pt: checkpoint not found"):
        run("onnx", build, ["--weights", str(tmp_path / "missing.pt")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match=r"empty: no images"):
        run("onnx", build, ["--weights", str(shipped), "--quantize", "int8", "--calib", str(tmp_path / "empty"),
                            "--out", str(tmp_path / "x.onnx")])
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.txt").write_text("x")
    with pytest.raises(SystemExit, match=r"texts: no images"):
        run("onnx", build, ["--weights", str(shipped), "--quantize", "int8", "--calib", str(tmp_path / "texts"),
                            "--out", str(tmp_path / "x.onnx")])
    with pytest.raises(SystemExit, match=r"must end in \.onnx"):
        run("onnx", build, ["--weights", str(shipped), "--out", str(tmp_path / "x.tflite")])
    assert not (tmp_path / "x.onnx").exists() and not list(tmp_path.glob(".*tmp*"))


def test_format_table_drives_runtimes():
    """Every row of core/formats.py opens in runtimes.load: the torch-free backends from the table itself, the
    .pt one registered by the model package (this module imports model), each the class its row names."""
    import importlib

    import model  # noqa: F401  (registers the .pt backend)

    assert set(runtimes.BACKENDS) | set(runtimes.REGISTERED) == {f.suffix for f in FORMATS.values()}
    assert not set(runtimes.BACKENDS) & set(runtimes.REGISTERED)
    for f in FORMATS.values():
        module, cls = f.backend.split(":")
        assert (module.split(".")[0] == "runtimes") == (f.suffix in runtimes.BACKENDS), f.key
        if f.suffix in runtimes.REGISTERED:
            assert runtimes.REGISTERED[f.suffix] is getattr(importlib.import_module(module), cls)
    assert "`export/to_onnx.py`" in markdown_table()


@pytest.mark.slow
def test_committed_exports_match_shipped_checkpoint(shipped):
    from core.paths import DEFAULT_MODEL, SHIPPED, WEIGHTS_DIR

    files = sorted(f for fmt in FORMATS.values() if fmt.key != "torch" for f in EXPORTS.glob(f"*{fmt.suffix}"))
    for model in {DEFAULT_MODEL, shipped.stem}:  # the default model's and the pinned PH2 model's
        assert any(f.name == f"{model}.onnx" for f in files), f"exports/{model}.onnx must be committed"
    for f in files:
        stem = f.name[:-len(for_path(f).suffix)]  # "x.ncnn.param" -> "x"
        model = next(m for m in SHIPPED if stem == m or stem.startswith(m + "_"))
        source = WEIGHTS_DIR / f"{model}.pt"
        n = json.loads(f.with_name(f.name + ".numerics.json").read_text())
        assert n["sha256"] == file_sha256(f), f"{f} changed after its numerics were measured"
        for suffix, digest in n["companion_sha256"].items():
            assert digest == file_sha256(f.with_suffix(suffix)), f"{f.with_suffix(suffix)} changed"
        assert runtimes.load(f).metadata["source_checkpoint"]["sha256"] == file_sha256(source), f"{f} is stale: re-export"
        assert n["passed"]


def test_calibration_default_finds_training_data_or_says_why(shipped, ph2, tmp_path):
    import torch
    from export.calibration import calibration_set
    from model.data.locate import training_dataset
    from model.networks.checkpoint import load_checkpoint
    ck = load_checkpoint(shipped)
    moved = {**ck, "data": {**ck["data"], "root": "/nonexistent/elsewhere/ph2"}}
    assert training_dataset(moved).root == ph2.parent / "ph2"  # found beside the repo, same split hash
    x, info = calibration_set(None, moved, limit=3)
    assert x.shape == (3, 3, 256, 256) and info["split"] == "train"
    other = {**ck, "data": {**ck["data"], "split_hash": "0" * 16}}
    assert training_dataset(other) is None
    p = tmp_path / "other.pt"
    torch.save(other, p)
    with pytest.raises(SystemExit, match="pass --calib DIR with real images"):
        run("onnx", build, ["--weights", str(p), "--quantize", "int8", "--out", str(tmp_path / "o.onnx")])


@pytest.mark.slow
def test_export_all_skips_int8_without_calibration_data(shipped, tmp_path):
    """The main job on a machine without the training data: fp32/fp16 exported and checked, INT8 skipped."""
    import torch
    from export import all as export_all
    from model.networks.checkpoint import load_checkpoint
    ck = load_checkpoint(shipped)
    p = tmp_path / "nodata.pt"
    torch.save({**ck, "data": {**ck["data"], "split_hash": "0" * 16}}, p)
    rows = export_all.main(["--weights", str(p), "--formats", "onnx", "--out", str(tmp_path)])
    by = {r["artifact"]: r for r in rows}
    assert by["nodata.onnx"]["passed"] and by["nodata.onnx"]["eval"]["synthetic"]
    assert by["nodata_fp16.onnx"]["passed"]
    assert "no calibration images" in by["nodata_int8.onnx"]["skipped"] and not (tmp_path / "nodata_int8.onnx").exists()
    assert "skipped: no calibration images" in (tmp_path / "nodata.summary.md").read_text()
