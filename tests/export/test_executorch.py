"""ExecuTorch (.pte, XNNPACK) exports of the shipped checkpoint, run in the ExecuTorch runtime and compared with PyTorch."""
import json

import numpy as np
import pytest

import runtimes
from core.safeio import file_sha256

pytest.importorskip("executorch")
from export.cli import run  # noqa: E402
from export.to_executorch import build  # noqa: E402

N_EVAL, N_CALIB = 8, 8  # small: each export lowers the whole graph (tens of seconds on a shared CPU)


@pytest.fixture(scope="module")
def et_exports(shipped, ph2, tmp_path_factory):
    out = tmp_path_factory.mktemp("et")
    res = {q: run("executorch", build, ["--weights", str(shipped), "--quantize", q, "--out", str(out / f"m_{q}.pte"),
                                        "--eval-data", str(ph2), "--eval-count", str(N_EVAL),
                                        *(["--calib-count", str(N_CALIB)] if q == "int8" else [])])
           for q in ("none", "int8")}
    return out, res


@pytest.mark.slow
def test_executorch_gates_and_files(et_exports):
    out, res = et_exports
    for q, n in res.items():
        assert n["passed"] and n["eval"]["n_images"] == N_EVAL and n["format"] == "executorch", q
        assert json.loads((out / f"m_{q}.pte.numerics.json").read_text())["sha256"] == file_sha256(out / f"m_{q}.pte")
        assert n["versions"]["executorch"]
    assert res["none"]["max_abs_diff"] <= 1e-4 and res["none"]["flips_outside_band"] == 0
    assert res["none"]["mask_iou_mean"] >= 0.999
    assert res["int8"]["mask_iou_mean"] >= 0.95 and res["int8"]["dsc_drop_points"] <= 0.5
    assert res["int8"]["calibration"]["n_images"] == N_CALIB and res["int8"]["calibration"]["split"] == "train"
    # the int8 program is a different computation: its logits move by quantization steps, not by float32 rounding
    assert res["int8"]["max_abs_diff"] > 100 * res["none"]["max_abs_diff"]
    assert (out / "m_int8.pte").stat().st_size < (out / "m_none.pte").stat().st_size
    assert sorted(p.name for p in out.iterdir()) == ["m_int8.pte", "m_int8.pte.numerics.json", "m_none.pte",
                                                      "m_none.pte.numerics.json"]


@pytest.mark.slow
def test_executorch_metadata_batches_and_logits(et_exports, shipped):
    out, _ = et_exports
    seg = runtimes.load(out / "m_none.pte", threads=1)
    assert type(seg).__name__ == "ExecuTorchSegmenter" and seg.runtime in ("executorch", "executorch-numpy-runtime")
    assert seg.metadata["source_checkpoint"]["sha256"] == file_sha256(shipped)
    assert seg.metadata["format"] == "executorch" and seg.metadata["quantization"] == "none"
    assert seg.metadata["threshold"] == 0.5 and seg.input_size == 256
    ref = runtimes.load(shipped, threads=1)
    x = np.random.default_rng(0).random((3, 3, 256, 256), dtype=np.float32)
    for n in (1, 3):  # the program's batch is static 1: the backend runs the images one by one
        # XNNPACK and PyTorch sum the same float32 products in other orders: |diff| of a few 1e-5 at |logit| ~ 10
        np.testing.assert_allclose(seg.run(x[:n]), ref.run(x[:n]), rtol=2e-4, atol=2e-4)
    q = runtimes.load(out / "m_int8.pte", threads=1)
    assert q.metadata["quantization"] == "int8" and q.metadata["calibration"]["n_images"] == N_CALIB


@pytest.mark.slow  # importing executorch alone takes ~5 s here
def test_executorch_bad_files_are_one_line_errors(tmp_path):
    import torch
    from executorch.exir import to_edge_transform_and_lower

    bad = tmp_path / "bad.pte"
    bad.write_bytes(b"not a flatbuffer at all")
    with pytest.raises(runtimes.ModelFileError, match=r"bad\.pte: executorch(-numpy-runtime)? cannot load it \(.*\); "
                                                      r"re-export it with export/to_executorch\.py$"):
        runtimes.load(bad)
    conv = torch.nn.Conv2d(3, 1, 1).eval()  # a .pte without the toolkit's "aulunet" method
    prog = to_edge_transform_and_lower(torch.export.export(conv, (torch.zeros(1, 3, 256, 256),))).to_executorch()
    foreign = tmp_path / "foreign.pte"
    foreign.write_bytes(prog.buffer)
    with pytest.raises(runtimes.ModelFileError, match=r"foreign\.pte: no AULUNet metadata"):
        runtimes.load(foreign)
    with pytest.warns(UserWarning, match="no AULUNet metadata; assuming"):
        seg = runtimes.load(foreign, allow_foreign=True)
    assert seg.run(np.zeros((2, 3, 256, 256), np.float32)).shape == (2, 1, 256, 256)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pte", "foreign.pte"]
