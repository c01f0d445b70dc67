"""PyTorch backend: a checkpoint written by model/train.py (the only backend that imports torch)."""
from __future__ import annotations

import numpy as np

from .base import ModelFileError, Segmenter


class TorchSegmenter(Segmenter):
    name = "torch"
    exporter = "model/train.py"
    fixed_size = False  # the PyTorch module takes any size

    def __init__(self, path, threads: int = 0, allow_foreign: bool = False):
        super().__init__(path, threads, allow_foreign)
        import torch

        from model.checkpoint import CheckpointError, model_from_checkpoint

        if threads:
            torch.set_num_threads(threads)
        try:
            self.model, ckpt = model_from_checkpoint(self.path)
        except CheckpointError as e:
            raise ModelFileError(str(e)) from None
        self.metadata = {k: ckpt[k] for k in ("preprocessing", "threshold", "model", "config") if k in ckpt}
        self._torch = torch

    def _run(self, x: np.ndarray) -> np.ndarray:
        with self._torch.inference_mode():
            return self.model(self._torch.from_numpy(x)).numpy()
