"""The one preprocessing of the toolkit, in numpy only (device-side runners import it without torch).

Training, evaluation, export calibration and every runtime call `preprocess_image`; the same
steps are described as data in `PREPROCESSING` so that other languages (the Android app) can
repeat them exactly:

1. RGB uint8 image -> float32, bilinear resize to 256x256 with half-pixel centres and no
   antialiasing (what torch's F.interpolate(align_corners=False), OpenCV's INTER_LINEAR and
   TensorFlow's resize(half_pixel_centers=True) compute); source coordinates below 0 are clamped.
2. Per-image min-max over all pixels and channels: x = (x - min) / (max - min); a constant
   image becomes all zeros. (The reference's z-score followed by min-max reduces to this.)
3. Layout NCHW (batch, RGB, height, width).

Images smaller than MIN_IMAGE_SIDE on a side, or with less than MIN_CONTRAST grey levels between their
darkest and brightest value, are refused (`image_problem`): scaled to 256x256 a thumbnail cannot show a
lesion, and min-max scaling of a flat image turns its noise (or nothing) into a confident "lesion".

Decoding (model/data/, core/images.py for PIL images and runtimes' predict(), the web page and the Android app alike): the
EXIF orientation tag is applied (the photo as every viewer shows it), and grey images of more than 8 bits
are scaled to 8 bits by their bit depth (`high_depth_to_uint8`), not clipped.

Masks: nearest-neighbour resize with half-pixel centres, then foreground = value > 0.
Predictions: probability = sigmoid(logit); foreground = probability > threshold (0.5).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Dict, Optional, Tuple

import numpy as np

INPUT_SIZE = 256
THRESHOLD = 0.5
SIZE_MULTIPLE = 32   # the network halves the resolution five times: its input side must be a multiple of this
MIN_IMAGE_SIDE = 32  # pixels: smaller images are refused (a 1x1 "image" would count as 65,536 pixels)
MIN_CONTRAST = 8     # grey levels (of 255) between the darkest and brightest value: less is a flat image

PREPROCESSING: Dict = {
    "version": 1,
    "input_size": [INPUT_SIZE, INPUT_SIZE],
    "color": "RGB",
    "resize": {"method": "bilinear", "half_pixel_centers": True, "align_corners": False, "antialias": False},
    "scale": {"method": "per_image_minmax", "range": [0.0, 1.0], "constant_image": 0.0},
    "layout": "NCHW",
    "dtype": "float32",
    "mask_resize": "nearest_half_pixel",
    "output": {"kind": "logits", "activation": "sigmoid", "threshold": THRESHOLD, "classes": ["lesion"]},
}


@lru_cache(maxsize=64)
def _bilinear_taps(n_in: int, n_out: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices i0, i1 and weight w1 of each output sample (half-pixel centres, clamped):
    out[o] = (1 - w1[o]) * in[i0[o]] + w1[o] * in[i1[o]]."""
    src = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    src = np.clip(src, 0.0, n_in - 1)
    i0 = np.floor(src).astype(np.int64)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (src - i0).astype(np.float32)


