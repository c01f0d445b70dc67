"""Image corruptions of a clinic's photos, deterministic and at three severities (the robustness benchmark).

`corrupt(rgb, name, severity, seed)` takes a uint8 HxWx3 RGB image and returns a corrupted uint8 copy of
the same size; the lesion mask is unchanged by every corruption (they alter what the camera sees, not
where the lesion is). The same (image, name, severity, seed) always gives the same bytes on one machine.

Families (parameters per severity in SEVERITIES; sizes are in pixels of the image given, which for the
benchmark's ISIC 2018 images is 256x192):
- acquisition: colour cast (white balance), brightness, contrast, gamma, vignetting, dermoscope border;
- optics and sensor: defocus blur (disk), motion blur, Gaussian noise, JPEG quality, downscale-upscale;
- artefacts on the skin: hair, surgical-pen ink marks, a ruler, specular highlights.
Filtering and intensity maps use kornia (batched tensor ops); JPEG uses Pillow's codec; the artefacts,
which no library draws, are drawn here with Pillow.
"""
from __future__ import annotations

import contextlib
import math
import zlib
from typing import Callable, Dict, Iterator, Tuple

import numpy as np

SEVERITY_LEVELS = (1, 2, 3)
# name -> the parameter at severity 1, 2, 3 (what each means: the function's docstring)
SEVERITIES: Dict[str, Tuple[float, float, float]] = {
    "colour_cast": (0.10, 0.20, 0.32),
    "brightness": (0.15, 0.30, 0.45),
    "contrast": (0.60, 0.40, 0.25),
    "gamma": (1.5, 2.0, 2.8),
    "vignetting": (0.30, 0.50, 0.70),
    "dermoscope_border": (0.90, 0.80, 0.70),
    "defocus_blur": (1.5, 3.0, 4.5),
    "motion_blur": (7, 11, 15),
    "gaussian_noise": (0.03, 0.06, 0.10),
    "jpeg": (30, 15, 7),
    "downscale": (2, 3, 4),
    "hair": (8, 20, 40),
    "pen_ink": (1, 2, 3),
    "ruler": (0.06, 0.10, 0.14),
    "specular": (6, 15, 30),
}
FAMILY = {
    **dict.fromkeys(("colour_cast", "brightness", "contrast", "gamma", "vignetting", "dermoscope_border"), "acquisition"),
    **dict.fromkeys(("defocus_blur", "motion_blur", "gaussian_noise", "jpeg", "downscale"), "optics and sensor"),
    **dict.fromkeys(("hair", "pen_ink", "ruler", "specular"), "artefacts"),
}
CORRUPTIONS = tuple(SEVERITIES)


