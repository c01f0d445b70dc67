"""Evaluate a model file on a dataset: `python model/evaluate.py --weights W --data D [--split val] [--json F]`.

One confusion matrix pooled over all pixels of the split at 256x256 and threshold 0.5; keys
`miou` (foreground IoU), `dsc`, `accuracy`, `specificity`, `sensitivity`, `n_images`, plus the
per-image mean DSC. `--weights` takes any file that `runtimes.load` can open.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, Optional, Sequence

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from model.data import DataError, Sample, load_arrays, open_dataset
from model.metrics import PooledMetrics

REPO = Path(__file__).resolve().parents[1]
DEFAULT_WEIGHTS = REPO / "model" / "weights" / "aulunet_v3_ph2.pt"
DEFAULT_DATA = REPO.parent / "shared" / "data" / "ph2"


def evaluate_samples(segmenter, samples: Sequence[Sample], batch: int = 8, progress: bool = False,
                     keep_probs: bool = False) -> Dict:
    """Pooled metrics of `segmenter` (a runtimes.Segmenter) on samples; optionally the probability maps."""
    from tqdm import tqdm

    pm = PooledMetrics()
    probs = []
    size = segmenter.input_size
    for i in tqdm(range(0, len(samples), batch), desc="evaluate", disable=not progress, leave=False):
        x, y = load_arrays(samples[i:i + batch], size)
        p = segmenter.probabilities(x)
        pm.update(p > segmenter.threshold, y)
        if keep_probs:
            probs.append(p)
    out = pm.result()
    if keep_probs:
        out["probs"] = np.concatenate(probs) if probs else np.zeros((0, size, size), np.float32)
    return out


def main(argv: Optional[Sequence[str]] = None) -> Dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default=str(DEFAULT_WEIGHTS), help="model file (.pt, or any format runtimes.load opens)")
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--split", default="val", help="train, val, test or all")
    p.add_argument("--json", default=None, help="write the metrics here as JSON")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)

    import runtimes
    from model.checkpoint import atomic_write_text

    try:
        seg = runtimes.load(args.weights, threads=args.threads)
        samples = open_dataset(args.data).subset(args.split)
        res = evaluate_samples(seg, samples, progress=not args.no_progress)
    except (DataError, runtimes.ModelFileError) as e:
        raise SystemExit(f"error: {e}")
    res.update({"weights": str(args.weights), "data": str(args.data), "split": args.split, "backend": seg.name})
    text = json.dumps(res, indent=1)
    if args.json:
        atomic_write_text(args.json, text + "\n")
    print(text)
    return res


if __name__ == "__main__":
    main()
