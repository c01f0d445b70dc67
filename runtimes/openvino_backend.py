"""OpenVINO backend (CPU plugin). fp32 models run in fp32: the CPU plugin would otherwise pick bf16 on
CPUs with AMX (mask IoU 0.989 against PyTorch, measured), so the precision hint is set explicitly.
The IR has a dynamic batch; it is compiled once per batch size with that size fixed, because the CPU
plugin runs static shapes about 2x faster here (single image, 2 threads: 10-12 ms against 18-23 ms)."""
from __future__ import annotations

import numpy as np

import hashlib
import json
import warnings

from core.metadata import BIN_SHA_KEY, METADATA_KEY

from .base import ModelFileError, Segmenter, reason



def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class OpenVinoSegmenter(Segmenter):
    name = "openvino"
    exporter = "export/to_openvino.py"

    def __init__(self, path, threads: int = 0, allow_foreign: bool = False):
        super().__init__(path, threads, allow_foreign)
        ov = self._import_runtime("openvino", "openvino")
        if not self.path.with_suffix(".bin").is_file():
            raise ModelFileError(f"{self.path}: its weights file {self.path.with_suffix('.bin').name} is missing; keep the .xml and .bin together")
        core = ov.Core()
        try:
            model = core.read_model(str(self.path))
        except Exception as e:  # openvino raises RuntimeError subclasses with long messages
            raise self._load_failure("OpenVINO cannot read it", e, "export/to_openvino.py") from None
        self._set_metadata(model.get_rt_info([METADATA_KEY]).astype(str) if model.has_rt_info([METADATA_KEY]) else None)
        self._check_weights_file()
        if len(model.inputs) != 1:
            raise ModelFileError(f"{self.path}: has {len(model.inputs)} inputs, AULUNet has one image input; re-export it with {self.exporter}")
        shape = model.input(0).get_partial_shape()
        self._check_input_shape([d.get_length() if d.is_static else None for d in shape] if shape.rank.is_static else [])
        self.config = {"INFERENCE_PRECISION_HINT": "f32"}
        if threads:
            self.config["INFERENCE_NUM_THREADS"] = threads
        self.core, self.model = core, model
        self.compiled: dict = {}  # batch size -> (compiled model, infer request)
        try:
            self._compile(1)
        except RuntimeError as e:  # the CPU plugin's message ends with its reason; the first lines are paths
            raise ModelFileError(f"{self.path}: OpenVINO's CPU plugin cannot compile it on this machine "
                                 f"({reason(e)}); use another format here") from None

    def _check_weights_file(self) -> None:
        """Refuse an .xml beside another model's .bin (same architecture, so OpenVINO reads it and returns the
        other model's output). The hash is in the metadata of files exported since it was recorded; for older
        files, the numerics JSON written beside the .xml by the exporter (when it is there and belongs to this
        .xml) gives it; without either, the pair cannot be checked and the file loads with a warning."""
        if self.metadata.get("foreign"):
            return
        weights = self.path.with_suffix(".bin")
        want, where = self.metadata.get(BIN_SHA_KEY), "its metadata"
        if want is None:
            numerics = self.path.with_name(self.path.name + ".numerics.json")
            try:
                record = json.loads(numerics.read_text())
                if record.get("sha256") == _sha256(self.path):
                    want, where = (record.get("companion_sha256") or {}).get(".bin"), numerics.name
            except (OSError, ValueError, AttributeError):
                pass
        if want is None:
            warnings.warn(f"{self.path}: exported before the .bin's hash was recorded, so {weights.name} cannot be "
                          f"checked to be its own weights; re-export it with {self.exporter} to record it", stacklevel=3)
            return
        if _sha256(weights) != want:
            raise ModelFileError(f"{weights}: is not the weights file exported with {self.path.name} (its sha256 differs "
                                 f"from the one in {where}); put the .bin exported with it beside the .xml, or re-export "
                                 f"it with {self.exporter}")

    def _compile(self, batch: int):
        if batch not in self.compiled:
            model = self.model.clone()
            shape = model.input(0).get_partial_shape()
            if shape.rank.is_static and shape[0].is_dynamic:
                model.reshape({0: [batch, *[d.get_length() for d in list(shape)[1:]]]})
            compiled = self.core.compile_model(model, "CPU", self.config)
            self.compiled[batch] = (compiled, compiled.create_infer_request())
        return self.compiled[batch]

    def _run(self, x: np.ndarray) -> np.ndarray:
        compiled, request = self._compile(len(x))
        out = request.infer({0: x})
        return np.asarray(out[compiled.output(0)], dtype=np.float32)
