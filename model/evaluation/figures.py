"""Pictures for people: the paper's Figure-3 style grid (input | ground truth | prediction)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np


def overlay(rgb: np.ndarray, mask: np.ndarray, color=(0, 255, 0), alpha: float = 0.4) -> np.ndarray:
    """Blend a boolean mask onto a uint8 RGB image and draw its contour."""
    out = rgb.astype(np.float32).copy()
    m = mask.astype(bool)
    out[m] = (1 - alpha) * out[m] + alpha * np.asarray(color, np.float32)
    edge = m & ~(np.roll(m, 1, 0) & np.roll(m, -1, 0) & np.roll(m, 1, 1) & np.roll(m, -1, 1))
    out[edge] = color
    return out.clip(0, 255).astype(np.uint8)


def save_figure(fig, path, dpi: int = 90) -> Path:
    """Write a matplotlib figure as PNG atomically and close it."""
    import io

    import matplotlib.pyplot as plt

    from core.safeio import atomic_write_bytes

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def figure_grid(images: Sequence[np.ndarray], gts: Sequence[np.ndarray], preds: Sequence[np.ndarray],
                titles: Sequence[str], path, suptitle: Optional[str] = None) -> Path:
    """One row per image: input, ground truth overlay (green), prediction overlay (red)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(images)
    fig, axes = plt.subplots(n, 3, figsize=(7.5, 2.4 * n), squeeze=False)
    for i in range(n):
        panels = (images[i], overlay(images[i], gts[i], (0, 220, 0)), overlay(images[i], preds[i], (230, 30, 30)))
        for j, (ax, im) in enumerate(zip(axes[i], panels)):
            ax.imshow(im)
            ax.set_xticks([]), ax.set_yticks([])
            if i == 0:
                ax.set_title(("input", "ground truth", "prediction")[j], fontsize=9)
        axes[i][0].set_ylabel(titles[i], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    return save_figure(fig, path)


def plot_training(log: dict, path) -> Path:
    """Loss and validation DSC per epoch from a train.py log.json."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [e["epoch"] for e in log["epochs"]]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    a.plot(ep, [e["loss"] for e in log["epochs"]], lw=1)
    a.set_xlabel("epoch"), a.set_ylabel("train loss (BCE + Dice)"), a.set_yscale("log")
    b.plot(ep, [e["val_dsc"] for e in log["epochs"]], lw=1, label="val DSC (pooled)")
    best = log["best"]
    b.axhline(best["dsc"], color="gray", ls=":", lw=1)
    b.set_ylim(max(0.0, min(0.85, best["dsc"] - 0.1)), 1.0)
    b.set_xlabel("epoch"), b.set_title(f"best {best['dsc']:.4f} at epoch {best['epoch']}", fontsize=9)
    return save_figure(fig, path)
