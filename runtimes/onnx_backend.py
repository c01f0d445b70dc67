"""ONNX Runtime backend (CPU execution provider).

Graph optimization level, measured on the shipped exports (docs/benchmarks.md; median ratio over 10
paired, interleaved rounds on a 2-core AVX2 host): float files run 20-27% faster at ORT_ENABLE_EXTENDED
than at the default ORT_ENABLE_ALL, whose NCHWc layout pass pads the 5-channel tensors to blocks of 8
and adds Reorder ops (2.4 ms per image); INT8 (QDQ) files keep ORT_ENABLE_ALL, whose NHWC pass for
QLinearConv is worth 0-8% to them. Outputs agree to 1e-5 either way.
"""
from __future__ import annotations

import numpy as np

from core.metadata import METADATA_KEY

from .base import ModelFileError, Segmenter

LEVEL_FOR_FLOAT = "ORT_ENABLE_EXTENDED"
LEVEL_FOR_INT8 = "ORT_ENABLE_ALL"


class OnnxSegmenter(Segmenter):
    name = "onnxruntime"
    exporter = "export/to_onnx.py"

    def __init__(self, path, threads: int = 0, allow_foreign: bool = False):
        super().__init__(path, threads, allow_foreign)
        self._ort = self._import_runtime("onnxruntime", "onnxruntime")
        self.session = self._session(LEVEL_FOR_FLOAT)
        self._set_metadata(self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY))
        if self.metadata.get("quantization") == "int8":
            self.session = self._session(LEVEL_FOR_INT8)
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise ModelFileError(f"{self.path}: has {len(inputs)} inputs, AULUNet has one image input; re-export it with {self.exporter}")
        self._check_input_shape(inputs[0].shape)
        self.input_name = inputs[0].name

    def _session(self, level: str):
        ort = self._ort
        so = ort.SessionOptions()
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
        if self.threads:
            so.intra_op_num_threads = self.threads
            so.inter_op_num_threads = 1
        try:
            return ort.InferenceSession(str(self.path), so, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for bad files
            raise self._load_failure("ONNX Runtime cannot load it", e, "export/to_onnx.py") from None

    def _run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x})[0].astype(np.float32, copy=False)
