"""Export to OpenVINO IR: `python export/to_openvino.py [--quantize none|fp16|int8] [--weights W] [--calib DIR] [--out F.xml]`.

The IR is converted from the same simplified ONNX graph that export/to_onnx.py writes (dynamic batch).
fp32: saved with compress_to_fp16=False (save_model compresses weights to fp16 by default).
fp16: weights stored as fp16.
int8: nncf.quantize (post-training, calibrated on real images) with the settings in INT8_SETTINGS.
Metadata travels in the IR's rt_info under "aulunet" (JSON).
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from export.cli import script_main
from export.metadata import METADATA_KEY, dumps
from export.to_onnx import export_fp32


def quantize_int8(ov_model, calib):
    import nncf

    dataset = nncf.Dataset(list(calib), lambda x: x[None])
    return nncf.quantize(ov_model, dataset, subset_size=len(calib), **INT8_SETTINGS())


def INT8_SETTINGS():
    import nncf

    return {"preset": nncf.QuantizationPreset.PERFORMANCE, "target_device": nncf.TargetDevice.CPU}


def build(model, meta, quantize: str, calib, path: Path) -> None:
    import openvino as ov

    with tempfile.TemporaryDirectory() as td:
        onnx_path = Path(td) / "fp32.onnx"
        export_fp32(model, onnx_path, meta["preprocessing"]["input_size"][0])
        ov_model = ov.convert_model(str(onnx_path))
    if quantize == "int8":
        ov_model = quantize_int8(ov_model, calib)
    ov_model.set_rt_info(dumps(meta), [METADATA_KEY])
    ov.save_model(ov_model, str(path), compress_to_fp16=(quantize == "fp16"))


if __name__ == "__main__":
    script_main("openvino", build)
