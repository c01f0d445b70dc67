"""Datasets on disk: layout detection and splits (reading the files is model/data/files.py). No torch.

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
from typing import Dict, List, Optional, Sequence

import numpy as np

from core.errors import DataError

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
