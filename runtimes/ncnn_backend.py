"""ncnn backend (CPU; the `ncnn` wheel, no torch). A model is three files: <name>.ncnn.param (the graph),
<name>.ncnn.bin (the weights) and <name>.ncnn.json (the toolkit's metadata; ncnn's .param has no place for it).

fp32 and int8 files run with ncnn's fp16/bf16 storage and arithmetic off, so fp32 stays fp32 (int8 layers
run in int8 either way); fp16 files run with ncnn's defaults, fp16 where the CPU has it. One image per
extractor, NCHW float32 in and out (ncnn's Mat is CHW).
"""
from __future__ import annotations

import numpy as np

from .base import ModelFileError, Segmenter

FP16_OPTIONS = ("use_fp16_storage", "use_fp16_packed", "use_fp16_arithmetic", "use_bf16_storage")


class NcnnSegmenter(Segmenter):
    name = "ncnn"
    exporter = "export/to_ncnn.py"

    def __init__(self, path, threads: int = 0, allow_foreign: bool = False):
        super().__init__(path, threads, allow_foreign)
        ncnn = self._import_runtime("ncnn", "ncnn")
        self._ncnn = ncnn
        weights, meta = self.path.with_suffix(".bin"), self.path.with_suffix(".json")
        if not weights.is_file():
            raise ModelFileError(f"{self.path}: its weights file {weights.name} is missing; keep the .ncnn.param and .ncnn.bin together")
        raw = None
        if meta.is_file():
            try:
                raw = meta.read_text()
            except (OSError, UnicodeDecodeError) as e:
                raise ModelFileError(f"{meta}: cannot read the metadata ({e}); re-export it with {self.exporter}") from None
        self._set_metadata(raw)
        net = ncnn.Net()
        if self.metadata.get("quantization") != "fp16":
            for opt in FP16_OPTIONS:
                setattr(net.opt, opt, False)
        if threads:
            net.opt.num_threads = threads
        try:
            if net.load_param(str(self.path)) != 0:
                raise RuntimeError("load_param failed: not an ncnn .param file")
            if net.load_model(str(weights)) != 0:
                raise RuntimeError(f"load_model failed: {weights.name} does not match the .param")
        except Exception as e:  # ncnn returns codes (or raises) with its reasons on stderr
            raise self._load_failure("ncnn cannot load it", e) from None
        if len(net.input_names()) != 1 or len(net.output_names()) != 1:
            raise ModelFileError(f"{self.path}: has {len(net.input_names())} inputs and {len(net.output_names())} outputs, "
                                 f"AULUNet has one of each; re-export it with {self.exporter}")
        self.net = net
        self.input_name, self.output_name = net.input_names()[0], net.output_names()[0]

    def _run(self, x: np.ndarray) -> np.ndarray:
        out = np.empty((len(x), 1, x.shape[2], x.shape[3]), np.float32)
        for i, img in enumerate(x):
            with self.net.create_extractor() as ex:
                ex.input(self.input_name, self._ncnn.Mat(np.ascontiguousarray(img)).clone())
                ret, m = ex.extract(self.output_name)
                if ret != 0:
                    raise RuntimeError(f"{self.path}: ncnn could not run it (code {ret}); re-export it with {self.exporter}")
                y = np.array(m)
            if y.shape != out.shape[2:] and y.shape != out.shape[1:]:
                raise RuntimeError(f"{self.path}: ncnn returned logits of shape {y.shape} for a {x.shape[2]}x{x.shape[3]} image; "
                                   f"re-export it with {self.exporter}")
            out[i, 0] = y.reshape(out.shape[2:])
        return out
