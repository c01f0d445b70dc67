"""ExecuTorch backend (.pte, XNNPACK delegate, CPU).

Two runtimes run the same file: `executorch.runtime` from the `executorch` wheel (it imports torch; the
exporter's own runtime, used when installed), else `executorch_numpy_runtime` (the
`executorch-numpy-runtime` wheel: numpy only, no torch; Python >= 3.12, Linux x86-64/aarch64, built on
ExecuTorch 1.3.1, and it runs the files export/to_executorch.py writes with ExecuTorch 1.5.1, fp32 and int8).
The program has a static batch of 1, so one image runs per call; its metadata is the constant method
"aulunet" (UTF-8 JSON as a uint8 tensor).

Threads: executorch's XNNPACK threadpool is one per process, so threads=N resets it for every .pte in the
process; executorch-numpy-runtime has no thread setting (its pool takes every core), said with a warning.
"""
from __future__ import annotations

import warnings

import numpy as np

from core.metadata import METADATA_KEY

from .base import ModelFileError, Segmenter


def _runtime():
    """('executorch', Runtime) or ('executorch-numpy-runtime', Runtime), or (None, None) when neither is installed."""
    try:
        from executorch.runtime import Runtime

        return "executorch", Runtime
    except ImportError:
        pass
    try:
        from executorch_numpy_runtime import Runtime

        return "executorch-numpy-runtime", Runtime
    except ImportError:
        return None, None


class ExecuTorchSegmenter(Segmenter):
    name = "executorch"
    exporter = "export/to_executorch.py"

    def __init__(self, path, threads: int = 0, allow_foreign: bool = False):
        super().__init__(path, threads, allow_foreign)
        self.runtime, Runtime = _runtime()
        if Runtime is None:
            raise ModelFileError(f"{self.path}: no ExecuTorch runtime is installed; pip install executorch-numpy-runtime "
                                 f"(numpy only, Python >= 3.12) or executorch")
        self._torch = self.runtime == "executorch"
        if threads:
            self._set_threads(threads)
        try:
            program = Runtime.get().load_program(self.path if self._torch else str(self.path))
            names = set(program.method_names)
            meta = self._call(program.load_method(METADATA_KEY), []) if METADATA_KEY in names else None
            if meta is not None:
                meta = np.asarray(meta[0], dtype=np.uint8).tobytes().decode("utf-8", "replace")
            if "forward" not in names:
                raise ValueError(f"no 'forward' method (methods: {', '.join(sorted(names))})")
            self.method = program.load_method("forward")
            shapes = self._input_shapes()
        except ModelFileError:
            raise
        except Exception as e:  # both runtimes raise their own RuntimeError subclasses with long messages
            raise self._load_failure(f"{self.runtime} cannot load it", e) from None
        self.program = program
        self._set_metadata(meta)
        if len(shapes) != 1:
            raise ModelFileError(f"{self.path}: has {len(shapes)} inputs, AULUNet has one image input; re-export it with {self.exporter}")
        self._check_input_shape(shapes[0])
        self.batch = shapes[0][0]

    def _set_threads(self, threads: int) -> None:
        if self._torch:
            from executorch.extension.pybindings import portable_lib

            portable_lib._unsafe_reset_threadpool(threads)
        else:
            warnings.warn(f"{self.path}: executorch-numpy-runtime cannot set the thread count; threads={threads} is "
                          f"ignored (XNNPACK uses every core)", stacklevel=3)

    def _call(self, method, inputs):
        if self._torch:
            import torch

            return [o.numpy() if isinstance(o, torch.Tensor) else o for o in method.execute([torch.from_numpy(a) for a in inputs])]
        return method(inputs)

    def _input_shapes(self):
        meta = self.method.metadata
        if self._torch:
            return [list(meta.input_tensor_meta(i).sizes()) for i in range(meta.num_inputs())]
        return [list(t["shape"]) for t in meta["inputs"]]

    def _run(self, x: np.ndarray) -> np.ndarray:
        b = self.batch if isinstance(self.batch, int) and self.batch > 0 else 1
        out = []
        for i in range(0, len(x), b):
            chunk = x[i:i + b]
            if len(chunk) < b:  # a static batch larger than what is left: pad, keep the real rows
                chunk = np.concatenate([chunk, np.zeros((b - len(chunk), *chunk.shape[1:]), np.float32)])
            out.append(np.asarray(self._call(self.method, [np.ascontiguousarray(chunk)])[0], dtype=np.float32)[: len(x) - i])
        return np.concatenate(out)
