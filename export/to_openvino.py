"""Export to OpenVINO IR: `python export/to_openvino.py [--quantize none|fp16|int8] [--weights W] [--calib DIR] [--out F.xml]`.

The IR is converted from the same simplified ONNX graph that export/to_onnx.py writes (dynamic batch).
fp32: saved with compress_to_fp16=False (save_model compresses weights to fp16 by default).
fp16: weights stored as fp16.
int8: nncf.quantize on the fp32 IR with only the 1x1 convolutions and the 3x3 stem quantized (INT8_IGNORED_TYPES:
      the depthwise GroupConvolutions, elementwise ops, pooling, resize and concat stay float, and so do the AKF
      gate convs): OpenVINO's CPU plugin runs dilated depthwise convs and AvgPool slower in INT8 than in fp32, so
      quantizing them cost more than it saved. Every recipe tried, with its accuracy and latency:
      export/int8_recipes.py (docs/export.md, "INT8 recipes"); the earlier shipped recipe, the ONNX Runtime QDQ
      model converted by OpenVINO's ONNX frontend, is its recipe "openvino-ort-qdq".
Metadata travels in the IR's rt_info under "aulunet" (JSON), with the sha256 of the .bin (key "bin_sha256"):
the backend refuses an .xml beside another model's .bin.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Optional, Sequence

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from export.cli import script_main
from core.metadata import BIN_SHA_KEY, METADATA_KEY
from export.metadata import dumps
from core.safeio import file_sha256
from export.to_onnx import fp32_onnx
from export.to_onnx import quantize_int8 as ort_quantize_int8


# The shipped INT8 recipe's ignored scope: everything but the 1x1 convolutions and the stem, and the AKF gate convs.
INT8_IGNORED_TYPES = ("GroupConvolution", "Multiply", "Subtract", "Add", "AvgPool", "ReduceMean", "Interpolate", "Concat")
INT8_IGNORED_PATTERNS = (".*/gate/.*",)


def quantize_int8(onnx_fp32: Path, calib, method: str = "nncf", preset: Optional[str] = None,
                  ignored_types: Sequence[str] = INT8_IGNORED_TYPES, ignored_patterns: Sequence[str] = INT8_IGNORED_PATTERNS,
                  ignore_dilated: bool = False, **ort_params):
    """The INT8 OpenVINO model from the fp32 ONNX graph. The defaults are the shipped recipe (nncf, the ignored
    scope above). method "nncf": nncf.quantize on the fp32 IR with `preset` (None = nncf's default, "performance"
    or "mixed") and an ignored scope of op types (`ignored_types`, e.g. "Multiply") and node-name regexes
    (`ignored_patterns`); method "ort-qdq": the ONNX Runtime QDQ model of export/to_onnx.py (its keyword arguments
    in `ort_params`) converted by the ONNX frontend; `ignore_dilated` (nncf) also keeps float every convolution with a dilation above 1 (the
    dilation-2 depthwise convolutions, which OpenVINO's CPU plugin runs in a generic INT8 kernel)."""
    import openvino as ov

    if method == "ort-qdq":
        q = onnx_fp32.with_name("int8.onnx")
        ort_quantize_int8(onnx_fp32, q, calib, **ort_params)
        return ov.convert_model(str(q))
    if method != "nncf" or ort_params:
        raise ValueError(f"method {method!r} with {sorted(ort_params)}: choose ort-qdq (ONNX Runtime arguments) or nncf")
    import nncf

    fp32 = ov.convert_model(str(onnx_fp32))
    dilated = [op.get_friendly_name() for op in fp32.get_ops() if ignore_dilated
               and op.get_type_name() in ("Convolution", "GroupConvolution")
               and any(d > 1 for d in op.get_attributes().get("dilations", ()))]
    scope = nncf.IgnoredScope(names=dilated, types=list(ignored_types), patterns=list(ignored_patterns), validate=False)
    return nncf.quantize(fp32, nncf.Dataset([x[None] for x in calib]),
                         preset=None if preset is None else {"performance": nncf.QuantizationPreset.PERFORMANCE,
                                                             "mixed": nncf.QuantizationPreset.MIXED}[preset],
                         subset_size=len(calib), ignored_scope=scope)


def build(model, meta, quantize: str, calib, path: Path, recipe: Optional[dict] = None) -> None:
    """recipe: INT8 only, keyword arguments of quantize_int8 (None = the shipped recipe)."""
    import openvino as ov

    with tempfile.TemporaryDirectory() as td:
        onnx_path = Path(td) / "fp32.onnx"
        fp32_onnx(model, meta, onnx_path)
        if quantize == "int8":
            ov_model = quantize_int8(onnx_path, calib, **(recipe or {}))
        else:
            ov_model = ov.convert_model(str(onnx_path))
        # The .xml records the sha256 of its .bin (runtimes/openvino_backend.py checks it at load): the weights
        # are saved once here to hash them, then with the hash in the metadata; the .bin must come out the same.
        probe = Path(td) / "probe.xml"
        ov.save_model(ov_model, str(probe), compress_to_fp16=(quantize == "fp16"))
        bin_sha = file_sha256(probe.with_suffix(".bin"))
    meta = {**meta, BIN_SHA_KEY: bin_sha}
    ov_model.set_rt_info(dumps(meta), [METADATA_KEY])
    ov.save_model(ov_model, str(path), compress_to_fp16=(quantize == "fp16"))
    if file_sha256(path.with_suffix(".bin")) != bin_sha:
        raise RuntimeError("OpenVINO wrote different weights on the second save, so the .bin's hash cannot be recorded")


if __name__ == "__main__":
    script_main("openvino", build)
