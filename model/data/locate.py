"""The one answer to "where is the data this checkpoint was trained on": export calibration and parity,
the training-image refusal (model/evaluation/provenance.py) and promotion all ask here.

A checkpoint written by model/train.py records its data folder, the hash of that folder's splits and the
run's seed. The folder is looked for where it was recorded, then under ../shared/data by the same name (a
fresh clone on another machine), or only where the caller says (`given`, a --data flag); it is opened with
the run's seed (what split a folder without split.json gets) and accepted only when its splits hash to the
recorded value, so a same-named folder with other splits is never taken for the training data.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

from core.errors import DataError
from core.paths import SHARED_DATA
from model.data.datasets import Dataset, open_dataset


def recorded_root(ckpt: Dict) -> Optional[Path]:
    """The data folder the checkpoint records, or None when it records none."""
    root = (ckpt.get("data") or {}).get("root")
    return Path(root) if root else None


def candidates(ckpt: Dict, given=None) -> List[Path]:
    """Where to look, in order: only `given` when set, else the recorded folder, then ../shared/data/<its name>."""
    if given:
        return [Path(given)]
    root = recorded_root(ckpt)
    return [root, SHARED_DATA / root.name] if root is not None else []


def training_dataset(ckpt: Dict, given=None) -> Optional[Dataset]:
    """The dataset `ckpt` trained on, opened with its seed, from the first candidate folder whose splits hash
    to the recorded value; None when none is here (a checkpoint that records no hash takes the first folder)."""
    want = (ckpt.get("data") or {}).get("split_hash")
    seed = (ckpt.get("train_args") or {}).get("seed", 0)
    for folder in candidates(ckpt, given):
        if not folder.is_dir():
            continue
        try:
            ds = open_dataset(folder, seed=seed)
        except DataError:
            continue
        if want is None or ds.split_hash() == want:
            return ds
    return None
