"""Calibration images for INT8, preprocessed exactly as at inference (shared by every exporter)."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

from model.data import DataError, Sample, image_files, load_arrays, open_dataset
from core.errors import UserError
from model.data.locate import training_dataset


class CalibrationError(UserError):
    """No usable calibration images; the message names the folder and the fix."""


def calibration_set(calib: Optional[str], ckpt: Dict, limit: int = 0, size: int = 256) -> Tuple[np.ndarray, Dict]:
    """(N,3,S,S) float32 images and a description for the metadata.

    calib: a dataset root (its train split), a plain folder of images, or None for the training
    split recorded in the checkpoint.
    """
    if calib is None:
        ds = training_dataset(ckpt)
        if ds is None:
            raise CalibrationError(f"--calib not given and the checkpoint's training data ({ckpt.get('data', {}).get('root')}, same split) is not here; pass --calib DIR with real images")
        samples, source = ds.subset("train"), {"data": ds.root.name, "split": "train", "split_hash": ds.split_hash()}
    else:
        folder = Path(calib)
        if not folder.is_dir():
            raise CalibrationError(f"{folder}: calibration folder not found; pass --calib with a folder of images")
        try:
            ds = open_dataset(folder, require_masks=False)
            samples = ds.subset("train") if "train" in ds.splits else ds.samples
            source = {"data": folder.name, "split": "train" if "train" in ds.splits else "all"}
        except DataError:
            files = image_files(folder)  # the loader's own rule: ISIC's *_superpixels maps are not photos
            if not files:
                raise CalibrationError(f"{folder}: no images (.png/.jpg/.bmp) to calibrate on; put real lesion images there") from None
            samples = [Sample(p.stem, p, None) for p in files]
            source = {"data": folder.name, "split": "folder"}
    if limit:
        samples = samples[:limit]
    if not samples:
        raise CalibrationError(f"{calib}: no images to calibrate on")
    x, _ = load_arrays(samples, size, with_masks=False)
    # the label every committed export's metadata carries (the function is core.preprocess.preprocess_image
    # now); kept as it was so that a re-export stays byte-identical to the committed file
    source.update({"n_images": len(samples), "preprocessing": "model.preprocess.preprocess_image"})
    return x, source
