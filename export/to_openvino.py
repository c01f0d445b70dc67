"""Export to OpenVINO IR: `python export/to_openvino.py [--quantize none|fp16] [--weights W] [--out F.xml]`.

The IR is converted from the same simplified ONNX graph that export/to_onnx.py writes (dynamic batch).
fp32: saved with compress_to_fp16=False (save_model compresses weights to fp16 by default).
fp16: weights stored as fp16.
INT8 is not offered yet: nncf's post-training quantization missed the INT8 gate on PH2 val (README, "INT8").
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


def build(model, meta, quantize: str, calib, path: Path) -> None:
    import openvino as ov

    with tempfile.TemporaryDirectory() as td:
        onnx_path = Path(td) / "fp32.onnx"
        export_fp32(model, onnx_path, meta["preprocessing"]["input_size"][0])
        ov_model = ov.convert_model(str(onnx_path))
    ov_model.set_rt_info(dumps(meta), [METADATA_KEY])
    ov.save_model(ov_model, str(path), compress_to_fp16=(quantize == "fp16"))


if __name__ == "__main__":
    script_main("openvino", build)
