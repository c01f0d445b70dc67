"""Export to TFLite (LiteRT): `python export/to_tflite.py [--quantize none|int8] [--weights W] [--calib DIR] [--out F]`.

fp32: litert-torch (the renamed ai-edge-torch) converts the model wrapped by `to_channel_last_io`, so the
      file takes NHWC float32 (1,S,S,3) and returns NHWC logits (1,S,S,1); the converter's layout passes
      leave no TRANSPOSE in the graph (a test checks).
int8: ai-edge-quantizer, static min-max calibration on real images: every CONV_2D and DEPTHWISE_CONV_2D
      gets int8 weights (per channel) and int8 activations, except the AKF gate convs (1x1 conv on the
      global average), which stay float. Measured on PH2 val (docs/export.md, "INT8 recipes"): all convs quantized ->
      mask IoU vs fp32 0.937 / -2.3 pt DSC; the gate convs kept float -> 0.993 / -0.03 pt; the library's
      full-integer default (every op) -> 0.948 / -1.7 pt. Input and output stay float32.
fp16 is not offered: XNNPACK computes fp16-weight files in fp32 on CPUs, and Android's GPU delegate runs
      the fp32 file in fp16 by itself.
Metadata: a flatbuffer `Model.metadata` entry named "aulunet" holding the JSON (runtimes/litert_backend.py).
"""
from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path
from typing import Optional, Sequence

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from export.cli import script_main
from core.metadata import METADATA_KEY
from export.metadata import dumps

# Float-kept layers for INT8, as a regex over the op's output tensor name (litert-torch names tensors
# by module path). The AKF gate conv sees only the global average: int8 there shifts whole feature maps.
INT8_FLOAT_LAYERS = r"Conv2d_gate"
INT8_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D")
SIGNATURE = "serving_default"
_FP32_CACHE = {}  # (checkpoint sha256, size) -> converted bytes: int8 reuses the fp32 conversion (~1-2 min)


def export_fp32(model, path: Path, size: int = 256) -> None:
    import litert_torch
    import torch

    nhwc = litert_torch.to_channel_last_io(model, args=[0], outputs=[0]).eval()
    litert_torch.convert(nhwc, (torch.zeros(1, size, size, 3),)).export(str(path))


def quantize_int8(src: Path, calib_nchw: np.ndarray, ops: Sequence[str] = INT8_OPS,
                  float_layers: Optional[str] = INT8_FLOAT_LAYERS, granularity: str = "channelwise",
                  mode: str = "static") -> bytes:
    """ai-edge-quantizer on the fp32 file `src`. The defaults are the shipped recipe; the other recipes
    (export/int8_recipes.py) pass: `ops`, TFLite op names or ("*",) for every op the library supports;
    `float_layers`, a regex over op output names kept float (None: none; the file's float32 input and output
    stay float32 whatever `ops` says); `granularity`, "channelwise" or "tensorwise" weights; `mode`, "static" (int8 weights and activations, calibrated min-max) or "dynamic"
    (int8 weights, float activations quantized on the fly, no calibration)."""
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import qtyping, quantizer

    gran = {"channelwise": qtyping.QuantGranularity.CHANNELWISE, "tensorwise": qtyping.QuantGranularity.TENSORWISE}[granularity]
    q = quantizer.Quantizer(str(src))
    layers = rf"^(?!.*(?:{float_layers})).*" if float_layers else ".*"
    for op in ops:
        name = qtyping.TFLOperationName.ALL_SUPPORTED if op == "*" else getattr(qtyping.TFLOperationName, op)
        if mode == "static":
            q.add_static_config(layers, name, 8, 8, gran)
        elif mode == "dynamic":
            q.add_dynamic_config(layers, name, 8, gran)
        else:
            raise ValueError(f"mode {mode!r}: choose static or dynamic")
    if "*" in ops and mode == "static":  # "every op" would make the file's input and output int8: keep them float32,
        for io in ("INPUT", "OUTPUT"):    # the runtimes' contract (a QUANTIZE/DEQUANTIZE at the ends, same numbers)
            q.update_quantization_recipe(".*", getattr(qtyping.TFLOperationName, io), algorithm_key="no_quantize")
    if not q.need_calibration:
        return bytes(q.quantize(enable_progress_report=False).quantized_model)
    input_name = Interpreter(str(src)).get_signature_list()[SIGNATURE]["inputs"][0]
    data = {SIGNATURE: [{input_name: x.transpose(1, 2, 0)[None]} for x in calib_nchw]}
    result = q.quantize(q.calibrate(data, num_threads=1), enable_progress_report=False)
    return bytes(result.quantized_model)


def short_name(name: str) -> str:
    """litert-torch names tensors by full module path (half the file); keep the model's own path:
    'litert_torch...Wrapper/model.networks.aulunet.AULUNet_wrapped/model.networks.aulunet.AKF_stem_mix/torch.nn.modules.conv.Conv2d_gate;2'
    -> 'AKF_stem_mix/Conv2d_gate;2' (fused ops join several such names with ';;')."""
    parts = [re.sub(r"(?:[a-z_][a-z0-9_]*\.)+(?=[A-Z])", "", p.split("AULUNet_wrapped/")[-1]) for p in name.split(";;")]
    return ";;".join(parts)


def finish(model_bytes: bytes, meta) -> bytes:
    """Shorten tensor names and add (or replace) the `aulunet` entry of the flatbuffer's Model.metadata."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    m = flatbuffer_utils.read_model_from_bytearray(bytearray(model_bytes))
    for subgraph in m.subgraphs:
        for tensor in subgraph.tensors:
            if tensor.name:
                tensor.name = short_name(tensor.name.decode() if isinstance(tensor.name, bytes) else tensor.name)
    m.metadata = [e for e in (m.metadata or []) if e.name not in (METADATA_KEY, METADATA_KEY.encode())]
    buf = schema.BufferT()
    buf.data = np.frombuffer(dumps(meta).encode(), dtype=np.uint8)
    m.buffers.append(buf)
    entry = schema.MetadataT()
    entry.name, entry.buffer = METADATA_KEY, len(m.buffers) - 1
    m.metadata.append(entry)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(m))


def build(model, meta, quantize: str, calib, path: Path, recipe: Optional[dict] = None) -> None:
    """recipe: INT8 only, keyword arguments of quantize_int8 (None = the shipped recipe)."""
    size = meta["preprocessing"]["input_size"][0]
    key = (meta["source_checkpoint"]["sha256"], size)
    with tempfile.TemporaryDirectory() as td:
        fp32 = Path(td) / "fp32.tflite"
        if key in _FP32_CACHE:
            fp32.write_bytes(_FP32_CACHE[key])
        else:
            export_fp32(model, fp32, size)
            _FP32_CACHE[key] = fp32.read_bytes()
        data = quantize_int8(fp32, calib, **(recipe or {})) if quantize == "int8" else fp32.read_bytes()
    path.write_bytes(finish(data, meta))


if __name__ == "__main__":
    script_main("tflite", build)
