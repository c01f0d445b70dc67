"""Which images a checkpoint was trained on, so that no evaluation silently scores a model on them.

A checkpoint written by model/train.py records its data folder, the hash of that folder's splits,
and how many training images it used. When that folder (or one of the same name under
../shared/data) is here with the same splits, the training ids are known exactly; evaluating on
any of them is refused unless the caller says it is on purpose. ISIC 2017 and ISIC 2018 share
1,800 cases, so this is what stops an ISIC 2017 model being "tested" on ISIC 2018's test split.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Set

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def training_ids(ckpt: dict) -> Optional[Set[str]]:
    """The ids a checkpoint trained on, or None when its data folder is not here to tell."""
    from .data import DataError, open_dataset

    data = ckpt.get("data") or {}
    root = data.get("root")
    if not root:
        return None
    for cand in (Path(root), SHARED_DATA / Path(root).name):
        if not cand.is_dir():
            continue
        try:
            ds = open_dataset(cand, seed=(ckpt.get("train_args") or {}).get("seed", 0))
        except DataError:
            continue
        if ds.split_hash() != data.get("split_hash") or "train" not in ds.splits:
            continue
        ids = [s.id for s in ds.subset("train")]
        limit = (ckpt.get("train_args") or {}).get("limit_train") or 0
        return set(ids[:limit] if limit else ids)
    return None


def overlap_error(weights, samples: Sequence, split: str) -> Optional[str]:
    """A one-line error when `samples` include images the checkpoint `weights` trained on, else None."""
    if Path(weights).suffix.lower() != ".pt":
        return None
    from .checkpoint import CheckpointError, load_checkpoint

    try:
        ids = training_ids(load_checkpoint(weights))
    except CheckpointError:
        return None  # the loader reports a bad file in its own words
    if not ids:
        return None
    seen = sorted(ids & {s.id for s in samples})
    if not seen:
        return None
    return (f"{weights}: {len(seen)} of the {len(samples)} '{split}' images (e.g. {seen[0]}) are in this model's "
            f"training set, so the scores would be inflated; evaluate on data it did not train on, or pass "
            f"--allow-train-overlap to score them anyway")


def refuse_training_images(weights, samples: Sequence, split: str) -> None:
    """UserError (one line, naming --allow-train-overlap) when `samples` include images `weights` trained on."""
    from .errors import UserError

    leak = overlap_error(weights, samples, split)
    if leak:
        raise UserError(leak)
