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


def figure_grid(images: Sequence[np.ndarray], gts: Sequence[np.ndarray], preds: Sequence[np.ndarray],
                titles: Sequence[str], path, suptitle: Optional[str] = None) -> Path:
    """One row per image: input, ground truth overlay (green), prediction overlay (red)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .checkpoint import atomic_write_bytes

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
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)
