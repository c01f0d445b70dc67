"""ncnn exports (.ncnn.param + .ncnn.bin + .ncnn.json) of the shipped checkpoint, run in ncnn and compared with PyTorch."""
import json

import numpy as np
import pytest

import runtimes
from core.formats import FORMATS, for_path, model_files
from core.safeio import file_sha256

pytest.importorskip("ncnn")
pytest.importorskip("pnnx")
from export.cli import run  # noqa: E402
from export.to_ncnn import build  # noqa: E402

N_EVAL, N_CALIB = 8, 8

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ncnn_exports(shipped, ph2, tmp_path_factory):
    out = tmp_path_factory.mktemp("ncnn")
    res = {q: run("ncnn", build, ["--weights", str(shipped), "--quantize", q, "--out", str(out / f"m_{q}.ncnn.param"),
                                  "--eval-data", str(ph2), "--eval-count", str(N_EVAL),
                                        *(["--calib-count", str(N_CALIB)] if q == "int8" else [])])
           for q in FORMATS["ncnn"].quantize}
    return out, res


def test_ncnn_gates_and_files(ncnn_exports):
    out, res = ncnn_exports
    for q, n in res.items():
        model = out / f"m_{q}.ncnn.param"
        assert n["passed"] and n["eval"]["n_images"] == N_EVAL and n["format"] == "ncnn", q
        numerics = json.loads((out / f"m_{q}.ncnn.param.numerics.json").read_text())
        assert numerics["sha256"] == file_sha256(model)
        assert numerics["companion_sha256"] == {".bin": file_sha256(out / f"m_{q}.ncnn.bin"),
                                                ".json": file_sha256(out / f"m_{q}.ncnn.json")}
        assert model_files(model) == [model, out / f"m_{q}.ncnn.bin", out / f"m_{q}.ncnn.json"]
    assert res["none"]["max_abs_diff"] <= 1e-4 and res["none"]["flips_outside_band"] == 0
    assert res["none"]["mask_iou_mean"] >= 0.999
    assert res["fp16"]["mask_iou_pooled"] >= 0.995
    assert res["int8"]["mask_iou_mean"] >= 0.95 and res["int8"]["dsc_drop_points"] <= 0.5
    assert res["int8"]["calibration"]["n_images"] == N_CALIB
    # fp32 weights stay fp32 on disk (pnnx would store fp16 by default); fp16 and int8 about halve the file
    size = {q: (out / f"m_{q}.ncnn.bin").stat().st_size for q in res}
    assert size["none"] > 1.8 * size["fp16"] and size["none"] > 1.6 * size["int8"]
    assert not list(out.glob(".*tmp*"))


def test_ncnn_int8_param_marks_every_conv_int8_and_keeps_gates_float(ncnn_exports):
    out, _ = ncnn_exports
    lines = [ln.split() for ln in (out / "m_int8.ncnn.param").read_text().splitlines()[2:]]
    convs = [ln for ln in lines if ln[0] in ("Convolution", "ConvolutionDepthWise")]
    gates = [ln for ln in lines if ln[0] == "InnerProduct"]
    assert convs and all(any(p in ("8=1", "8=2") for p in ln) for ln in convs)
    assert gates and not any(p.startswith("8=") for ln in gates for p in ln)


def test_ncnn_metadata_batches_and_errors(ncnn_exports, shipped, tmp_path):
    out, _ = ncnn_exports
    seg = runtimes.load(out / "m_none.ncnn.param", threads=1)
    assert type(seg).__name__ == "NcnnSegmenter" and for_path("a/b.NCNN.param").key == "ncnn"
    assert seg.metadata["source_checkpoint"]["sha256"] == file_sha256(shipped)
    assert seg.metadata["format"] == "ncnn" and seg.metadata["threshold"] == 0.5
    ref = runtimes.load(shipped, threads=1)
    x = np.random.default_rng(0).random((3, 3, 256, 256), dtype=np.float32)
    for n in (1, 3):  # float32 sums in another order: |diff| of a few 1e-5 at |logit| ~ 10
        np.testing.assert_allclose(seg.run(x[:n]), ref.run(x[:n]), rtol=2e-4, atol=2e-4)
    # the three files travel together: a .param without its .bin, or without its metadata, is refused
    (tmp_path / "lonely.ncnn.param").write_text((out / "m_none.ncnn.param").read_text())
    with pytest.raises(runtimes.ModelFileError, match=r"lonely\.ncnn\.param: its weights file lonely\.ncnn\.bin is missing"):
        runtimes.load(tmp_path / "lonely.ncnn.param")
    (tmp_path / "lonely.ncnn.bin").write_bytes((out / "m_none.ncnn.bin").read_bytes())
    with pytest.raises(runtimes.ModelFileError, match=r"lonely\.ncnn\.param: no AULUNet metadata"):
        runtimes.load(tmp_path / "lonely.ncnn.param")
    with pytest.warns(UserWarning, match="no AULUNet metadata; assuming"):
        foreign = runtimes.load(tmp_path / "lonely.ncnn.param", allow_foreign=True)
    np.testing.assert_array_equal(foreign.run(x[:1]), seg.run(x[:1]))  # same file, same kernels
    (tmp_path / "bad.ncnn.param").write_text("garbage\n")
    (tmp_path / "bad.ncnn.bin").write_bytes(b"")
    (tmp_path / "bad.ncnn.json").write_text((out / "m_none.ncnn.json").read_text())
    with pytest.raises(runtimes.ModelFileError, match=r"bad\.ncnn\.param: ncnn cannot load it \(.*\); re-export it with export/to_ncnn\.py$"):
        runtimes.load(tmp_path / "bad.ncnn.param")
    with pytest.raises(runtimes.ModelFileError, match=r"x\.param: unknown model suffix '\.param'"):
        (tmp_path / "x.param").write_text("")
        runtimes.load(tmp_path / "x.param")
    with pytest.raises(SystemExit, match=r"a ncnn export must end in \.ncnn\.param; pass --out NAME\.ncnn\.param$"):
        run("ncnn", build, ["--weights", str(shipped), "--out", str(tmp_path / "m.param")])
    assert not (tmp_path / "m.param").exists()
