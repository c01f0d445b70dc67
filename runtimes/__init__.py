"""One inference interface over the toolkit's model files.

`load(path)` picks the backend by suffix and returns a `Segmenter`. Backends import their runtime
lazily, so a device without torch can still load the other formats.
"""
from __future__ import annotations

from pathlib import Path

from .base import ModelFileError, Segmenter

from export.formats import FORMATS

BACKENDS = {f.suffix: tuple(f.backend.split(":")) for f in FORMATS.values()}


def load(path, threads: int = 0) -> Segmenter:
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in BACKENDS:
        raise ModelFileError(f"{path}: unknown model suffix '{suffix}'; use one of {', '.join(sorted(BACKENDS))}")
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found; check the path or export it first")
    import importlib

    module, cls = BACKENDS[suffix]
    return getattr(importlib.import_module(module), cls)(path, threads=threads)


__all__ = ["load", "Segmenter", "ModelFileError", "BACKENDS"]
