"""Synthetic dermoscopy-like lesions, so a machine with no data still walks the whole path.

They are labelled as synthetic everywhere they appear (a SYNTHETIC.txt beside them, a flag in
the JSON): numbers measured on them say nothing about skin lesions.
"""
from __future__ import annotations

from pathlib import Path
from typing import Tuple

import numpy as np

MARKER = "SYNTHETIC.txt"


def make_lesion(rng: np.random.Generator, shape: Tuple[int, int] = (288, 384)) -> Tuple[np.ndarray, np.ndarray]:
    """One RGB uint8 image with a dark irregular blob on skin tones, and its boolean mask."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cy, cx = h * rng.uniform(0.4, 0.6), w * rng.uniform(0.4, 0.6)
    r0 = min(h, w) * rng.uniform(0.18, 0.32)
    ang = np.arctan2(yy - cy, xx - cx)
    radius = r0 * (1 + sum(rng.uniform(0.03, 0.12) * np.cos(k * ang + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5)))
    dist = np.hypot((yy - cy) * rng.uniform(0.8, 1.2), xx - cx)
    mask = dist < radius
    skin = np.array([rng.uniform(200, 235), rng.uniform(150, 185), rng.uniform(130, 165)], np.float32)
    lesion = np.array([rng.uniform(80, 130), rng.uniform(50, 80), rng.uniform(35, 60)], np.float32)
    shade = 1 - 0.25 * (np.hypot(yy - h / 2, xx - w / 2) / np.hypot(h / 2, w / 2)) ** 2  # vignetting
    edge = np.clip((radius - dist) / 4.0, 0, 1)[..., None]
    img = (skin * (1 - edge) + lesion * edge) * shade[..., None]
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), mask


def write_synthetic_dataset(folder, n: int = 6, seed: int = 0, shape: Tuple[int, int] = (288, 384)) -> Path:
    """images/ + masks/ (generic layout) with n synthetic lesions and a SYNTHETIC.txt marker."""
    from PIL import Image

    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        img, mask = make_lesion(rng, shape)
        Image.fromarray(img).save(folder / "images" / f"SYN{i:03d}.png")
        Image.fromarray(mask.astype(np.uint8) * 255).save(folder / "masks" / f"SYN{i:03d}_segmentation.png")
    (folder / MARKER).write_text("Synthetic lesion images drawn by model/data/synthetic.py; not real dermoscopy.\n")
    return folder


def is_synthetic(folder) -> bool:
    return (Path(folder) / MARKER).is_file()
