"""Parity of an exported model against the PyTorch checkpoint, and the gates it must pass.

Gates (an export that misses one fails; tests assert them):
  none  max |prob diff| <= 1e-4; masks identical except pixels within 1e-4 of the threshold
  fp16  mask IoU vs PyTorch >= 0.995
  int8  mean per-image mask IoU vs fp32 >= 0.95; pooled DSC within 0.5 points of fp32
"""
from __future__ import annotations

import platform
from typing import Dict, List, Optional

import numpy as np

from core.metrics import REPORTED_KEYS, PooledMetrics, mask_iou

GATES = {
    "none": {"max_abs_diff": 1e-4, "flips_outside_band": 0},
    "fp16": {"mask_iou_pooled": 0.995},
    "int8": {"mask_iou_mean": 0.95, "dsc_drop_points": 0.5},
}
BAND = 1e-4  # fp32: flips allowed only where the reference is this close to the threshold


def compare(ref: np.ndarray, got: np.ndarray, gt: Optional[np.ndarray], threshold: float = 0.5) -> Dict:
    """ref/got: probabilities (N,S,S); gt: masks (N,S,S) or None."""
    ref_m, got_m = ref > threshold, got > threshold
    diff = np.abs(ref.astype(np.float64) - got.astype(np.float64))
    flips = ref_m != got_m
    out = {
        "n_images": int(len(ref)),
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "flipped_fraction": float(flips.mean()),
        "flips_outside_band": int(np.count_nonzero(flips & (np.abs(ref - threshold) > BAND))),
        "mask_iou_mean": float(np.mean([mask_iou(a, b) for a, b in zip(ref_m, got_m)])),
        "mask_iou_pooled": mask_iou(ref_m, got_m),
    }
    if gt is not None:
        for name, masks in (("reference", ref_m), ("export", got_m)):
            pm = PooledMetrics()
            pm.update(masks, gt)
            r = pm.result()
            out[f"{name}_metrics"] = {k: r[k] for k in REPORTED_KEYS}
        out["dsc_drop_points"] = 100.0 * (out["reference_metrics"]["dsc"] - out["export_metrics"]["dsc"])
    return out


def check_gates(numbers: Dict, quantize: str) -> Dict[str, Dict]:
    res = {}
    for key, limit in GATES[quantize].items():
        value = numbers.get(key)
        lower_is_better = key in ("max_abs_diff", "flips_outside_band", "dsc_drop_points")
        ok = value is not None and (value <= limit if lower_is_better else value >= limit)
        res[key] = {"value": value, "limit": limit, "rule": "<=" if lower_is_better else ">=", "passed": bool(ok)}
    return res


def failures(gates: Dict[str, Dict]) -> List[str]:
    return [f"{k} = {g['value']:.6g} (needs {g['rule']} {g['limit']})" for k, g in gates.items() if not g["passed"]]


def versions(packages) -> Dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "machine": platform.machine()}
    for p in ("numpy", "torch", *packages):
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            pass
    return out
