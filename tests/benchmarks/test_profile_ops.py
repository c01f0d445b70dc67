"""benchmarks/profile_ops.py: per-op time in ONNX Runtime and OpenVINO, and bad numbers."""
import json

import pytest

from tests.conftest import REPO


def test_profile_ops_onnx_and_openvino(tmp_path, capsys):
    from benchmarks import profile_ops

    files = [REPO / "exports" / "aulunet_v3_ph2.onnx", REPO / "exports" / "aulunet_v3_ph2_int8.xml"]
    res = profile_ops.main([*map(str, files), "--threads", "1", "--runs", "2", "--json", str(tmp_path / "p.json")])
    ort_ops, ov_ops = res["aulunet_v3_ph2.onnx"], res["aulunet_v3_ph2_int8.xml"]
    assert ort_ops["Conv"] > 0 and 0 < ort_ops["@full-res"] < sum(v for k, v in ort_ops.items() if k != "@full-res")
    assert any(k.startswith("Convolution [") and "8" in k.split("[")[1] for k in ov_ops), ov_ops  # int8 kernels
    assert json.loads((tmp_path / "p.json").read_text()).keys() == res.keys()
    out = capsys.readouterr().out
    assert "ONNX Runtime, 1 thread(s)" in out and "OpenVINO, 1 thread(s)" in out and "of which at 256x256" in out
    with pytest.raises(SystemExit, match="not an existing .onnx or .xml file"):
        profile_ops.main([str(tmp_path / "model.tflite")])


def test_profile_ops_bad_numbers():
    from benchmarks import profile_ops

    with pytest.raises(SystemExit, match=r"--runs must be at least 1 \(got 0\)"):
        profile_ops.main(["--runs", "0"])
