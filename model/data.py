"""Datasets on disk: layout detection, splits, validated loading. numpy + Pillow only (no torch).

Layouts detected under a root folder:
  generic  images/<id>.<ext> + masks/<id>[ _segmentation| _lesion| _mask].<ext>   (png/jpg/jpeg/bmp/webp/tif)
  isic     ISIC 2017/2018 official folders: *_Training_Input or *_Training_Data with
           *_Training[_Part1]_GroundTruth/<id>_segmentation.png (also Validation and Test)
  ph2      PH2 as distributed: "PH2 Dataset images"/IMDxxx/IMDxxx_Dermoscopic_Image/IMDxxx.bmp
           and IMDxxx_lesion/IMDxxx_lesion.bmp

Files in the image folders that are not read (ISIC 2017's *_superpixels.png maps, text files) are counted
in Dataset.skipped and named in one warning.

Splits: a split.json next to the data ({"train": [ids], "val": [ids], "test": [ids]}), also over ISIC's
official folders; otherwise ISIC's official folders give the split; otherwise a deterministic split of the
*sorted* ids with a seeded generator (the public reference splits an unsorted glob, whose order
depends on the file system, so its splits cannot be reproduced).
"""
from __future__ import annotations

import hashlib
import json
import re
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from core.errors import DataError
from core.images import EXIF_ORIENTATION, ORIENTATIONS, exif_orientation, oriented, pil_to_rgb, turn  # noqa: F401  (the file loader reads images as core/images.py says)
from core.preprocess import INPUT_SIZE, image_problem, preprocess_image, preprocess_mask

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")  # what Pillow decodes here
MASK_SUFFIXES = ("", "_segmentation", "_lesion", "_mask")
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Sample:
    id: str
    image: Path
    mask: Optional[Path]
    split: Optional[str] = None  # set by layouts that carry an official split


@dataclass
class Dataset:
    root: Path
    layout: str
    samples: List[Sample]
    splits: Dict[str, List[str]]
    split_source: str
    skipped: Dict[str, int] = field(default_factory=dict)  # files in the image folders not read, by reason

    def subset(self, split: str) -> List[Sample]:
        """The samples of one split ("all": every sample). A split that is missing or empty is an error:
        metrics over no images would read as a perfect score."""
        if split == "all":
            return list(self.samples)
        if split not in self.splits:
            have = ", ".join(sorted(self.splits)) or "none"
            fix = "add it to split.json" if self.split_source == "split.json" else "use another split"
            raise DataError(f"{self.root}: no '{split}' split (have {have}); {fix}")
        if not self.splits[split]:
            fix = (f"list image ids under '{split}' in split.json" if self.split_source == "split.json" else
                   f"add images ({len(self.samples)} found) or write a split.json")
            raise DataError(f"{self.root}: the '{split}' split is empty ({self.split_source}); {fix}")
        by_id = {s.id: s for s in self.samples}
        return [by_id[i] for i in self.splits[split]]

    def split_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.splits, sort_keys=True).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- layouts

SUPERPIXELS = re.compile(r"_superpixels$")  # ISIC 2017's superpixel maps beside each photo: not lesion photos


class Skipped(Counter):
    """Files in image folders that were not read, by reason (a line of the dataset's summary)."""

    def note(self, path: Path) -> None:
        if SUPERPIXELS.search(path.stem) and path.suffix.lower() in IMAGE_EXTS:
            self["ISIC superpixel maps (*_superpixels.png, not lesion photos)"] += 1
        elif not path.name.startswith("."):  # .DS_Store and other hidden files are no one's data
            self[f"not images ({path.suffix.lower() or 'no extension'})"] += 1

    def line(self) -> str:
        return ", ".join(f"{n} {why}" for why, n in sorted(self.items()))


def image_files(folder: Path, skipped: Optional[Skipped] = None) -> List[Path]:
    """The image files the loader reads in `folder`, sorted (the rest is counted in `skipped` when given)."""
    out = []
    for p in sorted(folder.iterdir()):
        if not p.is_file():
            continue
        if p.suffix.lower() in IMAGE_EXTS and not SUPERPIXELS.search(p.stem):
            out.append(p)
        elif skipped is not None:
            skipped.note(p)
    return out


