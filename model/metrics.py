"""Segmentation metrics as the field reports them: one confusion matrix pooled over all pixels.

"miou" is the foreground IoU TP/(TP+FP+FN) (what skin-lesion papers call mIoU), "dsc" is
2TP/(2TP+FP+FN). numpy only.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List

import numpy as np


def confusion(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """[tn, fp, fn, tp] as int64 for boolean-like arrays of equal shape."""
    p = np.asarray(pred).astype(bool).ravel()
    t = np.asarray(target).astype(bool).ravel()
    if p.shape != t.shape:
        raise ValueError(f"prediction has {p.size} pixels, target {t.size}")
    tp = int(np.count_nonzero(p & t))
    fp = int(np.count_nonzero(p & ~t))
    fn = int(np.count_nonzero(~p & t))
    return np.array([p.size - tp - fp - fn, fp, fn, tp], dtype=np.int64)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two boolean masks (1.0 when both are empty): how far two models' masks agree."""
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else float(np.count_nonzero(a & b) / union)


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b else 1.0


def scores(cm: np.ndarray) -> Dict[str, float]:
    tn, fp, fn, tp = (int(v) for v in cm)
    return {
        "miou": _ratio(tp, tp + fp + fn),
        "dsc": _ratio(2 * tp, 2 * tp + fp + fn),
        "accuracy": _ratio(tp + tn, tp + tn + fp + fn),
        "specificity": _ratio(tn, tn + fp),
        "sensitivity": _ratio(tp, tp + fn),
    }


@dataclass
class PooledMetrics:
    """Accumulate per image; `result()` gives pooled scores plus the per-image mean DSC."""
    cm: np.ndarray = field(default_factory=lambda: np.zeros(4, np.int64))
    per_image_dsc: List[float] = field(default_factory=list)

    def update(self, pred: np.ndarray, target: np.ndarray) -> None:
        for p, t in zip(np.asarray(pred), np.asarray(target)):
            c = confusion(p, t)
            self.cm += c
            self.per_image_dsc.append(scores(c)["dsc"])

    def result(self) -> Dict:
        out = scores(self.cm)
        out["n_images"] = len(self.per_image_dsc)
        out["mean_image_dsc"] = float(np.mean(self.per_image_dsc)) if self.per_image_dsc else float("nan")
        out["confusion"] = {k: int(v) for k, v in zip(("tn", "fp", "fn", "tp"), self.cm)}
        return out
