"""The Segmenter interface shared by every backend (numpy only)."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Tuple

import numpy as np

from model.preprocess import INPUT_SIZE, PREPROCESSING, THRESHOLD, preprocess_image, probs_to_image_size, sigmoid


class ModelFileError(ValueError):
    """A model file that cannot be used; the message names the file and the fix."""


class Segmenter:
    """Backends implement `_run(x)`: float32 NCHW (N,3,S,S) -> float32 logits (N,1,S,S)."""

    name = "base"

    def __init__(self, path: Path, threads: int = 0):
        self.path = Path(path)
        self.threads = threads
        self.metadata: Dict = {"preprocessing": PREPROCESSING, "threshold": THRESHOLD}

    @property
    def input_size(self) -> int:
        return int(self.metadata.get("preprocessing", PREPROCESSING)["input_size"][0]) or INPUT_SIZE

    @property
    def threshold(self) -> float:
        return float(self.metadata.get("threshold", THRESHOLD))

    def _run(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def run(self, x: np.ndarray) -> np.ndarray:
        """Raw tensor run: preprocessed NCHW float32 batch -> logits (N,1,S,S)."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected a (N,3,H,W) batch, got {x.shape}")
        return self._run(x)

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        return sigmoid(self.run(x))[:, 0]

    def predict(self, rgb: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """uint8 HxWx3 RGB of any size -> (probability map, boolean mask) at the image's own size."""
        x = preprocess_image(rgb, self.input_size)[None]
        prob = probs_to_image_size(self.probabilities(x)[0][..., None], rgb.shape[:2])
        return prob, prob > self.threshold
