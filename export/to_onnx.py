"""Export to ONNX: `python export/to_onnx.py [--quantize none|fp16|int8] [--weights W] [--calib DIR] [--out F]`.

fp32: torch.onnx (TorchScript exporter, opset 17, dynamic batch), simplified with onnxsim.
fp16: onnxconverter-common's float16 conversion, float32 input/output kept.
int8: onnxruntime.quantization.quantize_static, QDQ, per-tensor weights, MinMax calibration on real images,
      only the 1x1 convolutions and the 3x3 stem: the depthwise convolutions and the AKF gate convs stay float.
      ONNX Runtime's quantized depthwise convolutions are several times slower than its fp32 ones, so quantizing
      every Conv (the earlier shipped recipe, "onnx-per-tensor") made the file 4.1x slower than fp32 and this one
      1.9x on an AMD EPYC host, same accuracy (docs/export.md, "INT8 recipes"; INT8 is still not faster than fp32
      in ONNX Runtime there: use fp32). Per-channel weights flipped masks on an AMD EPYC host in an earlier ONNX
      Runtime (PH2 val, mean IoU vs fp32 0.77) but not on an AVX-512 VNNI Xeon (0.99).
      The other recipes: export/int8_recipes.py.
Metadata travels in the model's metadata_props under the key "aulunet" (JSON).
"""
from __future__ import annotations

import re
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Optional, Sequence

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from export.cli import script_main
from core.metadata import METADATA_KEY
from export.metadata import dumps

OPSET = 17
# Which op types INT8 touches. Only Conv: quantizing the gate arithmetic (Mul/Sub/Add of AKF, RGF
# and LSG) and the sigmoids flips masks (see docs/export.md, "INT8 recipes").
INT8_OP_TYPES = ["Conv"]
# Node names of the Convs the shipped recipe keeps float besides the depthwise ones: the AKF gate convs.
INT8_EXCLUDE = "/gate/"
_FP32_CACHE = {}  # (checkpoint sha256, size, rewrites) -> simplified fp32 ONNX bytes: fp16/int8/OpenVINO reuse it


def export_fp32(model, path: Path, size: int = 256) -> None:
    import onnx
    import torch
    from onnxsim import simplify

    x = torch.zeros(1, 3, size, size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), input_names=["image"], output_names=["logits"],
                          dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, opset_version=OPSET,
                          dynamo=False)
    simplified, ok = simplify(onnx.load(str(path)))
    if not ok:
        raise RuntimeError("onnxsim could not validate the simplified model")
    onnx.save(simplified, str(path))


class _Reader:
    """onnxruntime CalibrationDataReader over preprocessed images, one at a time."""

    def __init__(self, x: np.ndarray):
        self.it = iter(x)

    def get_next(self):
        nxt = next(self.it, None)
        return None if nxt is None else {"image": nxt[None]}


def quantize_int8(src: Path, dst: Path, calib: np.ndarray, per_channel: bool = False,
                  op_types: Sequence[str] = tuple(INT8_OP_TYPES), exclude: Optional[str] = INT8_EXCLUDE,
                  skip_depthwise: bool = True) -> None:
    """Static QDQ quantization calibrated (MinMax) on `calib`. The defaults are the shipped recipe; the other
    recipes (export/int8_recipes.py) pass per-channel weights, other op types, `exclude`, a regex over node
    names kept float ("/gate/", the AKF gate convs; None: none), and `skip_depthwise`: every grouped (depthwise)
    Conv kept float, so only the 1x1 convolutions and the 3x3 stem run in INT8 (False: every Conv)."""
    import onnx
    from onnx import helper

    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    graph = onnx.load(str(src)).graph
    nodes = [n.name for n in graph.node if re.search(exclude, n.name)] if exclude else []
    if skip_depthwise:
        nodes += [n.name for n in graph.node if n.op_type == "Conv" and n.name not in nodes
                  and any(a.name == "group" and helper.get_attribute_value(a) > 1 for a in n.attribute)]
    quantize_static(str(src), str(dst), _Reader(calib), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax, op_types_to_quantize=list(op_types),
                    nodes_to_exclude=nodes)


def fp32_onnx(model, meta, path: Path) -> None:
    """Write the simplified fp32 graph to `path`, converting once per checkpoint in this process."""
    key = (meta["source_checkpoint"]["sha256"], meta["preprocessing"]["input_size"][0], tuple(meta.get("graph_rewrites", ())))
    if key not in _FP32_CACHE:
        export_fp32(model, path, key[1])
        _FP32_CACHE[key] = Path(path).read_bytes()
    else:
        Path(path).write_bytes(_FP32_CACHE[key])


def build(model, meta, quantize: str, calib, path: Path, recipe: Optional[dict] = None) -> None:
    """recipe: INT8 only, keyword arguments of quantize_int8 (None = the shipped recipe)."""
    import onnx

    with tempfile.TemporaryDirectory() as td:
        fp32 = Path(td) / "fp32.onnx"
        fp32_onnx(model, meta, fp32)
        if quantize == "int8":
            q = Path(td) / "int8.onnx"
            quantize_int8(fp32, q, calib, **(recipe or {}))
            m = onnx.load(str(q))
        elif quantize == "fp16":
            from onnxconverter_common import float16

            m = float16.convert_float_to_float16(onnx.load(str(fp32)), keep_io_types=True)
        else:
            m = onnx.load(str(fp32))
    del m.metadata_props[:]
    entry = m.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, dumps(meta)
    m.producer_name = "aulunet-edge"
    onnx.save(m, str(path))


if __name__ == "__main__":
    script_main("onnx", build)
