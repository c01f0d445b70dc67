"""Training augmentation as batched tensor ops (runs where the batch lives, CPU or GPU).

As in the paper and its reference: horizontal flip (p=0.5), vertical flip (p=0.5), and a random
rotation (p=0.5, angle uniform in [0, 360)); here also a random multiple of 90 degrees, which is
exact (no interpolation). Images are rotated bilinearly with zero fill, masks by nearest neighbour.
All randomness comes from the generator passed in, so a resumed run draws the same numbers.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def augment(x: torch.Tensor, y: torch.Tensor, gen: torch.Generator, p_rotate: float = 0.5):
    """x float (B,3,H,W), y float (B,1,H,W) -> augmented copies. Random numbers are drawn on the CPU."""
    b = x.shape[0]
    r = torch.rand(b, 4, generator=gen).tolist()
    k = torch.randint(0, 4, (b,), generator=gen).tolist()
    angle = (torch.rand(b, generator=gen) * 2 * math.pi).tolist()
    xs, ys = list(x.unbind(0)), list(y.unbind(0))
    for i in range(b):
        dims = [d for d, flip in ((2, r[i][0] < 0.5), (1, r[i][1] < 0.5)) if flip]
        if dims:
            xs[i], ys[i] = xs[i].flip(dims), ys[i].flip(dims)
        if k[i]:
            xs[i], ys[i] = xs[i].rot90(k[i], (1, 2)), ys[i].rot90(k[i], (1, 2))
    x, y = torch.stack(xs), torch.stack(ys)
    rot = [i for i in range(b) if r[i][2] < p_rotate]
    if rot:
        a = torch.tensor([angle[i] for i in rot], dtype=x.dtype)
        cos, sin, zero = torch.cos(a), torch.sin(a), torch.zeros_like(a)
        theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1).to(x.device)
        sel = torch.tensor(rot, device=x.device)
        grid = F.affine_grid(theta, [len(rot), *x.shape[1:]], align_corners=False)
        x[sel] = F.grid_sample(x[sel], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        y[sel] = F.grid_sample(y[sel], grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return x.contiguous(), y.contiguous()
