"""The Segmenter interface shared by every backend (numpy only)."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Tuple

import numpy as np

from model.preprocess import INPUT_SIZE, PREPROCESSING, THRESHOLD, preprocess_image, probs_to_image_size, sigmoid


METADATA_KEY = "aulunet"  # ONNX metadata_props / OpenVINO rt_info key holding the export's JSON metadata


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

    def _import_runtime(self, module: str, package: str):
        """Import a runtime module, or say which package the device lacks."""
        import importlib

        try:
            return importlib.import_module(module)
        except ImportError:
            raise ModelFileError(f"{self.path}: {package} is not installed; pip install {package}") from None

    def _load_failure(self, what: str, exc: Exception, exporter: str) -> ModelFileError:
        """The one-line error for a file the runtime rejects (runtimes raise long, varied messages)."""
        msg = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        return ModelFileError(f"{self.path}: {what} ({msg}); re-export it with {exporter}")

    def _run(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def run(self, x: np.ndarray) -> np.ndarray:
        """Raw tensor run: preprocessed NCHW float32 batch -> logits (N,1,S,S)."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected a (N,3,H,W) batch, got {x.shape}")
        out = self._run(x)
        if out.shape != (len(x), 1, *x.shape[2:]):
            raise RuntimeError(f"{self.path}: {self.name} returned logits of shape {tuple(out.shape)} for a batch "
                               f"{tuple(x.shape)}; this runtime build cannot run this file correctly, use another format here")
        return out

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        return sigmoid(self.run(x))[:, 0]

    def predict(self, rgb: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """uint8 HxWx3 RGB of any size -> (probability map, boolean mask) at the image's own size."""
        x = preprocess_image(rgb, self.input_size)[None]
        prob = probs_to_image_size(self.probabilities(x)[0][..., None], rgb.shape[:2])
        return prob, prob > self.threshold
