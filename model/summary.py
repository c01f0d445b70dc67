"""Parameters and GFLOPs per variant and ablation: `python model/summary.py [--variant v3|all] [--json FILE]`.

"GFLOPs" follows the field's convention: multiply-accumulates as `thop` counts them at 1x3x256x256
(convolutions, batch norm and pooling; the functional bilinear upsampling and the elementwise
gate arithmetic are not counted by thop, as in the reference's figure).
"""
from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from model.networks.aulunet import build_model, list_models, model_name
from core.clitools import ArgumentParser, HelpFormatter, check_ranges, user_errors
from core.errors import UserError
from core.preprocess import SIZE_MULTIPLE


def count(name_or_model, size: int = 0) -> Dict:
    """Parameters and thop MACs of a registry model (or a built AULUNet, e.g. a checkpoint's) at `size`
    (0: the variant's own input size)."""
    import thop

    model = (build_model(name_or_model) if isinstance(name_or_model, str) else copy.deepcopy(name_or_model)).eval()
    size = size or model.cfg.input_size
    params = sum(p.numel() for p in model.parameters())
    macs, _ = thop.profile(model, (torch.zeros(1, 3, size, size),), verbose=False)
    return {"params": int(params), "gflops": round(macs / 1e9, 6), "size": size}


def summarize(names: Sequence[str], size: int = 0) -> Dict[str, Dict]:
    return {n: count(n, size) for n in names}


def markdown(rows: Dict[str, Dict]) -> str:
    lines = ["| model | params | GFLOPs (thop MACs) | input |", "|---|---:|---:|---:|"]
    lines += [f"| {n} | {r['params']:,} | {r['gflops']:.4f} | {r['size']} |" for n, r in rows.items()]
    return "\n".join(lines)


@user_errors
def main(argv: Optional[Sequence[str]] = None) -> Dict:
    p = ArgumentParser(description=__doc__.splitlines()[0], formatter_class=HelpFormatter)
    p.add_argument("--variant", default="all", help="v1, v2, v3, a registry name, or all")
    p.add_argument("--size", type=int, default=0,
                   help="square input side the MACs are counted at (0 = each variant's own: 256 for the paper's, 128 for "
                        "aulunet_v3_in128; a multiple of 64)")
    p.add_argument("--json", default=None, help="also write {model: {params, gflops}} here (default: print only)")
    args = p.parse_args(argv)
    check_ranges(args, {"size": 0})
    if args.size % (2 * SIZE_MULTIPLE):
        raise UserError(f"--size {args.size}: give a multiple of {2 * SIZE_MULTIPLE} (the stride-2 variant halves the resolution six times) or 0")
    if args.variant == "all":
        names: List[str] = list_models()
    else:
        name = model_name(args.variant)
        if name not in list_models():
            raise UserError(f"unknown variant '{args.variant}'; known: {', '.join(list_models())}")
        names = [name]
    rows = summarize(names, args.size)
    print(markdown(rows))
    if args.json:
        from core.safeio import atomic_write_text

        atomic_write_text(args.json, json.dumps(rows, indent=1) + "\n")
    return rows


if __name__ == "__main__":
    main()
