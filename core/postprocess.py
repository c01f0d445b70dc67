"""Mask post-processing: an optional clean-up of the thresholded lesion mask, named in a model file's metadata.

`largest-component` keeps the largest 8-connected lesion region; `fill-holes` fills the background regions
(4-connected) that lesion encloses. Export with `--postprocess STEPS` (metadata "postprocess"; absent = none):
Segmenter.predict applies them to the full-size mask, model/evaluate.py at the scoring grid, and the web page
(site/core.js) and the Android core (Postprocess.java) the same way, always in the order of POSTPROCESS_STEPS.

Numpy only (the device side runs it). Labelling works on runs (horizontal stretches of foreground, found by
comparing neighbours along each row) joined across consecutive rows by a union-find over runs: a lesion mask
has a few runs per row, so a predicted 765x572 mask takes under a millisecond per step (no per-pixel flood fill).
"""
from __future__ import annotations

from typing import Iterable, Tuple, Union

import numpy as np

from .errors import InputError, UserError

LARGEST_COMPONENT = "largest-component"
FILL_HOLES = "fill-holes"
POSTPROCESS_STEPS: Tuple[str, ...] = (LARGEST_COMPONENT, FILL_HOLES)  # the order apply() runs them in
NONE = "none"
CHOICES = (NONE, LARGEST_COMPONENT, FILL_HOLES, f"{LARGEST_COMPONENT},{FILL_HOLES}")


def _choices() -> str:
    return ", ".join(CHOICES[:-1]) + " or " + CHOICES[-1]


def check_steps(steps: Iterable[str], what: str = "postprocess") -> Tuple[str, ...]:
    """The steps as a canonical tuple (each once, in POSTPROCESS_STEPS order); UserError naming `what` for a
    name that is not a step."""
    if isinstance(steps, str):
        return parse_steps(steps, what)
    try:
        names = list(steps)
    except TypeError:
        raise UserError(f"{what} {steps!r}: not a list of steps; choose {_choices()}") from None
    for name in names:
        if name not in POSTPROCESS_STEPS:
            raise UserError(f"{what} {name!r}: unknown post-processing step; choose {_choices()}")
    return tuple(s for s in POSTPROCESS_STEPS if s in names)


def parse_steps(text: str, what: str = "--postprocess") -> Tuple[str, ...]:
    """A command-line or metadata value ("none", "largest-component", "fill-holes", "largest-component,fill-holes")
    -> the canonical tuple of steps (() for "none"); UserError naming the value and the choices otherwise."""
    if not isinstance(text, str):
        raise UserError(f"{what} {text!r}: not a text value; choose {_choices()}")
    parts = [p.strip() for p in text.split(",")]
    if parts == [NONE]:
        return ()
    if not all(parts) or any(p not in POSTPROCESS_STEPS for p in parts):
        raise UserError(f"{what} {text!r}: unknown post-processing; choose {_choices()}")
    return tuple(s for s in POSTPROCESS_STEPS if s in parts)


def _as_mask(mask) -> np.ndarray:
    m = np.asarray(mask)
    if m.ndim != 2:
        raise InputError(f"post-processing takes one HxW mask, got an array of shape {m.shape}")
    return m.astype(bool, copy=False)


