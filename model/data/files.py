"""Reading one image or mask file: size limits, decoding, EXIF orientation, one-line errors; and a split's
arrays preprocessed for the network. numpy + Pillow only (no torch)."""
from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np

from core.errors import DataError
from core.images import EXIF_ORIENTATION, ORIENTATIONS, exif_orientation, oriented, pil_to_rgb, turn  # noqa: F401  (the file loader reads images as core/images.py says)
from core.preprocess import INPUT_SIZE, image_problem, preprocess_image, preprocess_mask
from model.data.datasets import Sample

def _check_file(path: Path, kind: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: {kind} file not found; check the path")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: {kind} file is empty; replace it with a valid {kind}")
    return path


MAX_MEGAPIXELS = 50.0  # images larger than this are refused before decoding (AULUNET_MAX_MEGAPIXELS overrides)
MAX_MEGAPIXELS_ENV = "AULUNET_MAX_MEGAPIXELS"


def max_megapixels() -> float:
    """The size limit on decoded images: MAX_MEGAPIXELS, or $AULUNET_MAX_MEGAPIXELS when set."""
    import os

    raw = os.environ.get(MAX_MEGAPIXELS_ENV, "").strip()
    if not raw:
        return MAX_MEGAPIXELS
    try:
        limit = float(raw)
    except ValueError:
        limit = float("nan")
    if not limit > 0:
        raise DataError(f"{MAX_MEGAPIXELS_ENV}={raw}: not a positive number of megapixels; set it like "
                        f"{MAX_MEGAPIXELS_ENV}=200 or unset it (default {MAX_MEGAPIXELS:g})")
    return limit


def _too_large(path: Path, kind: str, pixels: int, limit: float, size: Optional[Tuple[int, int]] = None) -> DataError:
    what = f"is {size[0]}x{size[1]} ({pixels / 1e6:.1f} megapixels)" if size else f"has {pixels / 1e6:.1f} megapixels"
    return DataError(f"{path}: {kind} {what}, over the {limit:g}-megapixel limit; "
                     f"downscale it, or raise the limit with {MAX_MEGAPIXELS_ENV}=<megapixels>")


class _open_image:
    """`with _open_image(path, "image") as im:` the decoded PIL image, or a one-line DataError: file missing,
    empty, larger than max_megapixels() (checked from the header, before decoding), or not decodable."""

    def __init__(self, path: Path, kind: str):
        self.path, self.kind = _check_file(path, kind), kind

    def __enter__(self):
        from PIL import Image, UnidentifiedImageError

        limit = max_megapixels()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit decides
                if limit * 1e6 > (Image.MAX_IMAGE_PIXELS or 0) * 2:  # the user raised the limit past PIL's own
                    Image.MAX_IMAGE_PIXELS = int(limit * 1e6)
                self.im = Image.open(self.path)
        except Image.DecompressionBombError as e:
            found = re.search(r"\((\d+) pixels\)", str(e))
            raise _too_large(self.path, self.kind, int(found.group(1)) if found else 0, limit) from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
            raise DataError(f"{self.path}: cannot decode {self.kind} ({e.__class__.__name__}); replace the corrupt file") from None
        w, h = self.im.size
        if w * h > limit * 1e6:
            self.im.close()
            raise _too_large(self.path, self.kind, w * h, limit, (w, h))
        # what the file holds before decoding turns it into a PIL mode ("RGB;16B": 16-bit colour, read as its high bytes)
        self.rawmodes = [str(getattr(t, "args", "")) for t in (getattr(self.im, "tile", None) or [])]
        try:
            self.im.load()
        except (OSError, SyntaxError, ValueError) as e:
            self.im.close()
            raise DataError(f"{self.path}: cannot decode {self.kind} ({e.__class__.__name__}); replace the corrupt file") from None
        return self.im

    def __exit__(self, *exc):
        self.im.close()
        return False


def _read_rgb(path: Path) -> Tuple[np.ndarray, int]:
    """(uint8 HxWx3 as displayed, the file's EXIF orientation)."""
    opener = _open_image(path, "image")
    with opener as im:
        orientation = exif_orientation(im)
        high_colour = im.mode in ("RGB", "RGBA") and any(r.endswith(";16B") for r in opener.rawmodes)
        rgb = pil_to_rgb(im, str(path))
    problem = image_problem(rgb)
    if problem and high_colour and "no contrast" in problem:
        problem = (f"16-bit colour image whose values use only the low bits (Pillow reads the high byte of each "
                   f"16-bit sample, here {int(rgb.min())}..{int(rgb.max())}); save it as 8-bit RGB or scale it to the "
                   f"full 16-bit range")
    if problem:
        raise DataError(f"{path}: {problem}")
    return rgb, orientation


def load_rgb(path: Path) -> np.ndarray:
    """uint8 HxWx3 RGB as the photo is displayed: its EXIF orientation applied (as browsers and phones do);
    grey (also 16-bit, scaled by bit depth), RGBA and palette images are converted with a warning. Files
    over max_megapixels() are refused."""
    return _read_rgb(path)[0]


