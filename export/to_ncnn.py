"""Export to ncnn: `python export/to_ncnn.py [--quantize none|fp16|int8] [--weights W] [--calib DIR] [--out F.ncnn.param]`.

fp32: pnnx (TorchScript trace of the rewritten graph at 1x3xSxS) writes the ncnn .param/.bin with float32
      weights (pnnx's default would store fp16). The AKF gate (1x1 conv on the global average) becomes an
      InnerProduct; every other conv a Convolution / ConvolutionDepthWise with its BN and ReLU fused.
fp16: the same graph with pnnx's fp16 weight storage; ncnn runs it with its fp16 options on (its default).
int8: the fp32 files quantized here, as ncnn's own ncnn2table + ncnn2int8 would (those tools are not in
      the ncnn or pnnx wheels): every Convolution and ConvolutionDepthWise gets int8 weights (symmetric,
      per output channel, scale 127/absmax) and one int8 input scale, 127/absmax of its input blob over the
      calibration images (MinMax, run through the fp32 file in ncnn); outputs stay float (no requantize
      fusion). The InnerProduct gate stays float, like the gate convs of the TFLite recipe.
Metadata: the toolkit's JSON in a sidecar <name>.ncnn.json beside <name>.ncnn.param and <name>.ncnn.bin
      (ncnn's .param has no place for it); the three files travel together.
"""
from __future__ import annotations

import struct
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from export.cli import script_main
from export.metadata import dumps
from core.errors import UserError

INT8_LAYERS = ("Convolution", "ConvolutionDepthWise")
# layer types of a pnnx-written AULUNet graph that carry no weights in the .bin
WEIGHTLESS = {"Input", "Split", "Pooling", "BinaryOp", "Interp", "ReLU", "Sigmoid", "TanH", "Concat", "Eltwise",
              "Crop", "Reshape", "Permute", "Flatten", "Clip", "HardSigmoid", "HardSwish", "Swish", "Noop", "UnaryOp"}
TAG_INT8 = 0x000D4B38
# .param keys of each weight-carrying layer: (num_output, bias_term, weight_data_size)
WEIGHT_KEYS = {"Convolution": (0, 5, 6), "ConvolutionDepthWise": (0, 5, 6), "InnerProduct": (0, 1, 2)}
_FP32_CACHE: Dict[Tuple, Tuple[bytes, bytes]] = {}  # (checkpoint sha256, size, fp16) -> (.param, .bin) bytes


def require_tools() -> None:
    """pnnx writes the files and ncnn checks and calibrates them: say which is missing and how to get it, in one line."""
    import importlib.util

    missing = [m for m in ("pnnx", "ncnn") if importlib.util.find_spec(m) is None]
    if missing:
        raise UserError(f"{' and '.join(missing)} not installed, so no ncnn files can be written; "
                        f"pip install -c constraints.txt -e '.[ncnn]'")


def export_pnnx(model, param: Path, size: int = 256, fp16: bool = False) -> None:
    """pnnx: trace the module and write the ncnn .param and .bin (its other outputs go to a scratch folder)."""
    import pnnx
    import torch

    with tempfile.TemporaryDirectory() as td:
        t = Path(td)
        pnnx.export(model.eval(), str(t / "m.pt"), (torch.zeros(1, 3, size, size),), fp16=fp16,
                    ncnnparam=str(param), ncnnbin=str(param.with_suffix(".bin")), ncnnpy=str(t / "m_ncnn.py"),
                    pnnxparam=str(t / "m.pnnx.param"), pnnxbin=str(t / "m.pnnx.bin"), pnnxpy=str(t / "m_pnnx.py"),
                    pnnxonnx=str(t / "m.pnnx.onnx"))
    if not param.is_file() or not param.with_suffix(".bin").is_file():
        raise RuntimeError("pnnx wrote no .ncnn.param/.ncnn.bin (run with --verbose to see why)")


class Layer:
    """One line of an ncnn .param: type, name, bottoms, tops and its key=value tokens (kept as text)."""

    def __init__(self, line: str):
        tok = line.split()
        self.type, self.name = tok[0], tok[1]
        nb, nt = int(tok[2]), int(tok[3])
        self.bottoms, self.tops = tok[4:4 + nb], tok[4 + nb:4 + nb + nt]
        self.params = tok[4 + nb + nt:]
        self.weights: List[np.ndarray] = []  # float32 arrays in .bin order (weight, bias)

    def get(self, key: int, default: int = 0) -> int:
        for p in self.params:
            k, _, v = p.partition("=")
            if k == str(key):
                return int(v)
        return default

    def line(self) -> str:
        return " ".join([self.type, self.name, str(len(self.bottoms)), str(len(self.tops)), *self.bottoms, *self.tops,
                         *self.params])