def _runs(mask: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row, start and end (exclusive) of every run of True pixels, in row-major order."""
    h, w = mask.shape
    flat = np.zeros(h * (w + 1) + 1, bool)  # the rows one after another, each followed by a False
    flat[1:].reshape(h, w + 1)[:, :w] = mask
    edges = np.flatnonzero(flat[1:] != flat[:-1])  # where a run starts, then where it ends, alternately
    rows, starts = np.divmod(edges[0::2], w + 1)
    return rows, starts, edges[1::2] - rows * (w + 1)


def _label_runs(rows: np.ndarray, starts: np.ndarray, ends: np.ndarray, width: int, diagonal: bool) -> np.ndarray:
    """Component label of each run, 0..K-1 numbered by each component's first run in row-major order.
    Runs of consecutive rows touch when their columns overlap (diagonal: or meet at a corner)."""
    n = len(rows)
    if n == 0:
        return np.zeros(0, np.int64)
    k = 1 if diagonal else 0
    stride = width + 4                       # keys of different rows never interleave: columns lie in 0..width
    key_starts = rows * stride + starts + 1  # +1: s - k >= -1 stays inside the row's key range
    key_ends = rows * stride + ends + 1
    # for each run j (row r), the runs i of row r-1 it touches form one index range [lo, hi):
    # end_i + k > start_j  and  start_i < end_j + k
    prev = (rows - 1) * stride
    lo = np.searchsorted(key_ends, prev + starts - k + 1, side="right")
    hi = np.searchsorted(key_starts, prev + ends + k + 1, side="left")
    counts = np.maximum(hi - lo, 0)
    js = np.repeat(np.arange(n), counts)
    offsets = np.arange(len(js)) - np.repeat(np.cumsum(counts) - counts, counts)
    is_ = np.repeat(lo, counts) + offsets
    parent = list(range(n))

    def find(a: int) -> int:
        root = a
        while parent[root] != root:
            root = parent[root]
        while parent[a] != root:  # path compression
            parent[a], a = root, parent[a]
        return root

    for a, b in zip(js.tolist(), is_.tolist()):
        ra, rb = find(a), find(b)
        if ra != rb:  # the smaller index becomes the root: a root is its component's first run
            if ra < rb:
                parent[rb] = ra
            else:
                parent[ra] = rb
    roots = np.fromiter((find(a) for a in range(n)), np.int64, n)
    return np.unique(roots, return_inverse=True)[1].reshape(-1)


LOOP_RUNS = 4096  # _paint: up to this many runs, one slice each; more (noise), one cumulative sum


def _paint(shape: Tuple[int, int], rows: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """A bool mask holding exactly the given runs."""
    h, w = shape
    if len(rows) <= LOOP_RUNS:
        out = np.zeros(shape, bool)
        for r, s, e in zip(rows.tolist(), starts.tolist(), ends.tolist()):
            out[r, s:e] = True
        return out
    edges = np.zeros((h, w + 1), np.int8)
    edges[rows, starts] = 1   # a run's end is never another run's start (runs are apart by a pixel at least)
    edges[rows, ends] = -1
    return np.cumsum(edges, axis=1, dtype=np.int8)[:, :w] > 0


def label(mask, diagonal: bool = True) -> Tuple[np.ndarray, int]:
    """Labels of the True pixels' components (1..K, 0 = background, numbered in row-major order of each
    component's first pixel) and K; diagonal=True: 8-connected, False: 4-connected (what the tests compare
    with scipy.ndimage.label)."""
    m = _as_mask(mask)
    rows, starts, ends = _runs(m)
    labels = _label_runs(rows, starts, ends, m.shape[1], diagonal)
    out = np.zeros((m.shape[0], m.shape[1] + 1), np.int64)
    out[rows, starts] = labels + 1
    out[rows, ends] = -(labels + 1)
    return np.cumsum(out, axis=1)[:, :m.shape[1]], int(labels.max() + 1) if len(labels) else 0


def largest_component(mask) -> np.ndarray:
    """Only the largest 8-connected region of True pixels (ties: the one whose first pixel in row-major order
    comes first); an empty mask stays empty. A new bool array."""
    m = _as_mask(mask)
    rows, starts, ends = _runs(m)
    labels = _label_runs(rows, starts, ends, m.shape[1], diagonal=True)
    if len(labels) == 0 or labels.max() == 0:
        return m.copy()
    sizes = np.bincount(labels, weights=ends - starts)
    keep = labels == int(np.argmax(sizes))  # argmax: the first of equal sizes, numbered in row-major order
    return _paint(m.shape, rows[keep], starts[keep], ends[keep])


def fill_holes(mask) -> np.ndarray:
    """The mask with every background region (4-connected, the dual of 8-connected foreground) that does not
    touch the image border set to True. A new bool array."""
    m = _as_mask(mask)
    h, w = m.shape
    rows, starts, ends = _runs(~m)
    labels = _label_runs(rows, starts, ends, w, diagonal=False)
    if len(labels) == 0:
        return m.copy()
    border = (rows == 0) | (rows == h - 1) | (starts == 0) | (ends == w)
    open_ = np.bincount(labels, weights=border) > 0  # components that reach the border
    hole = ~open_[labels]
    if not hole.any():
        return m.copy()
    return m | _paint(m.shape, rows[hole], starts[hole], ends[hole])


OPERATIONS = {LARGEST_COMPONENT: largest_component, FILL_HOLES: fill_holes}


def apply(mask, steps: Union[str, Iterable[str]]) -> np.ndarray:
    """The mask after `steps` (names of POSTPROCESS_STEPS, or a parse_steps text), run in POSTPROCESS_STEPS
    order whatever order given; no steps: the mask as a bool array, unchanged."""
    out = _as_mask(mask)
    for step in check_steps(steps):
        out = OPERATIONS[step](out)
    return out
