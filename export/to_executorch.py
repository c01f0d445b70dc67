"""Export to ExecuTorch: `python export/to_executorch.py [--quantize none|int8] [--weights W] [--calib DIR] [--out F.pte]`.

fp32: torch.export of the rewritten graph at a static batch of 1 (1,3,S,S), lowered with
      to_edge_transform_and_lower and the XNNPACK partitioner, written as a .pte program.
int8: torchao's pt2e flow before lowering: XNNPACKQuantizer with its symmetric config, per-channel int8
      weights and static per-tensor int8 activations (every conv, linear and the ops XNNPACK quantizes with
      them), observers calibrated on real images fed one at a time (the batch is static 1); prepare_pt2e,
      calibration, convert_pt2e, then the fp32 lowering. Input and output stay float32.
Metadata: a constant method "aulunet" of the program returning the toolkit's JSON as a uint8 tensor (UTF-8
      bytes; executorch-numpy-runtime returns only tensors and numbers from a method, not strings);
      runtimes/executorch_backend.py reads it with the runtime before loading "forward".
"""
from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Optional

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from export.cli import script_main
from core.metadata import METADATA_KEY
from export.metadata import dumps
from core.errors import UserError


def quantize_int8(model, calib, per_channel: bool = True):
    """The pt2e-quantized module (torch.fx GraphModule) of `model`, calibrated on `calib` (N,3,S,S) one image at a
    time. The default is the shipped recipe; per_channel=False gives per-tensor weights (export/int8_recipes.py)."""
    import torch
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import XNNPACKQuantizer, get_symmetric_quantization_config
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=per_channel))
    example = (torch.zeros(1, *calib.shape[1:]),)
    prepared = prepare_pt2e(torch.export.export(model, example).module(), quantizer)
    with torch.no_grad():
        for img in calib:
            prepared(torch.from_numpy(img[None]))
    return convert_pt2e(prepared)


def require_executorch() -> None:
    """executorch (its exir and XNNPACK partitioner) is needed to write a .pte: say how to get it, in one line."""
    import importlib.util

    if importlib.util.find_spec("executorch") is None:
        raise UserError("executorch is not installed, so no .pte can be written; "
                        "pip install -c constraints.txt -e '.[executorch]' (executorch==1.5.1 beside torch 2.13.0)")


def metadata_tensor(meta):
    import torch

    return torch.frombuffer(bytearray(dumps(meta).encode("utf-8")), dtype=torch.uint8).clone()


def build(model, meta, quantize: str, calib, path: Path, recipe: Optional[dict] = None) -> None:
    """recipe: INT8 only, keyword arguments of quantize_int8 (None = the shipped recipe)."""
    require_executorch()
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    size = meta["preprocessing"]["input_size"][0]
    example = (torch.zeros(1, 3, size, size),)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = quantize_int8(model.eval(), calib, **(recipe or {})) if quantize == "int8" else model.eval()
        program = to_edge_transform_and_lower(torch.export.export(module, example), partitioner=[XnnpackPartitioner()],
                                              constant_methods={METADATA_KEY: metadata_tensor(meta)}).to_executorch()
    path.write_bytes(program.buffer)


if __name__ == "__main__":
    script_main("executorch", build)
