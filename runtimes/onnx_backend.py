"""ONNX Runtime backend (CPU execution provider)."""
from __future__ import annotations

import json

import numpy as np

from .base import METADATA_KEY, Segmenter


class OnnxSegmenter(Segmenter):
    name = "onnxruntime"

    def __init__(self, path, threads: int = 0):
        super().__init__(path, threads)
        ort = self._import_runtime("onnxruntime", "onnxruntime")
        so = ort.SessionOptions()
        if threads:
            so.intra_op_num_threads = threads
            so.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(self.path), so, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for bad files
            raise self._load_failure("ONNX Runtime cannot load it", e, "export/to_onnx.py") from None
        raw = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        if raw:
            self.metadata = json.loads(raw)
        self.input_name = self.session.get_inputs()[0].name

    def _run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x})[0].astype(np.float32, copy=False)
