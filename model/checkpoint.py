"""Checkpoint files: atomic save, safe load (weights_only=True), clear errors, model rebuild."""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Dict, Tuple

import torch

from .aulunet import AULUNet, AULUNetConfig

FORMAT = "aulunet-checkpoint/1"
TOOLKIT_VERSION = "0.1.0"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and the fix."""


def atomic_write_bytes(path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def save_atomic(obj, path) -> None:
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_checkpoint(path, map_location="cpu") -> Dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found; pass --weights with a .pt written by model/train.py")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises several types for truncated/foreign files
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}); re-download or retrain it") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT or "state_dict" not in ckpt:
        raise CheckpointError(f"{path}: not an AULUNet checkpoint (no '{FORMAT}' header); use a file written by model/train.py")
    return ckpt


def model_from_checkpoint(path, map_location="cpu") -> Tuple[AULUNet, Dict]:
    ckpt = load_checkpoint(path, map_location)
    model = AULUNet(AULUNetConfig.from_dict(ckpt["config"]))
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise CheckpointError(f"{path}: weights do not fit the config stored in it ({first}); the file is inconsistent, retrain it") from None
    return model.eval(), ckpt
