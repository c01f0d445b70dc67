"""OpenVINO exports of the shipped checkpoint, run in the OpenVINO CPU plugin and compared with PyTorch."""
import json

import numpy as np
import pytest

import runtimes
from tests.conftest import REPO, export_every_quantization
from core.safeio import file_sha256

pytest.importorskip("openvino")
from export.to_openvino import build  # noqa: E402


@pytest.fixture(scope="module")
def ov_exports(shipped, ph2, tmp_path_factory):
    return export_every_quantization("openvino", build, shipped, ph2, tmp_path_factory.mktemp("ov"))


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_openvino_int8_runs_the_1x1_convs_and_the_stem_in_u8(ov_exports):
    """The shipped recipe (export/to_openvino.py): every plain convolution but the AKF gate convs in u8, the depthwise
    and gate convs in f32 (OpenVINO's INT8 depthwise kernels were slower than its fp32 ones)."""
    import re

    import openvino as ov

    out, _ = ov_exports
    core = ov.Core()
    ir = core.read_model(str(out / "m_none.xml")).get_ops()
    plain = sum(1 for op in ir if op.get_type_name() == "Convolution" and not re.search("/gate/", op.get_friendly_name()))
    others = sum(1 for op in ir if op.get_type_name() in ("Convolution", "GroupConvolution")) - plain
    compiled = core.compile_model(core.read_model(str(out / "m_int8.xml")), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    convs = [op.get_rt_info()["runtimePrecision"].astype(str) for op in compiled.get_runtime_model().get_ordered_ops()
             if op.get_rt_info()["layerType"].astype(str) == "Convolution"]
    assert plain > 0 and others > 0
    assert sum(p in ("u8", "i8") for p in convs) == plain and convs.count("f32") == others, convs


def _copy_pair(src_dir, stem, dst_dir, with_numerics=True):
    import shutil

    for suffix in (".xml", ".bin") + ((".xml.numerics.json",) if with_numerics else ()):
        shutil.copy(src_dir / f"{stem}{suffix}", dst_dir / f"{stem}{suffix}")
    return dst_dir / f"{stem}.xml"


def test_an_xml_beside_another_models_bin_is_refused(tmp_path):
    """PH2 and ISIC 2018 have the same architecture, so OpenVINO reads either .bin with either .xml; the hash of the
    .bin recorded at export tells them apart. The committed files predate the hash in the metadata: their
    numerics JSON (beside them, naming the .xml's own sha256) gives it."""
    exports = REPO / "exports"
    ph2 = _copy_pair(exports, "aulunet_v3_ph2", tmp_path)
    isic = _copy_pair(exports, "aulunet_v3_isic2018", tmp_path)
    x = np.random.default_rng(0).random((1, 3, 256, 256), dtype=np.float32)
    good = runtimes.load(ph2, threads=1).run(x)
    ph2.with_suffix(".bin").write_bytes(isic.with_suffix(".bin").read_bytes())
    with pytest.raises(runtimes.ModelFileError, match=rf"^{tmp_path}/aulunet_v3_ph2\.bin: is not the weights file exported "
                                                      rf"with aulunet_v3_ph2\.xml \(its sha256 differs from the one in "
                                                      rf"aulunet_v3_ph2\.xml\.numerics\.json\); put the \.bin exported "
                                                      rf"with it beside the \.xml, or re-export it with export/to_openvino\.py$"):
        runtimes.load(ph2)
    # without its numerics JSON an old file cannot be checked: it loads, with a warning that says so
    (tmp_path / "aulunet_v3_ph2.xml.numerics.json").unlink()
    with pytest.warns(UserWarning, match=r"exported before the \.bin's hash was recorded, so aulunet_v3_ph2\.bin cannot be checked"):
        swapped = runtimes.load(ph2, threads=1)
    assert not np.allclose(swapped.run(x), good, atol=1e-3)  # what the check prevents: the other model's output


@pytest.mark.slow
def test_new_exports_record_the_bin_hash_in_the_xml(tmp_path):
    """A fresh export carries the .bin's sha256 in its own metadata: checked without any JSON beside it."""
    from export.cli import run
    from model.networks.checkpoint import load_checkpoint

    import torch

    shipped = REPO / "model" / "weights" / "aulunet_v3_ph2.pt"
    ck = load_checkpoint(shipped)
    nodata = tmp_path / "nodata.pt"
    torch.save({**ck, "data": {**ck["data"], "root": "/nonexistent", "split_hash": "0" * 16}}, nodata)
    run("openvino", build, ["--weights", str(nodata), "--out", str(tmp_path / "a" / "m.xml"), "--eval-count", "1"])
    xml = tmp_path / "a" / "m.xml"
    assert runtimes.load(xml).metadata["bin_sha256"] == file_sha256(tmp_path / "a" / "m.bin")
    (tmp_path / "a" / "m.xml.numerics.json").unlink()
    bin_path = xml.with_suffix(".bin")
    exports = REPO / "exports"
    bin_path.write_bytes((exports / "aulunet_v3_isic2018.bin").read_bytes())
    with pytest.raises(runtimes.ModelFileError, match=r"m\.bin: is not the weights file exported with m\.xml \(its sha256 "
                                                      r"differs from the one in its metadata\)"):
        runtimes.load(xml)
