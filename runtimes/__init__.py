"""One inference interface over the toolkit's model files.

`load(path)` picks the backend by suffix (the table in core/formats.py) and returns a `Segmenter`. Backends
import their runtime lazily, so a device without torch can still load the other formats.

The torch-free backends live here. The .pt backend needs the network code, which lives above this package
(model/), so model/ registers it: `import model` (any model module does it) calls
`runtimes.register(".pt", TorchSegmenter)`. Without it, `load("x.pt")` says so in one line.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Tuple, Type

from core.errors import InputError
from core.formats import FORMATS, for_path

from .base import ModelFileError, Segmenter

# suffix -> (module, class) of the torch-free backends in this package, from the format table
BACKENDS: Dict[str, Tuple[str, str]] = {f.suffix: tuple(f.backend.split(":")) for f in FORMATS.values()
                                        if f.backend.startswith("runtimes.")}
# suffix -> Segmenter class registered from above (the .pt backend, by model/__init__.py)
REGISTERED: Dict[str, Type[Segmenter]] = {}


def register(suffix: str, cls: Type[Segmenter]) -> None:
    """Make `load()` open files ending in `suffix` with `cls`: the backend that core/formats.py names for it."""
    fmt = next((f for f in FORMATS.values() if f.suffix == suffix), None)
    if fmt is None:
        raise ValueError(f"{suffix}: not a suffix of core/formats.py's FORMATS; add the format there first")
    if f"{cls.__module__}:{cls.__qualname__}" != fmt.backend:
        raise ValueError(f"{suffix}: core/formats.py names {fmt.backend} as its backend, not "
                         f"{cls.__module__}:{cls.__qualname__}")
    REGISTERED[suffix] = cls


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
        fmt = for_path(path)  # by how the name ends: ".ncnn.param" is two suffixes
    except KeyError:
        known = sorted(f.suffix for f in FORMATS.values())
        raise ModelFileError(f"{path}: unknown model suffix '{path.suffix.lower()}'; use one of {', '.join(known)}") from None
    check_threads(threads)
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found; check the path or export it first")
    if fmt.suffix in REGISTERED:
        cls = REGISTERED[fmt.suffix]
    elif fmt.suffix in BACKENDS:
        import importlib

        module, name = BACKENDS[fmt.suffix]
        cls = getattr(importlib.import_module(module), name)
    else:
        raise ModelFileError(f"{path}: {fmt.title} files need the backend {fmt.backend}, registered by its package: "
                             f"`import {fmt.backend.split('.')[0]}` first (it needs {', '.join(fmt.runtime_packages)}), "
                             f"or export the file to a torch-free format")
    return cls(path, threads=int(threads), allow_foreign=allow_foreign)


__all__ = ["load", "register", "Segmenter", "ModelFileError", "BACKENDS", "REGISTERED"]
