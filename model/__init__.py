"""The PyTorch side, by concern: networks/ (the network, its variants, checkpoints), data/, training/ and
evaluation/; the command lines (train.py, evaluate.py, protocol.py, ...) sit here, thin over them.

Importing the package (any `import model.x`) registers the .pt backend of `runtimes.load`
(model/networks/torch_segmenter.py; torch is imported only when a .pt is loaded): runtimes/ sits below model/ and
never imports it (docs/architecture.md).
"""
from runtimes import register as _register

from .networks.torch_segmenter import TorchSegmenter as _TorchSegmenter

_register(".pt", _TorchSegmenter)
