"""One inference interface over the toolkit's model files.

`load(path)` picks the backend by suffix and returns a `Segmenter`. Backends import their runtime
lazily, so a device without torch can still load the other formats.
"""
from __future__ import annotations

from pathlib import Path

from .base import ModelFileError, Segmenter

from export.formats import FORMATS, for_path

BACKENDS = {f.suffix: tuple(f.backend.split(":")) for f in FORMATS.values()}


def load(path, threads: int = 0, allow_foreign: bool = False) -> Segmenter:
    """A Segmenter for a model file, by suffix. Files without this toolkit's metadata are refused unless
    allow_foreign=True (then the AULUNet conventions are assumed, with a warning)."""
    path = Path(path)
    try:
        suffix = for_path(path).suffix  # by how the name ends: ".ncnn.param" is two suffixes
    except KeyError:
        raise ModelFileError(f"{path}: unknown model suffix '{path.suffix.lower()}'; use one of {', '.join(sorted(BACKENDS))}") from None
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found; check the path or export it first")
    import importlib

    module, cls = BACKENDS[suffix]
    if threads is None or threads < 0:
        raise ModelFileError(f"threads={threads}: give 0 (the runtime's default) or a positive count")
    return getattr(importlib.import_module(module), cls)(path, threads=threads, allow_foreign=allow_foreign)


__all__ = ["load", "Segmenter", "ModelFileError", "BACKENDS"]
