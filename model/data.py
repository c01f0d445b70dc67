"""Datasets on disk: layout detection, splits, validated loading. numpy + Pillow only (no torch).

Layouts detected under a root folder:
  generic  images/<id>.<ext> + masks/<id>[ _segmentation| _lesion| _mask].<ext>   (png/jpg/jpeg/bmp)
  isic     ISIC 2017/2018 official folders: *_Training_Input or *_Training_Data with
           *_Training[_Part1]_GroundTruth/<id>_segmentation.png (also Validation and Test)
  ph2      PH2 as distributed: "PH2 Dataset images"/IMDxxx/IMDxxx_Dermoscopic_Image/IMDxxx.bmp
           and IMDxxx_lesion/IMDxxx_lesion.bmp

Splits: ISIC's official folders give the split; otherwise a split.json next to the data
({"train": [ids], "val": [ids], "test": [ids]}); otherwise a deterministic split of the
*sorted* ids with a seeded generator (the public reference splits an unsorted glob, whose order
depends on the file system, so its splits cannot be reproduced).
"""
from __future__ import annotations

import hashlib
import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .errors import DataError
from .preprocess import INPUT_SIZE, image_problem, preprocess_image, preprocess_mask

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp")
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

def _images_in(folder: Path) -> List[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


def _find_mask(mask_dir: Path, stem: str) -> Optional[Path]:
    for suffix in MASK_SUFFIXES:
        for ext in IMAGE_EXTS:
            for cand in (mask_dir / f"{stem}{suffix}{ext}", mask_dir / f"{stem}{suffix}{ext.upper()}"):
                if cand.is_file():
                    return cand
    return None


def _pairs(image_dir: Path, mask_dir: Optional[Path], split: Optional[str] = None,
           skip=re.compile(r"_superpixels$")) -> List[Sample]:
    out = []
    for img in _images_in(image_dir):
        if skip.search(img.stem):
            continue
        mask = _find_mask(mask_dir, img.stem) if mask_dir is not None else None
        out.append(Sample(img.stem, img, mask, split))
    return out


_ISIC_SPLIT = {"training": "train", "validation": "val", "test": "test"}
_ISIC_INPUT = re.compile(r"^ISIC.*_(Training|Validation|Test)(_v2)?_(Input|Data)$", re.I)
_ISIC_GT = re.compile(r"^ISIC.*_(Training|Validation|Test)(_v2)?(_Part1)?_GroundTruth$", re.I)


def _isic(root: Path) -> List[Sample]:
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
            samples += _pairs(d, gts.get(key), _ISIC_SPLIT[key])
    return samples


def _ph2(root: Path) -> List[Sample]:
    base = root / "PH2 Dataset images" if (root / "PH2 Dataset images").is_dir() else root
    samples = []
    for case in sorted(p for p in base.iterdir() if p.is_dir() and re.match(r"IMD\d+$", p.name)):
        img_dir = case / f"{case.name}_Dermoscopic_Image"
        imgs = _images_in(img_dir) if img_dir.is_dir() else []
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
    if layout == "generic":
        masks = root / "masks"
        samples = _pairs(root / "images", masks if masks.is_dir() else None)
    elif layout == "isic":
        samples = _isic(root)
    else:
        samples = _ph2(root)
    if not samples:
        raise DataError(f"{root}: no images found ({layout} layout); add .png/.jpg/.bmp images")
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
    if any(s.split for s in samples):
        splits: Dict[str, List[str]] = {}
        for s in samples:
            splits.setdefault(s.split, []).append(s.id)
        source = "official ISIC folders"
    elif split_file.is_file():
        splits = read_split_file(split_file, ids, root)
        source = "split.json"
    else:
        splits = deterministic_split(ids, seed)
        source = f"sorted ids, seed {seed}, 80/20"
    return Dataset(root, layout, samples, splits, source)


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


def load_rgb(path: Path) -> np.ndarray:
    """uint8 HxWx3; grayscale/RGBA/palette images are converted with a warning."""
    from PIL import Image, UnidentifiedImageError

    path = _check_file(path, "image")
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode != "RGB":
                warnings.warn(f"{path}: {im.mode} image converted to RGB", stacklevel=2)
                im = im.convert("RGB")
            rgb = np.asarray(im, dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{path}: cannot decode image ({e.__class__.__name__}); replace the corrupt file") from None
    problem = image_problem(rgb)
    if problem:
        raise DataError(f"{path}: {problem}")
    return rgb


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


def load_mask(path: Path, image_shape: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """bool HxW from a binary mask file; checks its size against the image.

    Binary means one or two values, the lower one 0 (background): 0/255, 0/1, 16-bit 0/65535, a palette
    whose colours are black and any other colour. Palette and colour masks are read by colour, not by
    palette index. Lesion = the non-zero value."""
    from PIL import Image, UnidentifiedImageError

    path = _check_file(path, "mask")
    try:
        with Image.open(path) as im:
            im.load()
            arr = _mask_values(im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{path}: cannot decode mask ({e.__class__.__name__}); replace the corrupt file") from None
    values = np.unique(arr)
    if arr.dtype != bool and (len(values) > 2 or (len(values) == 2 and values[0] != 0) or values.min(initial=0) < 0):
        shown = values[:4].tolist()
        why = f"{len(values)} distinct values, e.g. {shown}" if len(values) > 2 else f"values {shown}, none of them 0"
        raise DataError(f"{path}: mask is not binary ({why}); save it with 0 for background and one other value (e.g. 255) for lesion")
    if image_shape is not None and tuple(arr.shape[:2]) != tuple(image_shape):
        raise DataError(f"{path}: mask is {arr.shape[1]}x{arr.shape[0]} but its image is {image_shape[1]}x{image_shape[0]}; resize the mask to the image")
    return arr > 0


def load_arrays(samples: Sequence[Sample], size: int = INPUT_SIZE, progress: bool = False,
                with_masks: bool = True) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Decode and preprocess: images float32 (N,3,size,size), masks uint8 (N,size,size) or None."""
    from tqdm import tqdm

    xs = np.empty((len(samples), 3, size, size), np.float32)
    ys = np.empty((len(samples), size, size), np.uint8) if with_masks else None
    for i, s in enumerate(tqdm(samples, desc="load", disable=not progress, leave=False)):
        rgb = load_rgb(s.image)
        xs[i] = preprocess_image(rgb, size)
        if with_masks:
            if s.mask is None:
                raise DataError(f"{s.image}: no mask for '{s.id}'; add one to compute metrics")
            ys[i] = preprocess_mask(load_mask(s.mask, rgb.shape[:2]), size)
    return xs, ys
