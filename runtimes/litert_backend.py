"""LiteRT (TFLite) backend: ai_edge_litert, or tflite_runtime on old Raspberry Pi images.

The .tflite files of this toolkit take NHWC float32 (1,S,S,3) and return NHWC logits; this backend
converts from and to the NCHW of the Segmenter interface and runs one image per invoke.
"""
from __future__ import annotations

import json
from typing import Optional

import numpy as np

from core.preprocess import PREPROCESSING, THRESHOLD

from core.metadata import METADATA_KEY

from .base import ModelFileError, Segmenter


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter  # old Pi images (numpy < 2 only)
        except ImportError:
            return None
    return Interpreter


def read_metadata(data: bytes) -> Optional[str]:
    """The toolkit's JSON text from the flatbuffer's Model.metadata, or None when absent."""
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:  # tflite_runtime on an old Pi image: no schema module to read it with
        return json.dumps({"toolkit": "aulunet-edge", "preprocessing": PREPROCESSING, "threshold": THRESHOLD,
                           "note": "metadata not readable without ai-edge-litert; defaults assumed"})
    model = schema.Model.GetRootAs(data, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() and entry.Name().decode() == METADATA_KEY:
            return model.Buffers(entry.Buffer()).DataAsNumpy().tobytes().decode("utf-8", "replace")
    return None


class LiteRtSegmenter(Segmenter):
    name = "litert"
    exporter = "export/to_tflite.py"

    def __init__(self, path, threads: int = 0, allow_foreign: bool = False):
        super().__init__(path, threads, allow_foreign)
        Interpreter = _interpreter_class()
        if Interpreter is None:
            raise ModelFileError(f"{self.path}: no LiteRT runtime is installed; pip install ai-edge-litert")
        data = self.path.read_bytes()
        try:
            self.interpreter = Interpreter(model_content=data, num_threads=threads or None)
            self.interpreter.allocate_tensors()
            meta = read_metadata(data)
        except Exception as e:  # the interpreter raises ValueError/RuntimeError with long messages
            raise self._load_failure("LiteRT cannot load it", e, "export/to_tflite.py") from None
        self._set_metadata(meta)
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        if self.input["dtype"] != np.float32 or len(self.input["shape"]) != 4 or self.input["shape"][3] != 3:
            raise ModelFileError(f"{self.path}: expected a float32 NHWC (1,S,S,3) input, got {self.input['dtype'].__name__} {list(self.input['shape'])}; re-export it with export/to_tflite.py")
        self._check_input_shape([int(d) for d in self.input["shape"]], "NHWC")

    def _run(self, x: np.ndarray) -> np.ndarray:
        out = np.empty((len(x), 1, x.shape[2], x.shape[3]), np.float32)
        for i, img in enumerate(x):
            self.interpreter.set_tensor(self.input["index"], np.ascontiguousarray(img.transpose(1, 2, 0)[None]))
            self.interpreter.invoke()
            out[i, 0] = self.interpreter.get_tensor(self.output["index"])[0, ..., 0]
        return out