def resize_bilinear(img: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """HxWxC (any dtype) -> float32 (h, w, C), half-pixel centres, no antialias; separable two-tap
    gathers (rows, then columns). The rows are gathered before the cast to float32 (exact for integer
    images), so only 2h rows are converted instead of the whole photo: 765x572 -> 256x256 takes ~3 ms
    instead of ~13 ms, with bit-identical values."""
    h, w = size
    x = img if img.ndim == 3 else img[..., None]
    y0, y1, wy = _bilinear_taps(x.shape[0], h)
    x0, x1, wx = _bilinear_taps(x.shape[1], w)
    wy, wx = wy[:, None, None], wx[None, :, None]
    rows = x[y0].astype(np.float32) * (1 - wy) + x[y1].astype(np.float32) * wy
    return np.take(rows, x0, axis=1) * (1 - wx) + np.take(rows, x1, axis=1) * wx


def nearest_indices(n_in: int, n_out: int) -> np.ndarray:
    return np.minimum(np.floor((np.arange(n_out) + 0.5) * (n_in / n_out)).astype(np.int64), n_in - 1)


def resize_nearest(arr: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    h, w = size
    return arr[nearest_indices(arr.shape[0], h)][:, nearest_indices(arr.shape[1], w)]


def minmax_scale(x: np.ndarray) -> np.ndarray:
    lo, hi = float(x.min()), float(x.max())
    if hi <= lo:
        return np.zeros_like(x, dtype=np.float32)
    return ((x - lo) / (hi - lo)).astype(np.float32)


HIGH_DEPTH_BITS = (8, 10, 12, 14, 16)  # sample depths a >8-bit grey image is assumed to use (the smallest that fits)


def high_depth_to_uint8(values: np.ndarray) -> Tuple[np.ndarray, int]:
    """A grey image of more than 8 bits (PIL modes I;16*, I, F) -> (uint8 HxW, the bit depth assumed).

    The depth is the smallest of HIGH_DEPTH_BITS that holds the image's brightest value (a 10-bit camera
    image stored in a 16-bit PNG has values up to 1023; a full-range 16-bit one up to 65535), and values are
    scaled by 255 / (2**bits - 1) and rounded: a 10-bit or 16-bit copy of an 8-bit image gives back the
    8-bit values exactly, so it is segmented alike (the per-image min-max scaling makes the factor itself
    irrelevant; only the contrast check and the rounding see it). Float images in [0, 1] are scaled by 255.
    Negative values (signed 32-bit or float images) are clipped to 0."""
    a = np.asarray(values, dtype=np.float64)
    if a.size and not np.isfinite(a).all():
        a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
    hi = float(a.max(initial=0.0))
    if np.issubdtype(np.asarray(values).dtype, np.floating) and hi <= 1.0:
        bits, scale = 0, 255.0
    else:
        bits = next((b for b in HIGH_DEPTH_BITS if hi < 2 ** b), int(np.ceil(np.log2(hi + 1))))
        scale = 255.0 / (2 ** bits - 1)
    return np.clip(np.rint(a * scale), 0, 255).astype(np.uint8), bits


def image_problem(rgb: np.ndarray) -> Optional[str]:
    """Why a uint8 HxWx3 image cannot be segmented (too small, no contrast), or None when it can."""
    h, w = rgb.shape[:2]
    if min(h, w) < MIN_IMAGE_SIDE:
        return (f"image is {w}x{h} pixels, below the {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} minimum (scaled up to "
                f"{INPUT_SIZE}x{INPUT_SIZE} it cannot show a lesion); use the full-size photo")
    lo, hi = int(rgb.min()), int(rgb.max())
    if hi - lo < MIN_CONTRAST:
        return (f"image has no contrast (every value within {lo}..{hi}; at least {MIN_CONTRAST} grey levels needed): "
                f"min-max scaling would turn a flat image into a lesion; use a real photo")
    return None


def preprocess_image(rgb: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """uint8 HxWx3 RGB -> float32 (3, size, size), ready to stack into an NCHW batch."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB image, got shape {rgb.shape}")
    x = minmax_scale(resize_bilinear(rgb, (size, size)))
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def preprocess_mask(mask: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """bool/uint8 HxW -> uint8 (size, size) in {0, 1}."""
    return (resize_nearest(mask, (size, size)) > 0).astype(np.uint8)


def sigmoid(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return (0.5 * (1.0 + np.tanh(0.5 * x))).astype(np.float32)


def probs_to_image_size(prob: np.ndarray, shape: Tuple[int, int]) -> np.ndarray:
    """Map a (size, size) probability map back to the image's own (H, W) with the same bilinear rule."""
    return resize_bilinear(prob, shape)[..., 0]
