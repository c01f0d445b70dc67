"""Checkpoint files: atomic save, safe load (weights_only=True), clear errors, model rebuild."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Tuple

import torch

from .aulunet import AULUNet, AULUNetConfig
from core.errors import CheckpointError
from core.safeio import atomic_write_bytes
from runtimes.base import header_problem  # numpy-only: the same bounds as every export's metadata

FORMAT = "aulunet-checkpoint/1"
# What every checkpoint written by model/train.py carries; a header without one of them cannot be used.
REQUIRED = {"state_dict": dict, "config": dict, "model": str, "preprocessing": dict, "threshold": (int, float)}


def save_atomic(obj, path) -> None:
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path, map_location="cpu") -> Dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found; pass --weights with a .pt written by model/train.py")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises several types for truncated/foreign files
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}); re-download or retrain it") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an AULUNet checkpoint (no '{FORMAT}' header); use a file written by model/train.py")
    for key, kind in REQUIRED.items():
        if not isinstance(ckpt.get(key), kind):
            what = "lacks" if key not in ckpt else "has a malformed"
            raise CheckpointError(f"{path}: checkpoint {what} '{key}' (needed to rebuild and run the model); "
                                  f"the file is damaged or from another tool: retrain it with model/train.py")
    if not 0.0 < float(ckpt["threshold"]) < 1.0:
        raise CheckpointError(f"{path}: its threshold {ckpt['threshold']} is not a probability between 0 and 1; "
                              f"the file is damaged: retrain it with model/train.py")
    problem = header_problem(ckpt["config"], ckpt["preprocessing"])  # before the model is built (allocated)
    if problem:
        what = "its 'config' does not describe an AULUNet" if problem.startswith("its config") else "bad header"
        raise CheckpointError(f"{path}: {what} ({problem}); the file is damaged or from another tool: "
                              f"retrain it with model/train.py")
    return ckpt


def model_from_checkpoint(path, map_location="cpu") -> Tuple[AULUNet, Dict]:
    ckpt = load_checkpoint(path, map_location)
    try:
        model = AULUNet(AULUNetConfig.from_dict(ckpt["config"]))
    except (TypeError, ValueError, KeyError, IndexError) as e:
        raise CheckpointError(f"{path}: its 'config' does not describe an AULUNet ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''}); retrain it with model/train.py") from None
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise CheckpointError(f"{path}: weights do not fit the config stored in it ({first}); the file is inconsistent, retrain it") from None
    return model.eval(), ckpt
