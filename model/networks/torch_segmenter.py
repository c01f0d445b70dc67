"""The .pt backend of runtimes.load: a checkpoint written by model/train.py, run in PyTorch.

It lives here, not in runtimes/, because it needs the network (model/networks/aulunet.py) and torch, and runtimes/
sits below model/ (docs/architecture.md). model/__init__.py registers it with `runtimes.register`, so any
`import model...` makes `runtimes.load("x.pt")` work; torch itself is imported only when a .pt is loaded.
"""
from __future__ import annotations

import numpy as np

from core.errors import ModelFileError
from runtimes.base import Segmenter


class TorchSegmenter(Segmenter):
    name = "torch"
    exporter = "model/train.py"
    fixed_size = False  # the PyTorch module takes any size

    def __init__(self, path, threads: int = 0, allow_foreign: bool = False):
        super().__init__(path, threads, allow_foreign)
        import torch

        from model.networks.checkpoint import CheckpointError, model_from_checkpoint

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
