"""A model's pooled metrics on a list of samples, at the protocol's scoring grid (model/evaluate.py, the
protocol, promotion, the benchmarks and the export checks all score through this one function)."""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np

from core.metrics import PooledMetrics
from core.preprocess import INPUT_SIZE as GRID  # the protocol's scoring grid: 256x256
from model.data import Sample, load_arrays


def evaluate_samples(segmenter, samples: Sequence[Sample], batch: int = 8, progress: bool = False,
                     keep_probs: bool = False, grid: Optional[int] = GRID, tta: bool = False,
                     postprocess: Sequence[str] = ()) -> Dict:
    """Pooled metrics of `segmenter` (a runtimes.Segmenter) on samples, on the protocol's GRID x GRID masks
    whatever the model's input size (a smaller model's probabilities are resized bilinearly to the grid, so
    models of every size are scored on the same pixels); optionally the probability maps (at the grid).
    `grid=None` scores at the model's own input size instead (what training measured when it chose its epoch).
    `tta`: the flip-averaged probabilities (Segmenter.probabilities_tta), as predict(..., tta=True) makes them.
    `postprocess`: mask clean-up steps (core/postprocess.py) applied to each image's thresholded mask at the grid
    before pooling (the probability maps kept are left as the model made them)."""
    from tqdm import tqdm

    from core.postprocess import apply as apply_postprocess, check_steps
    from core.preprocess import resize_bilinear

    steps = check_steps(postprocess)

    pm = PooledMetrics()
    probs = []
    size = segmenter.input_size
    grid = grid or size
    run = segmenter.probabilities_tta if tta else segmenter.probabilities
    for i in tqdm(range(0, len(samples), batch), desc="evaluate", disable=not progress, leave=False):
        if size == grid:
            x, y = load_arrays(samples[i:i + batch], size)
            p = run(x)
        else:
            x, _ = load_arrays(samples[i:i + batch], size, with_masks=False)
            _, y = load_arrays(samples[i:i + batch], grid)
            p = np.stack([resize_bilinear(q[..., None], (grid, grid))[..., 0] for q in run(x)])
        masks = p > segmenter.threshold
        if steps:
            masks = np.stack([apply_postprocess(m, steps) for m in masks])
        pm.update(masks, y)
        if keep_probs:
            probs.append(p)
    out = pm.result()
    if keep_probs:
        out["probs"] = np.concatenate(probs) if probs else np.zeros((0, grid, grid), np.float32)
    return out
