"""PIL images -> uint8 RGB as every reader of the toolkit sees them (numpy; PIL only when handed a PIL image).

model/data/ (files), runtimes' predict() (PIL images), the web page and the Android app apply the same
steps: the EXIF orientation tag, and grey images of more than 8 bits scaled by their bit depth.
"""
from __future__ import annotations

import warnings

import numpy as np

from .preprocess import high_depth_to_uint8

EXIF_ORIENTATION = 0x0112
# What each EXIF orientation asks a viewer to do to the stored pixels (PIL's ImageOps.exif_transpose does it).
ORIENTATIONS = {1: "as stored", 2: "mirrored", 3: "rotated 180", 4: "flipped vertically", 5: "transposed",
                6: "rotated 90 clockwise", 7: "transversed", 8: "rotated 90 counter-clockwise"}



def exif_orientation(im) -> int:
    """The EXIF orientation tag of a PIL image (1..8; 1 when absent or unreadable)."""
    try:
        o = int(im.getexif().get(EXIF_ORIENTATION, 1))
    except Exception:  # a damaged EXIF block: the pixels as stored, as a viewer that cannot read it shows them
        return 1
    return o if o in ORIENTATIONS else 1


def turn(im, orientation: int):
    """A PIL image's stored pixels as EXIF `orientation` shows them: the pixels of ImageOps.exif_transpose
    (its table of Image.transpose methods), without its rewriting of the metadata; 1 (or no tag) as it is."""
    from PIL import Image

    t = Image.Transpose
    method = {2: t.FLIP_LEFT_RIGHT, 3: t.ROTATE_180, 4: t.FLIP_TOP_BOTTOM, 5: t.TRANSPOSE, 6: t.ROTATE_270,
              7: t.TRANSVERSE, 8: t.ROTATE_90}.get(orientation)
    return im if method is None else im.transpose(method)


def oriented(im):
    """(PIL image as viewers show it, its EXIF orientation): the transform the browser (createImageBitmap's
    imageOrientation 'from-image') and the Android app (Orientation.java) apply too."""
    o = exif_orientation(im)
    return turn(im, o), o


_HIGH_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def pil_to_rgb(im, name: str = "image", warn: bool = True) -> np.ndarray:
    """A PIL image -> uint8 HxWx3 RGB, as the toolkit reads every image: EXIF orientation applied (`oriented`),
    grey images of more than 8 bits scaled by their bit depth (`high_depth_to_uint8`), other modes (grey,
    palette, RGBA, CMYK) converted by PIL; conversions are noted with a warning naming `name` when `warn`."""
    im, _ = oriented(im)
    if im.mode == "RGB":
        return np.asarray(im, dtype=np.uint8).copy()
    if im.mode in _HIGH_DEPTH_MODES:
        grey, bits = high_depth_to_uint8(np.asarray(im))
        if warn:
            depth = "values in [0, 1]" if bits == 0 else f"{bits}-bit values"
            warnings.warn(f"{name}: {im.mode} grey image ({depth}) scaled to 8-bit and converted to RGB", stacklevel=3)
        return np.repeat(grey[..., None], 3, axis=2)
    if warn:
        warnings.warn(f"{name}: {im.mode} image converted to RGB", stacklevel=3)
    return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
