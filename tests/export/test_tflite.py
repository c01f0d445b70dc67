"""TFLite exports of the shipped checkpoint, run in LiteRT (ai_edge_litert) and compared with PyTorch."""
import json
from collections import Counter

import numpy as np
import pytest

import runtimes
from tests.conftest import export_every_quantization
from core.safeio import file_sha256

pytest.importorskip("ai_edge_litert")
pytest.importorskip("litert_torch")
from ai_edge_litert.interpreter import Interpreter, OpResolverType  # noqa: E402

from export.to_tflite import build  # noqa: E402
from tests.export.test_cli import ckpt64  # noqa: E402,F401  (a checkpoint trained at --size 64)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tfl_exports(shipped, ph2, tmp_path_factory):
    return export_every_quantization("tflite", build, shipped, ph2, tmp_path_factory.mktemp("tfl"))


def graph_ops(path):
    """(op name, dtype of its first input) for every op in the file, before any delegate rewrites it."""
    it = Interpreter(str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    dtypes = {t["index"]: t["dtype"] for t in it.get_tensor_details()}
    return [(op["op_name"], dtypes.get(op["inputs"][0])) for op in it._get_ops_details()]


def weight_bytes(path):
    from ai_edge_litert.tools import flatbuffer_utils

    m = flatbuffer_utils.read_model_from_bytearray(bytearray(path.read_bytes()))
    return sum(len(b.data) for b in m.buffers if b.data is not None)


def test_tflite_gates_on_ph2_val(tfl_exports):
    out, res = tfl_exports
    for q, n in res.items():
        assert n["passed"] and n["eval"]["n_images"] == 30, q
        assert json.loads((out / f"m_{q}.tflite.numerics.json").read_text())["sha256"] == file_sha256(out / f"m_{q}.tflite")
    # export/parity.py's fp32 gate: |prob diff| <= 1e-4. Probabilities are sigmoid(logit), |d prob| <= |d logit| / 4;
    # the logits of two runtimes differ by ~3e-5 relative (~20 layers of float32 sums of <= 540 terms) plus their exp/sigmoid
    # approximations: measured 1.1e-5 to 4.1e-5 on PH2 val (exports/*.numerics.json), any x86-64 or ARM CPU within
    # 1e-4. A flip counts only away from the threshold by more than that, so flips_outside_band == 0 follows.
    assert res["none"]["max_abs_diff"] <= 1e-4 and res["none"]["flips_outside_band"] == 0
    assert res["int8"]["mask_iou_mean"] >= 0.95 and res["int8"]["dsc_drop_points"] <= 0.5
    assert res["int8"]["calibration"]["n_images"] == 120
    assert not list(out.glob(".*tmp*"))


def test_tflite_graph_is_nhwc_without_transposes(tfl_exports):
    out, _ = tfl_exports
    fp32, int8 = graph_ops(out / "m_none.tflite"), graph_ops(out / "m_int8.tflite")
    for ops in (fp32, int8):
        assert not [o for o, _ in ops if o == "TRANSPOSE"]
    it = Interpreter(str(out / "m_none.tflite"))
    assert list(it.get_input_details()[0]["shape"]) == [1, 256, 256, 3]
    assert list(it.get_output_details()[0]["shape"]) == [1, 256, 256, 1]
    # INT8: every conv quantized except the AKF gate convs (one per AKF block: 11 in v3), which stay float
    convs = Counter((o, dt == np.int8) for o, dt in int8 if o in ("CONV_2D", "DEPTHWISE_CONV_2D"))
    assert convs[("CONV_2D", False)] == 11 and convs[("DEPTHWISE_CONV_2D", False)] == 0
    assert convs[("CONV_2D", True)] == sum(o == "CONV_2D" for o, _ in fp32) - 11
    assert weight_bytes(out / "m_int8.tflite") < 0.5 * weight_bytes(out / "m_none.tflite")


def test_tflite_metadata_batch_and_errors(tfl_exports, shipped, tmp_path):
    out, _ = tfl_exports
    seg = runtimes.load(out / "m_none.tflite", threads=1)
    assert type(seg).__name__ == "LiteRtSegmenter"
    meta = seg.metadata
    assert meta["source_checkpoint"]["sha256"] == file_sha256(shipped)
    assert meta["format"] == "tflite" and meta["input"]["layout"] == "NHWC" and meta["input"]["shape"] == [-1, 256, 256, 3]
    assert meta["threshold"] == 0.5 and meta["preprocessing"]["scale"]["method"] == "per_image_minmax"
    assert runtimes.load(out / "m_int8.tflite").metadata["calibration"]["split"] == "train"
    ref = runtimes.load(shipped, threads=1)
    x = np.random.default_rng(0).random((3, 3, 256, 256), dtype=np.float32)
    # different kernels: ~20 layers of sums of <= 540 terms, ~sqrt(540) * 2^-24 ~ 1.4e-6 relative each,
    # ~3e-5 in all, of a scale that grows with |logit|, plus the runtimes' own exp/sigmoid approximations
    # (~1e-6): |diff| <= 2e-4 * (1 + |logit|) holds on any x86-64 or ARM CPU, ~7x over
    np.testing.assert_allclose(seg.run(x), ref.run(x), rtol=2e-4, atol=2e-4)
    rgb = np.random.default_rng(1).integers(0, 255, (300, 420, 3), dtype=np.uint8)
    prob, mask = seg.predict(rgb)
    assert prob.shape == mask.shape == (300, 420)
    cut = tmp_path / "cut.tflite"
    cut.write_bytes((out / "m_none.tflite").read_bytes()[:5000])
    with pytest.raises(runtimes.ModelFileError, match=r"cut\.tflite: LiteRT cannot load it .*export/to_tflite\.py"):
        runtimes.load(cut)


def test_checkpoint_at_64_exports_to_tflite_and_runs_at_its_size(ckpt64, tmp_path):
    """A checkpoint trained at --size 64: the NHWC file takes (1,64,64,3), runtimes.load runs it at 64."""
    from export.cli import run

    n = run("tflite", build, ["--weights", str(ckpt64), "--out", str(tmp_path / "m.tflite"), "--eval-count", "2"])
    assert n["passed"] and n["input_size"] == 64
    seg = runtimes.load(tmp_path / "m.tflite", threads=1)
    assert seg.input_size == 64 and list(seg.input["shape"]) == [1, 64, 64, 3]
    x = np.random.default_rng(0).random((2, 3, 64, 64), dtype=np.float32)
    # LiteRT (XNNPACK) vs PyTorch: different float32 kernels on O(1) logits; 1e-4 is ~100 float32 ulps there
    np.testing.assert_allclose(seg.run(x), runtimes.load(ckpt64, threads=1).run(x), rtol=1e-4, atol=1e-4)
    assert seg.predict(np.random.default_rng(1).integers(0, 255, (50, 70, 3), dtype=np.uint8))[1].shape == (50, 70)
