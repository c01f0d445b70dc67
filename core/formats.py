"""The table of model-file formats. The exporters' CLIs, the parity gates, runtimes.load, the benchmarks and the
docs read it; adding a format starts with a row here (docs/architecture.md)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple


@dataclass(frozen=True)
class Format:
    key: str                    # CLI / benchmark name
    title: str                  # for tables
    suffix: str                 # how the file name ends (".onnx", ".ncnn.param"); runtimes.load dispatches on it
    script: str                 # exporter entry point
    backend: str                # "module:Class" of its Segmenter: runtimes/ for every torch-free format; the
                                # .pt one lives in model/ and registers itself (runtimes.register)
    quantize: Tuple[str, ...]   # supported --quantize values
    runtime_packages: Tuple[str, ...]
    companions: Tuple[str, ...] = ()  # suffixes of files that travel with the model file (.bin beside .xml)
    layout: str = "NCHW"              # input/output layout of the exported file

    def matches(self, path) -> bool:
        """Whether a file name ends in this format's suffix (case-insensitive)."""
        return Path(path).name.lower().endswith(self.suffix)

    def filename(self, stem: str, quantize: str) -> str:
        return f"{stem}{'' if quantize == 'none' else '_' + quantize}{self.suffix}"


# every package an export's numbers can depend on: recorded in each numerics JSON and recipe table
EXPORT_PACKAGES = ("onnx", "onnxsim", "onnxconverter-common", "openvino", "nncf", "litert-torch", "ai-edge-litert",
                   "ai-edge-quantizer", "executorch", "torchao", "pnnx", "ncnn")


FORMATS: Dict[str, Format] = {
    "torch": Format("torch", "PyTorch", ".pt", "model/train.py", "model.networks.torch_segmenter:TorchSegmenter", ("none",), ("torch",)),
    "onnx": Format("onnx", "ONNX Runtime", ".onnx", "export/to_onnx.py", "runtimes.onnx_backend:OnnxSegmenter",
                   ("none", "fp16", "int8"), ("onnxruntime",)),
    "openvino": Format("openvino", "OpenVINO", ".xml", "export/to_openvino.py",
                       "runtimes.openvino_backend:OpenVinoSegmenter", ("none", "fp16", "int8"), ("openvino",),
                       companions=(".bin",)),
    "tflite": Format("tflite", "LiteRT (TFLite)", ".tflite", "export/to_tflite.py",
                     "runtimes.litert_backend:LiteRtSegmenter", ("none", "int8"), ("ai-edge-litert",), layout="NHWC"),
    "executorch": Format("executorch", "ExecuTorch (XNNPACK)", ".pte", "export/to_executorch.py",
                         "runtimes.executorch_backend:ExecuTorchSegmenter", ("none", "int8"), ("executorch",)),
    # <name>.ncnn.param + <name>.ncnn.bin (weights) + <name>.ncnn.json (the toolkit's metadata)
    "ncnn": Format("ncnn", "ncnn", ".ncnn.param", "export/to_ncnn.py", "runtimes.ncnn_backend:NcnnSegmenter",
                   ("none", "fp16", "int8"), ("ncnn",), companions=(".bin", ".json")),
}


def by_suffix(suffix: str) -> Format:
    for f in FORMATS.values():
        if f.suffix == suffix.lower():
            return f
    raise KeyError(suffix)


def for_path(path) -> Format:
    """The format whose suffix the file name ends in (the longest such suffix: ".ncnn.param" before ".param")."""
    found = sorted((f for f in FORMATS.values() if f.matches(path)), key=lambda f: -len(f.suffix))
    if not found:
        raise KeyError(Path(path).name)
    return found[0]


def model_files(path: Path) -> List[Path]:
    """A model file and the companions its format says travel with it (OpenVINO's .bin), those present."""
    path = Path(path)
    try:
        companions = for_path(path).companions
    except KeyError:
        companions = ()
    return [path] + [p for p in (path.with_suffix(c) for c in companions) if p.is_file()]


def markdown_table() -> str:
    rows = ["| format | file | exporter | quantize | layout | runtime |", "|---|---|---|---|---|---|"]
    for f in FORMATS.values():
        rows.append(f"| {f.title} | `*{f.suffix}` | `{f.script}` | {', '.join(f.quantize)} | {f.layout} | {', '.join(f.runtime_packages)} |")
    return "\n".join(rows)