def _find_mask(mask_dir: Path, stem: str) -> Optional[Path]:
    for suffix in MASK_SUFFIXES:
        for ext in IMAGE_EXTS:
            for cand in (mask_dir / f"{stem}{suffix}{ext}", mask_dir / f"{stem}{suffix}{ext.upper()}"):
                if cand.is_file():
                    return cand
    return None


def _pairs(image_dir: Path, mask_dir: Optional[Path], split: Optional[str] = None,
           skipped: Optional[Skipped] = None) -> List[Sample]:
    out = []
    for img in image_files(image_dir, skipped):
        mask = _find_mask(mask_dir, img.stem) if mask_dir is not None else None
        out.append(Sample(img.stem, img, mask, split))
    return out


_ISIC_SPLIT = {"training": "train", "validation": "val", "test": "test"}
_ISIC_INPUT = re.compile(r"^ISIC.*_(Training|Validation|Test)(_v2)?_(Input|Data)$", re.I)
_ISIC_GT = re.compile(r"^ISIC.*_(Training|Validation|Test)(_v2)?(_Part1)?_GroundTruth$", re.I)


def _isic(root: Path, skipped: Optional[Skipped] = None) -> List[Sample]:
    dirs = [d for d in root.iterdir() if d.is_dir()]
    gts = {}
    for d in dirs:
        m = _ISIC_GT.match(d.name)
        if m:
            gts[m.group(1).lower()] = d
    samples = []
    for d in sorted(dirs):
        m = _ISIC_INPUT.match(d.name)
        if m:
            key = m.group(1).lower()
            samples += _pairs(d, gts.get(key), _ISIC_SPLIT[key], skipped)
    return samples


def _ph2(root: Path) -> List[Sample]:
    base = root / "PH2 Dataset images" if (root / "PH2 Dataset images").is_dir() else root
    samples = []
    for case in sorted(p for p in base.iterdir() if p.is_dir() and re.match(r"IMD\d+$", p.name)):
        img_dir = case / f"{case.name}_Dermoscopic_Image"
        imgs = image_files(img_dir) if img_dir.is_dir() else []
        if not imgs:
            raise DataError(f"{img_dir}: no dermoscopic image; restore {case.name}.bmp from the PH2 archive")
        les_dir = case / f"{case.name}_lesion"
        mask = _find_mask(les_dir, case.name) if les_dir.is_dir() else None
        samples.append(Sample(case.name, imgs[0], mask))
    return samples


def detect_layout(root: Path) -> str:
    root = Path(root)
    if not root.exists():
        raise DataError(f"{root}: data folder not found; pass --data with a folder holding images/ and masks/, ISIC or PH2 folders")
    if not root.is_dir():
        raise DataError(f"{root}: not a folder; pass the data folder, not a file")
    if (root / "images").is_dir():
        return "generic"
    names = [d.name for d in root.iterdir() if d.is_dir()]
    if any(_ISIC_INPUT.match(n) for n in names):
        return "isic"
    if "PH2 Dataset images" in names or any(re.match(r"IMD\d+$", n) for n in names):
        return "ph2"
    if not any(root.iterdir()):
        raise DataError(f"{root}: folder is empty; put images/ and masks/ (or the ISIC/PH2 folders) in it")
    raise DataError(f"{root}: unknown layout; expected images/ + masks/, ISIC *_Training_Input + *_GroundTruth, or 'PH2 Dataset images'")


def deterministic_split(ids: Sequence[str], seed: int = 0, val_fraction: float = 0.2,
                        test_fraction: float = 0.0) -> Dict[str, List[str]]:
    ids = sorted(ids)
    order = np.random.default_rng(seed).permutation(len(ids))
    n_val = int(round(len(ids) * val_fraction))
    n_test = int(round(len(ids) * test_fraction))
    pick = [ids[i] for i in order]
    out = {"train": sorted(pick[n_val + n_test:]), "val": sorted(pick[:n_val])}
    if n_test:
        out["test"] = sorted(pick[n_val:n_val + n_test])
    return out