def _tensor(rgb: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float().div_(255.0)


def _uint8(x) -> np.ndarray:
    arr = x[0].clamp(0, 1).mul(255.0).round().to(dtype=__import__("torch").uint8).permute(1, 2, 0).numpy()
    return np.ascontiguousarray(arr)


def _float_to_uint8(a: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)


# ------------------------------------------------------------------ acquisition

def colour_cast(rgb, p, rng):
    """White balance off by p: red x(1+p), blue x(1-p) (warm) or the reverse (cool), drawn per image."""
    a = rgb.astype(np.float32) / 255.0
    s = 1.0 if rng.random() < 0.5 else -1.0
    gains = np.array([1 + s * p, 1.0, 1 - s * p], np.float32)
    return _float_to_uint8(a * gains)


def brightness(rgb, p, rng):
    """Brightness shifted by +-p of the full range (kornia.enhance.adjust_brightness), sign drawn per image."""
    import kornia.enhance as ke

    s = p if rng.random() < 0.5 else -p
    return _uint8(ke.adjust_brightness(_tensor(rgb), s))


def contrast(rgb, p, rng):
    """Contrast scaled by p around the image's mean (kornia.enhance.adjust_contrast_with_mean_subtraction)."""
    import kornia.enhance as ke

    return _uint8(ke.adjust_contrast_with_mean_subtraction(_tensor(rgb), p))


def gamma(rgb, p, rng):
    """Gamma p or 1/p (drawn per image) on [0, 1] intensities (kornia.enhance.adjust_gamma)."""
    import kornia.enhance as ke

    g = p if rng.random() < 0.5 else 1.0 / p
    return _uint8(ke.adjust_gamma(_tensor(rgb), g))


def _radius(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cy, cx = (h - 1) / 2, (w - 1) / 2
    return np.hypot(yy - cy, xx - cx) / math.hypot(cy, cx)  # 0 at the centre, 1 at the corners


def vignetting(rgb, p, rng):
    """Light falling off towards the corners: x (1 - p r^2), r the distance from the centre (1 at a corner)."""
    h, w = rgb.shape[:2]
    return _float_to_uint8(rgb.astype(np.float32) / 255.0 * (1 - p * _radius(h, w) ** 2)[..., None])


def dermoscope_border(rgb, p, rng):
    """The black surround of a contact dermoscope: everything outside a centred circle of radius p (in units of
    the half-diagonal) is near-black, with a 2-pixel soft edge."""
    h, w = rgb.shape[:2]
    r = _radius(h, w)
    edge = 2.0 / math.hypot(h / 2, w / 2)
    inside = np.clip((p - r) / edge, 0.0, 1.0)[..., None]
    dark = np.array([8, 6, 6], np.float32) / 255.0
    a = rgb.astype(np.float32) / 255.0
    return _float_to_uint8(a * inside + dark * (1 - inside))


# ------------------------------------------------------------------ optics and sensor

def defocus_blur(rgb, p, rng):
    """Out of focus: a disk kernel of radius p pixels (kornia.filters.filter2d, reflected borders)."""
    import kornia.filters as kf
    import torch

    r = int(math.ceil(p))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    k = (np.hypot(yy, xx) <= p + 0.5).astype(np.float32)
    k = torch.from_numpy(k / k.sum())[None]
    return _uint8(kf.filter2d(_tensor(rgb), k, border_type="reflect"))


def motion_blur(rgb, p, rng):
    """Camera shake: a line kernel of p pixels at an angle drawn per image (kornia.filters.motion_blur)."""
    import kornia.filters as kf

    angle = float(rng.uniform(0, 180))
    return _uint8(kf.motion_blur(_tensor(rgb), int(p), angle, 0.0, border_type="reflect"))


def gaussian_noise(rgb, p, rng):
    """Sensor noise: additive Gaussian of standard deviation p (of the full range), per pixel and channel."""
    a = rgb.astype(np.float32) / 255.0
    return _float_to_uint8(a + rng.normal(0.0, p, a.shape).astype(np.float32))


def jpeg(rgb, p, rng):
    """JPEG compression at quality p (Pillow's codec, 4:2:0)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=int(p))
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB")).copy()


def downscale(rgb, p, rng):
    """A low-resolution camera: shrunk by p (antialiased) and enlarged back bilinearly (kornia.geometry.resize)."""
    from kornia.geometry.transform import resize

    h, w = rgb.shape[:2]
    x = _tensor(rgb)
    small = resize(x, (max(1, round(h / p)), max(1, round(w / p))), interpolation="bilinear", antialias=True)
    return _uint8(resize(small, (h, w), interpolation="bilinear", align_corners=False))


# ------------------------------------------------------------------ artefacts on the skin

def _draw(rgb: np.ndarray, paint: Callable, colour, opacity: float, supersample: int = 2) -> np.ndarray:
    """Blend `colour` into rgb through an antialiased alpha that `paint(draw, scale)` draws with Pillow."""
    from PIL import Image, ImageDraw

    h, w = rgb.shape[:2]
    s = supersample
    alpha = Image.new("L", (w * s, h * s), 0)
    paint(ImageDraw.Draw(alpha), s)
    a = np.asarray(alpha.resize((w, h), Image.BOX), np.float32)[..., None] / 255.0 * opacity
    out = rgb.astype(np.float32) * (1 - a) + np.asarray(colour, np.float32) * a
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _curve(rng, h, w, length):
    """Points of a smooth random curve (a quadratic Bezier) of roughly `length` pixels."""
    x0, y0 = rng.uniform(0, w), rng.uniform(0, h)
    ang = rng.uniform(0, 2 * math.pi)
    x2, y2 = x0 + length * math.cos(ang), y0 + length * math.sin(ang)
    bend = rng.uniform(-0.3, 0.3) * length
    x1, y1 = (x0 + x2) / 2 - bend * math.sin(ang), (y0 + y2) / 2 + bend * math.cos(ang)
    t = np.linspace(0, 1, 24)[:, None]
    pts = (1 - t) ** 2 * [x0, y0] + 2 * (1 - t) * t * [x1, y1] + t ** 2 * [x2, y2]
    return [tuple(p) for p in pts]


def hair(rgb, p, rng):
    """p dark hairs: smooth curves 1-2 pixels wide, 20-60% of the image's width long."""
    h, w = rgb.shape[:2]
    strands = [(_curve(rng, h, w, rng.uniform(0.2, 0.6) * w), rng.uniform(0.8, 1.8)) for _ in range(int(p))]

    def paint(d, s):
        for pts, width in strands:
            d.line([(x * s, y * s) for x, y in pts], fill=255, width=max(1, round(width * s)), joint="curve")

    shade = rng.uniform(15, 45)
    return _draw(rgb, paint, (shade * 1.1, shade * 0.8, shade * 0.6), 0.9)


def pen_ink(rgb, p, rng):
    """p surgical-pen marks (violet or blue): thick strokes or dots placed anywhere on the image."""
    h, w = rgb.shape[:2]
    marks = []
    for _ in range(int(p)):
        if rng.random() < 0.5:
            marks.append(("line", _curve(rng, h, w, rng.uniform(0.1, 0.3) * w), rng.uniform(3, 6)))
        else:
            cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(3, 7)
            marks.append(("dot", (cx - r, cy - r, cx + r, cy + r), 0))

    def paint(d, s):
        for kind, geo, width in marks:
            if kind == "line":
                d.line([(x * s, y * s) for x, y in geo], fill=255, width=round(width * s), joint="curve")
            else:
                d.ellipse([v * s for v in geo], fill=255)

    colour = (95, 45, 150) if rng.random() < 0.5 else (40, 60, 150)
    return _draw(rgb, paint, colour, 0.85)


def ruler(rgb, p, rng):
    """A ruler along one edge (drawn per image): a pale band p of the image's height wide, black ticks every
    6 pixels (every fifth one longer)."""
    h, w = rgb.shape[:2]
    side = int(rng.integers(4))
    band = max(3, round(p * min(h, w)))
    out = _draw(rgb, lambda d, s: _band(d, s, h, w, side, band), (225, 222, 210), 0.95)
    return _draw(out, lambda d, s: _ticks(d, s, h, w, side, band), (10, 10, 10), 1.0)


def _band(d, s, h, w, side, band):
    boxes = [(0, 0, w, band), (0, h - band, w, h), (0, 0, band, h), (w - band, 0, w, h)]
    d.rectangle([v * s for v in boxes[side]], fill=255)


def _ticks(d, s, h, w, side, band):
    n = (w if side < 2 else h) // 6
    for i in range(n):
        length = band * (0.8 if i % 5 == 0 else 0.45)
        t = i * 6 + 3
        if side == 0:
            seg = (t, 0, t, length)
        elif side == 1:
            seg = (t, h, t, h - length)
        elif side == 2:
            seg = (0, t, length, t)
        else:
            seg = (w, t, w - length, t)
        d.line([v * s for v in seg], fill=255, width=max(1, s))


def specular(rgb, p, rng):
    """p specular highlights: small bright ellipses (1-4 pixels) where the light reflects off the skin or gel."""
    h, w = rgb.shape[:2]
    spots = [(rng.uniform(0, w), rng.uniform(0, h), rng.uniform(1, 4), rng.uniform(1, 4)) for _ in range(int(p))]

    def paint(d, s):
        for cx, cy, rx, ry in spots:
            d.ellipse([(cx - rx) * s, (cy - ry) * s, (cx + rx) * s, (cy + ry) * s], fill=255)

    return _draw(rgb, paint, (252, 252, 250), 0.9, supersample=4)


FUNCTIONS: Dict[str, Callable] = {n: globals()[n] for n in CORRUPTIONS}


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """corrupt()'s kornia ops on n of torch's threads inside the block, the count before restored after: torch's
    default takes every core, and beside other busy processes its small ops then run ten times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def corrupt(rgb: np.ndarray, name: str, severity: int, seed: int = 0) -> np.ndarray:
    """The corrupted copy of a uint8 HxWx3 RGB image; `seed` (e.g. the image's index) fixes the draws."""
    if name not in FUNCTIONS:
        raise ValueError(f"unknown corruption '{name}'; known: {', '.join(CORRUPTIONS)}")
    if severity not in SEVERITY_LEVELS:
        raise ValueError(f"severity must be one of {SEVERITY_LEVELS}, got {severity}")
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"corrupt() takes a uint8 HxWx3 RGB array, got {rgb.dtype} {rgb.shape}")
    key = zlib.crc32(name.encode())  # stable across processes (str hash is salted)
    rng = np.random.default_rng([seed, key, severity])
    out = FUNCTIONS[name](rgb, SEVERITIES[name][severity - 1], rng)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    return out
