"""The robust training recipe's photometric augmentation (`model/train.py --augment robust`), batched.

What a clinic's photos do that the ISIC training images rarely show, as training-time changes of the image
only (the mask stays: an ink mark or a hair is not lesion). In the order they are applied:

  artefacts  up to 8 straight strokes drawn on the skin: thin dark hairs (1-6, p 0.3) and thick
             surgical-pen ink strokes, purple or blue (a polyline of 2-3 segments, p 0.2)
  colour     white balance: a gain per channel, exp(U(-0.35, 0.35)) (p 0.5)
  brightness a shift of U(-0.3, 0.3), clipped to [0, 1] (p 0.5): min-max cannot undo what clipping lost
  gamma      x ** exp(U(-0.9, 0.9)) (p 0.5)
  vignette   x * (1 - v * r^2), v in U(0.2, 0.6), r from a jittered centre (p 0.3)
  blur       a Gaussian of sigma U(0.5, 2.0) pixels at 256x256 (scaled with the size; p 0.3)
  noise      Gaussian, sigma U(0.01, 0.06) (p 0.3), from a seeded generator per image
  min-max    per image, as inference preprocesses every photo (core/preprocess.py), so that what the
             network sees is what it will see on a corrupted photo

A contrast change is left out: the per-image min-max scaling removes it. Held out of training (so the
corruption benchmark also measures what was never trained on): JPEG, motion blur, downscale-upscale,
dermoscope black borders, rulers, specular highlights. (A first version with narrower colour and gamma ranges
and no brightness shift left brightness, colour cast and gamma the largest drops on val; this one widens them.)

`draw_photometric(gen, b, size)` draws every number from a seed's CPU generator (so a resumed run draws the
same), as a (b, N_PHOTO) float32 tensor; `apply_photometric(x, params)` applies it to a batch on its device.
The recipe's families overlap with model/data/corruptions.py's but share no code or parameters with it.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# the families of model/data/corruptions.py that this recipe trains on something alike (the others are held out)
TRAINED_FAMILIES = ("colour_cast", "brightness", "gamma", "vignetting", "defocus_blur", "gaussian_noise", "hair", "pen_ink")
MAX_STROKES = 8
STROKE_COLS = 6          # x0, y0, x1, y1 (in [0, 1]), width (pixels at 256x256; 0 = no stroke), kind (0 hair, 1-2 ink)
HEAD = 11                # gains (3), gamma, blur sigma, noise sigma, noise seed, vignette strength, centre x, y, brightness
N_PHOTO = HEAD + MAX_STROKES * STROKE_COLS
COLOURS = torch.tensor([[0.10, 0.07, 0.05],   # hair: dark brown
                        [0.42, 0.22, 0.58],   # ink: surgical-pen purple
                        [0.16, 0.24, 0.55]])  # ink: blue
ALPHA = torch.tensor([0.85, 0.7, 0.7])
BLUR_TAPS = 9            # the kernel's support at 256x256 (sigma <= 2 px: +-4 px holds 95% of it)


def draw_photometric(gen: torch.Generator, b: int) -> torch.Tensor:
    """(b, N_PHOTO) float32 on the CPU: every random number of b images' photometric augmentation, drawn from
    `gen` in a fixed order (a fixed count per image, whatever is applied, so the stream stays aligned)."""
    u = torch.rand(b, 16, generator=gen).tolist()
    strokes = torch.rand(b, MAX_STROKES, 5, generator=gen).tolist()
    seeds = torch.randint(0, 2 ** 24, (b,), generator=gen).tolist()
    out = torch.zeros(b, N_PHOTO, dtype=torch.float32)
    for i in range(b):
        r = u[i]
        out[i, 0:3] = torch.tensor([math.exp(0.7 * r[j] - 0.35) if r[3] < 0.5 else 1.0 for j in range(3)])
        out[i, 3] = math.exp(1.8 * r[4] - 0.9) if r[5] < 0.5 else 1.0
        out[i, 10] = 0.6 * r[14] - 0.3 if r[15] < 0.5 else 0.0
        out[i, 4] = 0.5 + 1.5 * r[6] if r[7] < 0.3 else 0.0
        out[i, 5] = 0.01 + 0.05 * r[8] if r[9] < 0.3 else 0.0
        out[i, 6] = float(seeds[i])
        out[i, 7] = 0.2 + 0.4 * r[10] if r[11] < 0.3 else 0.0
        out[i, 8], out[i, 9] = 0.3 + 0.4 * strokes[i][0][0], 0.3 + 0.4 * strokes[i][0][1]
        n_hair = min(6, 1 + int(r[12] / 0.3 * 6)) if r[12] < 0.3 else 0  # p 0.3; the same number picks 1-6
        ink = r[13] < 0.2
        col = HEAD
        for s in range(n_hair):  # thin straight hairs anywhere, 0.2-0.8 of the image long
            x0, y0, ang, length, width = strokes[i][s]
            a = 2 * math.pi * ang
            ln = 0.2 + 0.6 * length
            out[i, col:col + STROKE_COLS] = torch.tensor([x0, y0, x0 + ln * math.cos(a), y0 + ln * math.sin(a),
                                                          0.6 + 0.9 * width, 0.0])
            col += STROKE_COLS
        if ink:  # one pen stroke: a polyline of 2-3 segments from a point near the lesion's surroundings
            x, y, ang, _, width = strokes[i][6]
            kind = 1.0 if strokes[i][7][0] < 0.5 else 2.0
            w = 2.0 + 4.0 * width
            segments = 2 + int(strokes[i][7][1] < 0.5)
            for s in range(segments):
                if col >= N_PHOTO:
                    break
                a = 2 * math.pi * ang + (strokes[i][7][2] - 0.5) * s
                ln = 0.08 + 0.12 * strokes[i][7][3]
                x1, y1 = x + ln * math.cos(a), y + ln * math.sin(a)
                out[i, col:col + STROKE_COLS] = torch.tensor([x, y, x1, y1, w, kind])
                x, y = x1, y1
                col += STROKE_COLS
    return out


def _strokes(x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """x (N,3,S,S) with the strokes of p (N, N_PHOTO) alpha-blended on (anti-aliased over one pixel)."""
    n, _, s, _ = x.shape
    st = p[:, HEAD:].reshape(n, MAX_STROKES, STROKE_COLS)
    width = st[..., 4] * (s / 256.0)                                   # (N, M) pixels at this size
    if not bool((width > 0).any()):
        return x
    coords = (torch.arange(s, device=x.device, dtype=x.dtype) + 0.5) / s
    gy, gx = torch.meshgrid(coords, coords, indexing="ij")             # (S, S)
    a = st[..., 0:2].reshape(n, MAX_STROKES, 2, 1, 1)
    b = st[..., 2:4].reshape(n, MAX_STROKES, 2, 1, 1)
    d = b - a
    px, py = gx - a[:, :, 0], gy - a[:, :, 1]                            # (N, M, S, S)
    dd = (d[:, :, 0] ** 2 + d[:, :, 1] ** 2).clamp_min(1e-12)
    t = ((px * d[:, :, 0] + py * d[:, :, 1]) / dd).clamp(0, 1)
    dist = torch.sqrt((px - t * d[:, :, 0]) ** 2 + (py - t * d[:, :, 1]) ** 2) * s   # pixels
    cover = (width.view(n, MAX_STROKES, 1, 1) / 2 + 0.5 - dist).clamp(0, 1) * (width > 0).view(n, MAX_STROKES, 1, 1)
    kind = st[..., 5].long().clamp(0, 2)
    colours, alpha = COLOURS.to(x)[kind], ALPHA.to(x)[kind]            # (N, M, 3), (N, M)
    for m in range(MAX_STROKES):  # painted in order: a later stroke covers an earlier one
        w = (cover[:, m] * alpha[:, m].view(n, 1, 1)).unsqueeze(1)    # (N, 1, S, S)
        x = x * (1 - w) + colours[:, m].view(n, 3, 1, 1) * w
    return x


def _blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """A separable Gaussian per image (sigma (N,) in pixels at this size; 0 = unchanged), reflect padding."""
    n, c, s, _ = x.shape
    taps = max(3, int(round(BLUR_TAPS * s / 256)) | 1)
    r = torch.arange(taps, device=x.device, dtype=x.dtype) - taps // 2
    sig = sigma.clamp_min(1e-3).view(n, 1)
    k = torch.exp(-0.5 * (r.view(1, -1) / sig) ** 2)
    k = torch.where(sigma.view(n, 1) > 0, k, (r == 0).to(x.dtype).view(1, -1).expand(n, -1))
    k = k / k.sum(1, keepdim=True)                                       # (N, taps)
    kk = k.repeat_interleave(c, 0)                                       # (N*C, taps)
    y = F.pad(x.reshape(1, n * c, s, s), (taps // 2,) * 4, mode="reflect")
    y = F.conv2d(y, kk.view(n * c, 1, 1, taps), groups=n * c)
    y = F.conv2d(y, kk.view(n * c, 1, taps, 1), groups=n * c)
    return y.view(n, c, s, s)


def apply_photometric(x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """x float (N,3,S,S) preprocessed images in [0, 1], p (N, N_PHOTO) on x's device -> the augmented images,
    min-max scaled per image again as inference preprocessing does."""
    n, c, s, _ = x.shape
    p = p.to(x.dtype)
    x = _strokes(x, p)
    x = (x * p[:, 0:3].view(n, 3, 1, 1) + p[:, 10].view(n, 1, 1, 1)).clamp(0, 1)
    gamma = p[:, 3].view(n, 1, 1, 1)
    x = torch.where(gamma == 1, x, x.clamp_min(1e-6) ** gamma)
    if bool((p[:, 7] > 0).any()):
        coords = (torch.arange(s, device=x.device, dtype=x.dtype) + 0.5) / s
        gy, gx = torch.meshgrid(coords, coords, indexing="ij")
        r2 = ((gx - p[:, 8].view(n, 1, 1)) ** 2 + (gy - p[:, 9].view(n, 1, 1)) ** 2) * 2  # 1 at a corner from the centre
        x = x * (1 - p[:, 7].view(n, 1, 1) * r2.clamp(0, 1)).unsqueeze(1)
    if bool((p[:, 4] > 0).any()):
        x = _blur(x, p[:, 4] * (s / 256.0))
    noisy = (p[:, 5] > 0).nonzero().flatten().tolist()
    if noisy:
        x = x.clone()
        for i in noisy:  # each image's own seeded stream: the same noise on a resumed run
            g = torch.Generator(device=x.device).manual_seed(int(p[i, 6].item()))
            x[i] = x[i] + p[i, 5] * torch.randn(x[i].shape, generator=g, device=x.device, dtype=x.dtype)
    lo = x.amin(dim=(1, 2, 3), keepdim=True)
    hi = x.amax(dim=(1, 2, 3), keepdim=True)
    return torch.where(hi > lo, (x - lo) / (hi - lo).clamp_min(1e-12), torch.zeros_like(x))
