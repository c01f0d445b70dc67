"""Training data where the model trains: decoded once, preprocessed on the device, augmented in batches.

`DeviceData.load(samples, size, device)` decodes every image and mask once (Pillow, threads) to uint8
at its own size, moves the uint8 pixels to the device and preprocesses them there with the exact
arithmetic of `core.preprocess` (separable two-tap bilinear resize with half-pixel centres, then
per-image min-max; masks by nearest neighbour): the float32 images equal `model.data.load_arrays`'s
bit for bit (tested on the CPU). They stay resident, so a training step moves no pixels over PCIe.

Augmentation in batches, with the random numbers of `model.data.augment.augment`:
`draw_aug_params(gen, b)` draws from one seed's CPU generator exactly what `augment()` draws for a
batch of b images (same calls, same order, same float32 rotation matrices) and returns them as one
small (b, 8) tensor; `apply_aug(x, y, params)` applies them to a whole batch (several seeds' batches
at once) with static shapes and no host synchronisation: one gather for the flip/rot90 (a dihedral
permutation of the pixels, exact) and one affine_grid + grid_sample for the free rotation, applied
to every image and kept only where the rotation was drawn. Static shapes let a CUDA graph capture it.
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from model.data import load_sample
from core.preprocess import _bilinear_taps, nearest_indices

N_PARAMS = 8  # per image: dihedral code, rotate flag, 2x3 rotation matrix


# --------------------------------------------------------------------------- decode + device preprocessing

def _decode(sample, with_masks: bool) -> Tuple[np.ndarray, np.ndarray]:
    rgb, mask = load_sample(sample, with_masks)  # EXIF orientation applied to both, as load_arrays does
    return rgb, (None if mask is None else mask.astype(np.uint8))


def resize_minmax(u8: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (n, H, W, 3) on any device -> float32 (n, 3, size, size): `core.preprocess.preprocess_image`
    with the same float32 operations in the same order (bit-identical on the CPU)."""
    n, h, w, _ = u8.shape
    dev = u8.device
    y0, y1, wy = (torch.from_numpy(a).to(dev) for a in _bilinear_taps(h, size))
    x0, x1, wx = (torch.from_numpy(a).to(dev) for a in _bilinear_taps(w, size))
    wy, wx = wy[None, :, None, None], wx[None, None, :, None]
    rows = u8.index_select(1, y0).float() * (1 - wy) + u8.index_select(1, y1).float() * wy
    x = rows.index_select(2, x0) * (1 - wx) + rows.index_select(2, x1) * wx
    lo = x.amin(dim=(1, 2, 3), keepdim=True)
    hi = x.amax(dim=(1, 2, 3), keepdim=True)
    x = torch.where(hi > lo, (x - lo) / (hi - lo), torch.zeros_like(x))
    return x.permute(0, 3, 1, 2).contiguous()


def resize_mask(m: torch.Tensor, size: int) -> torch.Tensor:
    """uint8/bool (n, H, W) -> uint8 (n, 1, size, size) in {0, 1} (`preprocess_mask`)."""
    dev = m.device
    iy = torch.from_numpy(nearest_indices(m.shape[1], size)).to(dev)
    ix = torch.from_numpy(nearest_indices(m.shape[2], size)).to(dev)
    return (m.index_select(1, iy).index_select(2, ix) > 0).to(torch.uint8).unsqueeze(1)


@dataclass
class DeviceData:
    """Preprocessed images x float32 (N, 3, S, S) and masks y uint8 (N, 1, S, S), resident on one device."""
    x: torch.Tensor
    y: torch.Tensor
    ids: List[str]

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def size(self) -> int:
        return int(self.x.shape[-1])

    @classmethod
    def load(cls, samples: Sequence, size: int, device, progress: bool = False, chunk: int = 512,
             workers: int = 0) -> "DeviceData":
        from tqdm import tqdm

        device = torch.device(device)
        n = len(samples)
        x = torch.empty((n, 3, size, size), dtype=torch.float32, device=device)
        y = torch.empty((n, 1, size, size), dtype=torch.uint8, device=device)
        workers = workers or min(8, os.cpu_count() or 1)
        bar = tqdm(total=n, desc="decode", disable=not progress, leave=False)
        with ThreadPoolExecutor(workers) as pool:
            for start in range(0, n, chunk):
                part = samples[start:start + chunk]
                pairs = list(pool.map(lambda s: _decode(s, True), part))
                groups: Dict[Tuple[int, int], List[int]] = {}
                for i, (rgb, _) in enumerate(pairs):
                    groups.setdefault(rgb.shape[:2], []).append(i)
                for idx in groups.values():  # one transfer and one resize per native size
                    u8 = torch.from_numpy(np.stack([pairs[i][0] for i in idx])).to(device)
                    m8 = torch.from_numpy(np.stack([pairs[i][1] for i in idx])).to(device)
                    dst = torch.tensor([start + i for i in idx], device=device)
                    x.index_copy_(0, dst, resize_minmax(u8, size))
                    y.index_copy_(0, dst, resize_mask(m8, size))
                bar.update(len(part))
        bar.close()
        return cls(x, y, [s.id for s in samples])


