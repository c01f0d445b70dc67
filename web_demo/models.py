"""Which exported files the web page offers, which one it opens by default, and which browser runtime runs each.

The file names come from the toolkit's default checkpoint (`export.cli.DEFAULT_WEIGHTS`), its edge model
(`core.paths.EDGE_MODEL`, offered beside it) and the format table (`core.formats.FORMATS`): switching
either model there switches the page too.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Tuple

from export.cli import DEFAULT_WEIGHTS, EXPORTS
from core.formats import FORMATS
from core.paths import EDGE_MODEL

STEM = DEFAULT_WEIGHTS.stem
STEMS = (STEM, EDGE_MODEL)  # the default model's files first, then the edge model's (core/paths.py)

# format key -> the browser runtime that runs its files (both on WebAssembly, CPU)
RUNTIMES: Dict[str, str] = {"onnx": "onnxruntime-web", "tflite": "litert.js"}

# (format, quantize) the page offers, in menu order; fp16 ONNX is left out (the issue measures fp32 and INT8)
OFFERED: Tuple[Tuple[str, str], ...] = (("tflite", "none"), ("tflite", "int8"), ("onnx", "none"), ("onnx", "int8"))

# The page's default: the fastest file and runtime that passed parity in Chromium on this host
# (docs/web.md, from web_demo/results/chromium_wasm.json; measured with the 2 cores otherwise idle).
DEFAULT: Tuple[str, str] = ("onnx", "none")


def filename(fmt: str, quantize: str, stem: str = STEM) -> str:
    return FORMATS[fmt].filename(stem, quantize)


def offered(exports: Path = EXPORTS) -> List[Tuple[Path, str, str]]:
    """(file, format, quantize) of every file the page offers: OFFERED for each model of STEMS, in menu order."""
    return [(Path(exports) / filename(f, q, stem), f, q) for stem in STEMS for f, q in OFFERED]


def default_file(exports: Path = EXPORTS, stem: str = STEM) -> Path:
    return Path(exports) / filename(*DEFAULT, stem=stem)
