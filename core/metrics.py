"""Segmentation metrics as the field reports them: one confusion matrix pooled over all pixels.

"miou" is the foreground IoU TP/(TP+FP+FN) (what skin-lesion papers call mIoU), "dsc" is
2TP/(2TP+FP+FN). ISIC's own figures are per image: "jaccard_mean" is the mean of per-image
Jaccard (foreground IoU), "thresholded_jaccard" the same mean with every per-image Jaccard below
0.65 set to 0 (the ISIC 2018 Task 1 leaderboard metric). An image whose mask and prediction are
both empty scores 1. numpy only.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Sequence

import numpy as np

ISIC_JACCARD_THRESHOLD = 0.65

# The metric keys, named once: every result file, table and checkpoint picks its columns from these.
POOLED_KEYS = ("dsc", "miou", "accuracy", "specificity", "sensitivity")   # scores() of one pooled confusion matrix
REPORTED_KEYS = POOLED_KEYS + ("mean_image_dsc",)                        # what exports, demos and tables report
ISIC_KEYS = ("jaccard_mean", "thresholded_jaccard")                      # ISIC's per-image figures
RESULT_KEYS = ("n_images",) + REPORTED_KEYS + ISIC_KEYS                   # every number PooledMetrics.result() gives


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


def thresholded_jaccard(per_image: Sequence[float], threshold: float = ISIC_JACCARD_THRESHOLD) -> float:
    """ISIC 2018's score: per-image Jaccard, zeroed below `threshold`, averaged."""
    j = np.asarray(per_image, dtype=np.float64)
    return float(np.where(j >= threshold, j, 0.0).mean()) if j.size else float("nan")


@dataclass
class PooledMetrics:
    """Accumulate per image; `result()` gives pooled scores plus the per-image mean DSC."""
    cm: np.ndarray = field(default_factory=lambda: np.zeros(4, np.int64))
    per_image_dsc: List[float] = field(default_factory=list)
    per_image_jaccard: List[float] = field(default_factory=list)

    def update(self, pred: np.ndarray, target: np.ndarray) -> None:
        for p, t in zip(np.asarray(pred), np.asarray(target)):
            self.add_confusion(confusion(p, t))

    def add_confusion(self, cm: Sequence[int]) -> None:
        """One image given by its confusion counts [tn, fp, fn, tp] (e.g. counted on a GPU) instead of its masks."""
        c = np.asarray(cm, dtype=np.int64)
        self.cm += c
        s = scores(c)
        self.per_image_dsc.append(s["dsc"])
        self.per_image_jaccard.append(s["miou"])

    def result(self) -> Dict:
        if not self.per_image_dsc:  # no images: no score (a ratio of zeros would read as a perfect 1.0)
            raise ValueError("no images were scored; evaluate a split that has images")
        out = scores(self.cm)
        out["n_images"] = len(self.per_image_dsc)
        out["mean_image_dsc"] = float(np.mean(self.per_image_dsc)) if self.per_image_dsc else float("nan")
        out["jaccard_mean"] = float(np.mean(self.per_image_jaccard)) if self.per_image_jaccard else float("nan")
        out["thresholded_jaccard"] = thresholded_jaccard(self.per_image_jaccard)
        out["confusion"] = {k: int(v) for k, v in zip(("tn", "fp", "fn", "tp"), self.cm)}
        return out