# --------------------------------------------------------------------------- batched augmentation

def draw_aug_params(gen: torch.Generator, b: int, p_rotate: float = 0.5) -> torch.Tensor:
    """(b, 8) float32 on the CPU: what `augment()` draws from `gen` for a batch of b, in the same order.

    Columns: dihedral code (flip W + 2 * flip H + 4 * k, k quarter turns), rotate flag, and the rotation's
    2x3 affine matrix (identity where no rotation was drawn), computed with the same float32 tensor ops
    over the same list of angles as `augment()` so that the matrices are identical."""
    r = torch.rand(b, 4, generator=gen).tolist()
    k = torch.randint(0, 4, (b,), generator=gen).tolist()
    angle = (torch.rand(b, generator=gen) * 2 * math.pi).tolist()
    out = torch.zeros(b, N_PARAMS, dtype=torch.float32)
    out[:, 2] = 1.0  # identity matrix [[1, 0, 0], [0, 1, 0]]
    out[:, 6] = 1.0
    for i in range(b):
        out[i, 0] = (r[i][0] < 0.5) + 2 * (r[i][1] < 0.5) + 4 * k[i]
    rot = [i for i in range(b) if r[i][2] < p_rotate]
    if rot:
        a = torch.tensor([angle[i] for i in rot], dtype=torch.float32)
        cos, sin, zero = torch.cos(a), torch.sin(a), torch.zeros_like(a)
        theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
        sel = torch.tensor(rot)
        out[sel, 1] = 1.0
        out[sel, 2:] = theta.reshape(len(rot), 6)
    return out


_TABLES: Dict[Tuple[int, str], torch.Tensor] = {}


def dihedral_table(size: int, device) -> torch.Tensor:
    """(16, size*size) int64: for each dihedral code, the source pixel of every output pixel, built by
    applying `augment()`'s own flip and rot90 calls to the pixel indices."""
    device = torch.device(device)
    key = (size, str(device))
    if key not in _TABLES:
        ar = torch.arange(size * size).view(1, size, size)
        rows = []
        for code in range(16):
            fw, fh, k = code & 1, (code >> 1) & 1, code >> 2
            t = ar
            dims = [d for d, flip in ((2, fw), (1, fh)) if flip]
            if dims:
                t = t.flip(dims)
            if k:
                t = t.rot90(k, (1, 2))
            rows.append(t.reshape(-1))
        _TABLES[key] = torch.stack(rows).to(device)
    return _TABLES[key]


def apply_aug(x: torch.Tensor, y: torch.Tensor, params: torch.Tensor):
    """x float (N, 3, S, S), y float (N, 1, S, S), params (N, 8) on x's device -> augmented copies.

    Equals `augment()` image by image given the same draws (flips/rot90 exactly; the rotation up to the
    float rounding of a batched affine_grid). Square images only (rot90 changes the shape otherwise)."""
    n, c, h, w = x.shape
    if h != w:
        raise ValueError(f"batched augmentation needs square images, got {h}x{w}")
    table = dihedral_table(h, x.device)
    src = table.index_select(0, params[:, 0].long())  # (N, S*S)
    x = x.reshape(n, c, h * w).gather(2, src.unsqueeze(1).expand(n, c, h * w)).view(n, c, h, w)
    y = y.reshape(n, 1, h * w).gather(2, src.unsqueeze(1)).view(n, 1, h, w)
    theta = params[:, 2:].reshape(n, 2, 3).to(x.dtype)
    grid = F.affine_grid(theta, [n, c, h, w], align_corners=False)
    xr = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    yr = F.grid_sample(y, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    rot = params[:, 1].view(n, 1, 1, 1) > 0.5
    return torch.where(rot, xr, x), torch.where(rot, yr, y)