# Single-channel modes whose values are read as they are; every other mode (palette, RGB, ...) is read by
# colour: its grey level, so a palette mask means what it shows, whatever its palette order.
_MASK_VALUE_MODES = ("1", "L", "I", "F", "I;16", "I;16L", "I;16B", "I;16N")


def _mask_values(im) -> np.ndarray:
    if im.mode in _MASK_VALUE_MODES:
        return np.asarray(im)
    grey = np.asarray(im.convert("L"))
    if "A" in im.getbands() or "transparency" in im.info:  # lesion drawn in the alpha channel only
        alpha = np.asarray(im.convert("RGBA"))[..., 3]
        if len(np.unique(grey)) == 1 and len(np.unique(alpha)) == 2:
            return alpha
    return grey


def _turned(a: Tuple[int, int], b: Tuple[int, int]) -> bool:
    return a[0] != a[1] and tuple(a) == tuple(b)[::-1]


def load_mask(path: Path, image_shape: Optional[Tuple[int, int]] = None,
              image_orientation: Optional[int] = None) -> np.ndarray:
    """bool HxW from a binary mask file; checks its size against the image (`image_shape`, as displayed).

    Binary means one or two values, the lower one 0 (background): 0/255, 0/1, 16-bit 0/65535, a palette
    whose colours are black and any other colour. Palette and colour masks are read by colour, not by
    palette index. Lesion = the non-zero value.

    Orientation: a mask with its own EXIF orientation tag is turned by it, as its image is. A mask without
    one, whose image has one (`image_orientation`, from the image file; load_sample passes it), is taken as drawn on the image's
    stored pixels and turned with the image, unless its size is that of the image as displayed and not as
    stored (it was drawn on the turned photo). Where that cannot be told apart (square image, or a flip or
    180-degree turn, which keep the size) a warning says which was assumed."""
    with _open_image(path, "mask") as im:
        own = exif_orientation(im)
        if own != 1:
            im = oriented(im)[0]
        stored = (im.size[1], im.size[0])
        if own == 1 and image_orientation not in (None, 1) and image_shape is not None:
            swaps = image_orientation >= 5
            displayed = tuple(image_shape)
            as_stored = displayed[::-1] if swaps else displayed
            if stored == as_stored:  # else: drawn on the photo as displayed (or a wrong size, said below)
                if stored == displayed:
                    warnings.warn(f"{path}: no EXIF orientation, but its image has orientation {image_orientation} "
                                  f"({ORIENTATIONS[image_orientation]}); the mask is taken as drawn on the stored "
                                  f"pixels and turned with the image (tag the mask, or save both as displayed, to be sure)",
                                  stacklevel=2)
                im = turn(im, image_orientation)
        arr = _mask_values(im)
    values = np.unique(arr)
    if arr.dtype != bool and (len(values) > 2 or (len(values) == 2 and values[0] != 0) or values.min(initial=0) < 0):
        shown = values[:4].tolist()
        why = f"{len(values)} distinct values, e.g. {shown}" if len(values) > 2 else f"values {shown}, none of them 0"
        raise DataError(f"{path}: mask is not binary ({why}); save it with 0 for background and one other value (e.g. 255) for lesion")
    if image_shape is not None and tuple(arr.shape[:2]) != tuple(image_shape):
        size = f"{path}: mask is {arr.shape[1]}x{arr.shape[0]} but its image is {image_shape[1]}x{image_shape[0]}"
        if _turned(arr.shape[:2], image_shape):
            image_tag = ("not checked" if image_orientation is None else
                         f"{image_orientation} ({ORIENTATIONS[image_orientation]})")
            raise DataError(f"{size} as displayed: the mask is turned 90 degrees from its image (EXIF orientation: image "
                            f"{image_tag}, mask {own} ({ORIENTATIONS[own]})); "
                            f"save the mask the same way up as the image, or give it the image's orientation tag")
        raise DataError(f"{size}; resize the mask to the image")
    return arr > 0


def load_sample(sample: Sample, with_mask: bool = True) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """(uint8 HxWx3 image, bool HxW mask or None) of one sample, both as displayed (EXIF orientation applied
    to the image, and to its mask as load_mask explains)."""
    rgb, orientation = _read_rgb(sample.image)
    if not with_mask:
        return rgb, None
    if sample.mask is None:
        raise DataError(f"{sample.image}: no mask for '{sample.id}'; add one to compute metrics")
    return rgb, load_mask(sample.mask, rgb.shape[:2], orientation)


def load_arrays(samples: Sequence[Sample], size: int = INPUT_SIZE, progress: bool = False,
                with_masks: bool = True) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Decode and preprocess: images float32 (N,3,size,size), masks uint8 (N,size,size) or None."""
    from tqdm import tqdm

    xs = np.empty((len(samples), 3, size, size), np.float32)
    ys = np.empty((len(samples), size, size), np.uint8) if with_masks else None
    for i, s in enumerate(tqdm(samples, desc="load", disable=not progress, leave=False)):
        rgb, mask = load_sample(s, with_masks)
        xs[i] = preprocess_image(rgb, size)
        if with_masks:
            ys[i] = preprocess_mask(mask, size)
    return xs, ys