def open_dataset(root, seed: int = 0, require_masks: bool = True) -> Dataset:
    root = Path(root)
    layout = detect_layout(root)
    skipped = Skipped()
    if layout == "generic":
        masks = root / "masks"
        samples = _pairs(root / "images", masks if masks.is_dir() else None, skipped=skipped)
    elif layout == "isic":
        samples = _isic(root, skipped)
    else:
        samples = _ph2(root)
    if skipped:
        warnings.warn(f"{root}: skipped {skipped.line()} in its image folders", stacklevel=2)
    if not samples:
        raise DataError(f"{root}: no images found ({layout} layout); add {'/'.join(e[1:] for e in IMAGE_EXTS)} images")
    if require_masks:
        missing = [s for s in samples if s.mask is None]
        if missing:
            s = missing[0]
            raise DataError(f"{s.image}: no mask found for '{s.id}' ({len(missing)} image(s) without a mask); add {s.id}_segmentation.png or equivalent to the masks folder")
    ids = [s.id for s in samples]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})[0]
        raise DataError(f"{root}: image id '{dup}' appears twice; give each image a unique file name")
    split_file = root / "split.json"
    if split_file.is_file():  # the user's own split wins, also over the official ISIC folders
        splits = read_split_file(split_file, ids, root)
        source = "split.json"
    elif any(s.split for s in samples):
        splits: Dict[str, List[str]] = {}
        for s in samples:
            splits.setdefault(s.split, []).append(s.id)
        source = "official ISIC folders"
    else:
        splits = deterministic_split(ids, seed)
        source = f"sorted ids, seed {seed}, 80/20"
    return Dataset(root, layout, samples, splits, source, dict(skipped))


def read_split_file(split_file: Path, ids: Sequence[str], root: Path) -> Dict[str, List[str]]:
    """{"train": [ids], "val": [ids], "test": [ids]} from split.json, checked: lists of known image ids,
    no id twice, no id in two splits (a leak: a model would be scored on images it was trained on).
    Keys whose values are not lists ("seed", "note") are notes and ignored; a list under any other key
    ("validation") is an error, since its images would silently go unused."""
    try:
        raw = json.loads(split_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{split_file}: not valid JSON ({type(e).__name__}: {str(e).splitlines()[0]}); fix or delete it to use a seeded split") from None
    except OSError as e:
        raise DataError(f"{split_file}: cannot read it ({e.strerror or type(e).__name__}); fix its permissions or delete it") from None
    if not isinstance(raw, dict):
        raise DataError(f"{split_file}: expected an object like {{\"train\": [ids], \"val\": [ids]}}, got a JSON {type(raw).__name__}; fix or delete it")
    stray = sorted(k for k, v in raw.items() if k not in SPLITS and isinstance(v, list))
    if stray:
        raise DataError(f"{split_file}: unknown split '{stray[0]}'; name the splits {', '.join(SPLITS)}")
    splits: Dict[str, List[str]] = {}
    for k in SPLITS:
        if k not in raw:
            continue
        v = raw[k]
        if not isinstance(v, list) or not all(isinstance(i, str) for i in v):
            raise DataError(f"{split_file}: '{k}' must be a list of image ids (strings), e.g. [\"IMD002\", ...]; fix split.json")
        twice = sorted({i for i in v if v.count(i) > 1}) if len(set(v)) != len(v) else []
        if twice:
            raise DataError(f"{split_file}: '{k}' lists id '{twice[0]}' more than once; list each image once")
        splits[k] = list(v)
    unknown = sorted(set(i for v in splits.values() for i in v) - set(ids))
    if unknown:
        raise DataError(f"{split_file}: lists id '{unknown[0]}' ({len(unknown)} in all) with no image in {root}; fix split.json or restore the image")
    names = list(splits)
    for a_i, a in enumerate(names):
        for b in names[a_i + 1:]:
            both = sorted(set(splits[a]) & set(splits[b]))
            if both:
                raise DataError(f"{split_file}: id '{both[0]}' is in both '{a}' and '{b}' ({len(both)} shared): a leak; "
                                f"put each image in one split only")
    return splits


# --------------------------------------------------------------------------- loading

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
