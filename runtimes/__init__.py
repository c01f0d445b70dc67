"""One inference interface over the toolkit's model files.

`load(path)` picks the backend by suffix and returns a `Segmenter`. Backends import their runtime
lazily, so a device without torch can still load the other formats.
"""
from __future__ import annotations

from pathlib import Path

from model.errors import InputError

from .base import ModelFileError, Segmenter

from export.formats import FORMATS, for_path

BACKENDS = {f.suffix: tuple(f.backend.split(":")) for f in FORMATS.values()}


def check_threads(threads) -> int:
    """InputError unless `threads` is a whole number from 0 (the runtime's default) to the CPU count."""
    import numbers
    import os

    cpus = os.cpu_count() or 1
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral):
        raise InputError(f"threads={threads!r}: give a whole number, 0 (the runtime's default) to {cpus} (this machine's CPUs)")
    threads = int(threads)
    if not 0 <= threads <= cpus:
        raise InputError(f"threads={threads}: give 0 (the runtime's default) or a count from 1 to {cpus} (this machine's CPUs)")
    return threads


def load(path, threads: int = 0, allow_foreign: bool = False) -> Segmenter:
    """A Segmenter for a model file, by suffix. Files without this toolkit's metadata are refused unless
    allow_foreign=True (then the AULUNet conventions are assumed, with a warning)."""
    path = Path(path)
    try:
        suffix = for_path(path).suffix  # by how the name ends: ".ncnn.param" is two suffixes
    except KeyError:
        raise ModelFileError(f"{path}: unknown model suffix '{path.suffix.lower()}'; use one of {', '.join(sorted(BACKENDS))}") from None
    check_threads(threads)
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found; check the path or export it first")
    import importlib

    module, cls = BACKENDS[suffix]
    return getattr(importlib.import_module(module), cls)(path, threads=int(threads), allow_foreign=allow_foreign)


__all__ = ["load", "Segmenter", "ModelFileError", "BACKENDS"]
