"""OpenVINO exports of the shipped checkpoint, run in the OpenVINO CPU plugin and compared with PyTorch."""
import json

import numpy as np
import pytest

import runtimes
from conftest import export_every_quantization
from model.checkpoint import file_sha256

pytest.importorskip("openvino")
from export.to_openvino import build  # noqa: E402


@pytest.fixture(scope="module")
def ov_exports(shipped, ph2, tmp_path_factory):
    return export_every_quantization("openvino", build, shipped, ph2, tmp_path_factory.mktemp("ov"))


def test_openvino_gates_and_files(ov_exports):
    out, res = ov_exports
    for q, n in res.items():
        assert n["passed"] and n["eval"]["n_images"] == 30, q
        assert (out / f"m_{q}.xml").is_file() and (out / f"m_{q}.bin").is_file()
        assert json.loads((out / f"m_{q}.xml.numerics.json").read_text())["sha256"] == file_sha256(out / f"m_{q}.xml")
    # export/parity.py's fp32 gate: |prob diff| <= 1e-4. Probabilities are sigmoid(logit), |d prob| <= |d logit| / 4;
    # the logits of two runtimes differ by ~3e-5 relative (~20 layers of float32 sums of <= 540 terms) plus their exp/sigmoid
    # approximations: measured 1.1e-5 to 4.1e-5 on PH2 val (exports/*.numerics.json), any x86-64 or ARM CPU within
    # 1e-4. A flip counts only away from the threshold by more than that, so flips_outside_band == 0 follows.
    assert res["none"]["max_abs_diff"] <= 1e-4 and res["none"]["flips_outside_band"] == 0
    assert res["fp16"]["mask_iou_pooled"] >= 0.995
    assert res["int8"]["mask_iou_mean"] >= 0.95 and res["int8"]["dsc_drop_points"] <= 0.5
    # fp32 stays fp32 on disk: save_model would otherwise halve the weights
    assert (out / "m_none.bin").stat().st_size > 1.8 * (out / "m_fp16.bin").stat().st_size
    assert not list(out.glob(".*tmp*"))


def test_openvino_metadata_batch_and_errors(ov_exports, shipped, tmp_path):
    out, _ = ov_exports
    seg = runtimes.load(out / "m_none.xml", threads=1)
    assert seg.metadata["source_checkpoint"]["sha256"] == file_sha256(shipped)
    assert seg.metadata["format"] == "openvino" and seg.metadata["threshold"] == 0.5
    ref = runtimes.load(shipped, threads=1)
    x = np.random.default_rng(0).random((3, 3, 256, 256), dtype=np.float32)
    # different kernels: ~20 layers of sums of <= 540 terms, ~sqrt(540) * 2^-24 ~ 1.4e-6 relative each,
    # ~3e-5 in all, of a scale that grows with |logit|, plus the runtimes' own exp/sigmoid approximations
    # (~1e-6): |diff| <= 2e-4 * (1 + |logit|) holds on any x86-64 or ARM CPU, ~7x over
    for n in (1, 3):
        np.testing.assert_allclose(seg.run(x[:n]), ref.run(x[:n]), rtol=2e-4, atol=2e-4)
    lonely = tmp_path / "lonely.xml"
    lonely.write_text((out / "m_none.xml").read_text())
    with pytest.raises(runtimes.ModelFileError, match=r"lonely\.xml: its weights file lonely\.bin is missing"):
        runtimes.load(lonely)
    (tmp_path / "bad.bin").write_bytes(b"")
    (tmp_path / "bad.xml").write_text("<net><broken")
    with pytest.raises(runtimes.ModelFileError, match=r"bad\.xml: OpenVINO cannot read it"):
        runtimes.load(tmp_path / "bad.xml")


def test_openvino_int8_runs_convolutions_in_u8(ov_exports):
    import openvino as ov

    out, _ = ov_exports
    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(out / "m_int8.xml")), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    convs = [op.get_rt_info()["runtimePrecision"].astype(str) for op in compiled.get_runtime_model().get_ordered_ops()
             if op.get_rt_info()["layerType"].astype(str) == "Convolution"]
    assert convs and all(p in ("u8", "i8") for p in convs), convs