def read_ncnn(param: Path, binfile: Path) -> Tuple[List[str], List[Layer]]:
    """Parse a float32 .param/.bin pair written by pnnx into its header and layers with their weights."""
    lines = param.read_text().split("\n")
    header, layers = lines[:2], [Layer(ln) for ln in lines[2:] if ln.strip()]
    data, off = binfile.read_bytes(), 0
    for layer in layers:
        if layer.type in WEIGHTLESS:
            continue
        if layer.type not in WEIGHT_KEYS:
            raise ValueError(f"ncnn layer {layer.type} ({layer.name}) carries weights this INT8 pass does not know")
        k_out, k_bias, k_size = WEIGHT_KEYS[layer.type]
        n = layer.get(k_size)
        tag = struct.unpack_from("<I", data, off)[0]
        if tag != 0:
            raise ValueError(f"ncnn layer {layer.name}: weights are not stored as float32 (tag {tag:#x})")
        layer.weights.append(np.frombuffer(data, np.float32, n, off + 4).copy())
        off += 4 + 4 * n
        if layer.get(k_bias):
            layer.weights.append(np.frombuffer(data, np.float32, layer.get(k_out), off).copy())
            off += 4 * layer.get(k_out)
    if off != len(data):
        raise ValueError(f"{binfile.name}: {len(data) - off} bytes left after the last layer's weights")
    return header, layers


def calibrate(param: Path, layers: List[Layer], calib: np.ndarray) -> Dict[str, float]:
    """absmax of each of `layers`' input blob over the calibration images, run one at a time in ncnn fp32."""
    import ncnn

    net = ncnn.Net()
    for opt in ("use_fp16_storage", "use_fp16_packed", "use_fp16_arithmetic", "use_bf16_storage", "lightmode"):
        setattr(net.opt, opt, False)  # lightmode off: every intermediate blob stays for extract()
    net.opt.num_threads = 1
    net.load_param(str(param))
    net.load_model(str(param.with_suffix(".bin")))
    blobs = sorted({layer.bottoms[0] for layer in layers})
    absmax = dict.fromkeys(blobs, 0.0)
    for img in calib:
        with net.create_extractor() as ex:
            ex.input(net.input_names()[0], ncnn.Mat(np.ascontiguousarray(img, np.float32)).clone())
            for b in blobs:
                ret, m = ex.extract(b)
                if ret != 0:
                    raise RuntimeError(f"ncnn could not compute blob {b} for calibration (code {ret})")
                absmax[b] = max(absmax[b], float(np.abs(np.array(m)).max()))
    return absmax


def quantize_int8(param: Path, calib, layer_types: Sequence[str] = INT8_LAYERS) -> Tuple[str, bytes]:
    """The int8 .param text and .bin bytes of the fp32 pair `param` (+ its .bin): int8 weights (per output
    channel / group) and one calibrated input scale for each layer of `layer_types`, the rest unchanged. The
    default is the shipped recipe; export/int8_recipes.py also passes InnerProduct (the AKF gate)."""
    header, layers = read_ncnn(param, param.with_suffix(".bin"))
    absmax = calibrate(param, [layer for layer in layers if layer.type in layer_types], calib)
    out = bytearray()
    for layer in layers:
        if not layer.weights:
            continue
        if layer.type not in layer_types:
            out += struct.pack("<I", 0) + b"".join(w.astype("<f4").tobytes() for w in layer.weights)
            continue
        groups = layer.get(7, 1) if layer.type == "ConvolutionDepthWise" else layer.get(0)
        w = layer.weights[0].reshape(groups, -1)
        wmax = np.abs(w).max(axis=1)
        wscale = np.where(wmax > 0, 127.0 / np.maximum(wmax, 1e-30), 1.0).astype(np.float32)
        q = np.clip(np.round(w * wscale[:, None]), -127, 127).astype(np.int8).ravel()
        amax = absmax[layer.bottoms[0]]
        ascale = np.float32(127.0 / amax if amax > 0 else 1.0)
        out += struct.pack("<I", TAG_INT8) + q.tobytes() + b"\0" * (-len(q) % 4)
        if len(layer.weights) > 1:
            out += layer.weights[1].astype("<f4").tobytes()
        out += wscale.astype("<f4").tobytes() + struct.pack("<f", ascale)
        # 8=int8_scale_term: 2 for Convolution / InnerProduct (per-output-channel weight scales), 1 for ConvolutionDepthWise (per group)
        layer.params = [p for p in layer.params if not p.startswith("8=")] + [f"8={1 if layer.type == 'ConvolutionDepthWise' else 2}"]
    return "\n".join(header + [layer.line() for layer in layers]) + "\n", bytes(out)


def build(model, meta, quantize: str, calib, path: Path, recipe: Optional[dict] = None) -> None:
    """path: <name>.ncnn.param; writes <name>.ncnn.bin and the metadata <name>.ncnn.json beside it.
    recipe: INT8 only, keyword arguments of quantize_int8 (None = the shipped recipe)."""
    require_tools()
    size = meta["preprocessing"]["input_size"][0]
    fp16 = quantize == "fp16"
    key = (meta["source_checkpoint"]["sha256"], size, fp16, tuple(meta.get("graph_rewrites", ())))
    binfile = path.with_suffix(".bin")
    if key in _FP32_CACHE:
        path.write_bytes(_FP32_CACHE[key][0])
        binfile.write_bytes(_FP32_CACHE[key][1])
    else:
        export_pnnx(model, path, size, fp16)
        _FP32_CACHE[key] = (path.read_bytes(), binfile.read_bytes())
    if quantize == "int8":
        text, data = quantize_int8(path, calib, **(recipe or {}))
        path.write_text(text)
        binfile.write_bytes(data)
    path.with_suffix(".json").write_text(dumps(meta) + "\n")


if __name__ == "__main__":
    script_main("ncnn", build)
