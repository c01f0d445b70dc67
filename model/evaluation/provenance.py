"""Which images a checkpoint was trained on, so that no evaluation silently scores a model on them.

A checkpoint written by model/train.py records its data folder, the hash of that folder's splits,
and how many training images it used. When that folder (or one of the same name under
../shared/data) is here with the same splits, the training ids are known exactly; evaluating on
any of them is refused unless the caller says it is on purpose. ISIC 2017 and ISIC 2018 share
1,800 cases, so this is what stops an ISIC 2017 model being "tested" on ISIC 2018's test split.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Set, Tuple

from core.paths import WEIGHTS_DIR


def training_ids(ckpt: dict) -> Optional[Set[str]]:
    """The ids a checkpoint trained on, or None when its data folder is not here to tell (model/data/locate.py)."""
    from model.data.locate import training_dataset

    ds = training_dataset(ckpt)
    if ds is None or (ckpt.get("data") or {}).get("split_hash") is None or "train" not in ds.splits:
        return None
    ids = [s.id for s in ds.subset("train")]
    limit = (ckpt.get("train_args") or {}).get("limit_train") or 0
    return set(ids[:limit] if limit else ids)


def _export_source(weights, metadata: Optional[dict]) -> Optional[Tuple[dict, str]]:
    """For an exported file (.onnx, .xml, .tflite): the header of its source checkpoint and a label for it.
    The metadata names the checkpoint and its sha256: that exact file, beside the export or in model/weights/,
    gives the training ids; otherwise the training data recorded in the metadata by newer exports does."""
    if metadata is None:
        import runtimes
        from core.clitools import quiet
        from core.errors import UserError

        try:
            with quiet():  # a runtime's own start-up output (delegates, cpuinfo, warnings) stays hidden
                metadata = runtimes.load(weights, allow_foreign=True).metadata
        except UserError:
            return None  # the loader reports a bad file in its own words
    src = (metadata or {}).get("source_checkpoint")
    if not isinstance(src, dict) or not isinstance(src.get("file"), str):
        return None
    from core.safeio import file_sha256
    from model.networks.checkpoint import CheckpointError, load_checkpoint

    name = Path(src["file"]).name
    label = f"its source checkpoint {name}"
    for cand in (Path(weights).parent / name, WEIGHTS_DIR / name):
        if cand.is_file() and file_sha256(cand) == src.get("sha256"):
            try:
                return load_checkpoint(cand), label
            except CheckpointError:
                continue
    if isinstance(src.get("data"), dict):  # written by exports since the source data is recorded in them
        return {"data": src["data"], "train_args": src.get("train_split") or {}}, label
    return None


def overlap_error(weights, samples: Sequence, split: str, metadata: Optional[dict] = None) -> Optional[str]:
    """A one-line error when `samples` include images the model file `weights` trained on, else None.
    A .pt is its own record; an export is traced to its source checkpoint through its metadata (pass the
    loaded Segmenter's `metadata`, or it is read from the file)."""
    from model.networks.checkpoint import CheckpointError, load_checkpoint

    if Path(weights).suffix.lower() == ".pt":
        try:
            header, whose = load_checkpoint(weights), "this model's training set"
        except CheckpointError:
            return None  # the loader reports a bad file in its own words
    else:
        found = _export_source(weights, metadata)
        if found is None:
            return None
        header, whose = found[0], f"this model's training set ({found[1]})"
    ids = training_ids(header)
    if not ids:
        return None
    seen = sorted(ids & {s.id for s in samples})
    if not seen:
        return None
    return (f"{weights}: {len(seen)} of the {len(samples)} '{split}' images (e.g. {seen[0]}) are in {whose}, "
            f"so the scores would be inflated; evaluate on data it did not train on, or pass "
            f"--allow-train-overlap to score them anyway")


def refuse_training_images(weights, samples: Sequence, split: str, metadata: Optional[dict] = None) -> None:
    """UserError (one line, naming --allow-train-overlap) when `samples` include images `weights` trained on
    (any model file: .pt, or an export traced to its source checkpoint)."""
    from core.errors import UserError

    leak = overlap_error(weights, samples, split, metadata)
    if leak:
        raise UserError(leak)
