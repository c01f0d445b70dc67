"""The flow every exporter shares: arguments, checkpoint, calibration, build, parity gates, atomic write.

A format module only supplies `build(model, meta, quantize, calib, path)`; everything else is here.
Every format is built from the same exactly rewritten graph (export/rewrites.py) and checked against the
checkpoint's own, unrewritten module.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence

import numpy as np

from export.formats import FORMATS, Format

REPO = Path(__file__).resolve().parents[1]
DEFAULT_WEIGHTS = REPO / "model" / "weights" / "aulunet_v3_ph2.pt"
EXPORTS = REPO / "exports"


def parse_args(fmt: Format, argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=f"Export an AULUNet checkpoint to {fmt.title} ({fmt.suffix}) and check parity.")
    p.add_argument("--weights", default=str(DEFAULT_WEIGHTS), help="checkpoint written by model/train.py")
    p.add_argument("--quantize", default="none", choices=fmt.quantize)
    p.add_argument("--calib", default=None, help="real images for INT8 calibration (default: the checkpoint's training split)")
    p.add_argument("--calib-count", type=int, default=0, help="use only the first N calibration images (0 = all)")
    p.add_argument("--eval-data", default=None, help="dataset for the parity check (default: the checkpoint's data, val split)")
    p.add_argument("--eval-split", default="val")
    p.add_argument("--eval-count", type=int, default=0, help="use only the first N evaluation images (0 = all)")
    p.add_argument("--out", default=None, help=f"output file (default exports/<checkpoint>[_<quantize>]{fmt.suffix})")
    return p.parse_args(argv)


def eval_set(args, ckpt: Dict):
    """Images (N,3,S,S), masks (N,S,S) or None, and a description; synthetic when no real data is here."""
    from model.data import load_arrays, open_dataset
    from model.synthetic import make_lesion
    from model.preprocess import preprocess_image, preprocess_mask

    from export.calibration import locate_training_data

    root = Path(args.eval_data) if args.eval_data else locate_training_data(ckpt)
    if root is not None and root.is_dir():
        samples = open_dataset(root).subset(args.eval_split)
        if args.eval_count:
            samples = samples[: args.eval_count]
        x, y = load_arrays(samples)
        return x, y, {"data": root.name, "split": args.eval_split, "n_images": len(samples), "synthetic": False}
    rng = np.random.default_rng(0)
    pairs = [make_lesion(rng) for _ in range(args.eval_count or 8)]
    x = np.stack([preprocess_image(img) for img, _ in pairs])
    y = np.stack([preprocess_mask(m) for _, m in pairs])
    return x, y, {"data": "synthetic", "split": "all", "n_images": len(pairs), "synthetic": True}


def torch_probabilities(model, x: np.ndarray, batch: int = 8) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return np.concatenate([torch.sigmoid(model(torch.from_numpy(x[i:i + batch])))[:, 0].numpy()
                               for i in range(0, len(x), batch)])


def run(fmt_key: str, build: Callable, argv: Optional[Sequence[str]] = None) -> Dict:
    """Export, check parity, write artifact + numerics JSON atomically. Raises SystemExit on any failure."""
    import runtimes
    from export.calibration import CalibrationError, calibration_set
    from export.metadata import build_metadata
    from export.parity import check_gates, compare, failures, versions
    from export.rewrites import inference_graph
    from model.checkpoint import CheckpointError, atomic_write_text, file_sha256, model_from_checkpoint
    from model.data import DataError

    fmt = FORMATS[fmt_key]
    args = parse_args(fmt, argv)
    weights = Path(args.weights)
    out = Path(args.out) if args.out else EXPORTS / fmt.filename(weights.stem, args.quantize)
    if out.suffix != fmt.suffix:
        raise SystemExit(f"error: {out}: a {fmt.title} export must end in {fmt.suffix}")
    tmp = out.with_name(f".{out.stem}.tmp{os.getpid()}{fmt.suffix}")
    tmp_files = [tmp] + [tmp.with_suffix(c) for c in fmt.companions]

    def discard_tmp():
        for path in tmp_files:
            path.unlink(missing_ok=True)
    try:
        model, ckpt = model_from_checkpoint(weights)
        calib, calib_info = (None, None)
        if args.quantize == "int8":
            calib, calib_info = calibration_set(args.calib, ckpt, args.calib_count)
        meta = build_metadata(ckpt, weights, fmt.key, args.quantize, calib_info, fmt.layout)
        graph = inference_graph(model)
        meta["graph_rewrites"] = graph.rewrites
        x, y, eval_info = eval_set(args, ckpt)
        out.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.time()
        build(graph, meta, args.quantize, calib, tmp)
        export_s = time.time() - t0
        seg = runtimes.load(tmp)
        got = seg.probabilities(x)
        ref = torch_probabilities(model, x)
    except (CheckpointError, CalibrationError, DataError, runtimes.ModelFileError) as e:
        discard_tmp()
        raise SystemExit(f"error: {e}")
    except BaseException:
        discard_tmp()
        raise
    numbers = compare(ref, got, y, meta["threshold"])
    gates = check_gates(numbers, args.quantize)
    numerics = {
        "artifact": out.name,
        "format": fmt.key,
        "quantization": args.quantize,
        "source_checkpoint": meta["source_checkpoint"],
        "reference": "PyTorch fp32 checkpoint (its own module, not the rewritten graph)",
        "graph_rewrites": meta["graph_rewrites"],
        "eval": eval_info,
        "calibration": calib_info,
        **numbers,
        "gates": gates,
        "passed": not failures(gates),
        "export_seconds": round(export_s, 2),
        "file_bytes": sum(p.stat().st_size for p in tmp_files),
        "versions": versions(fmt.runtime_packages + ("onnx", "onnxsim", "onnxconverter-common", "openvino", "nncf",
                                                   "litert-torch", "ai-edge-litert", "ai-edge-quantizer")),
    }
    numerics_path = out.with_name(out.name + ".numerics.json")
    failed_path = out.with_name(out.name + ".numerics.failed.json")
    if not numerics["passed"]:
        atomic_write_text(failed_path, json.dumps(numerics, indent=1) + "\n")
        discard_tmp()
        raise SystemExit(f"error: {out}: parity gate failed ({'; '.join(failures(gates))}); nothing written, details in {failed_path}")
    for c in fmt.companions:  # companions first: the model file appears last, complete
        os.replace(tmp.with_suffix(c), out.with_suffix(c))
    os.replace(tmp, out)
    failed_path.unlink(missing_ok=True)
    numerics["sha256"] = file_sha256(out)
    numerics["companion_sha256"] = {c: file_sha256(out.with_suffix(c)) for c in fmt.companions}
    atomic_write_text(numerics_path, json.dumps(numerics, indent=1) + "\n")
    summary = {k: numerics[k] for k in ("artifact", "quantization", "max_abs_diff", "mask_iou_mean", "flipped_fraction")}
    if "export_metrics" in numerics:
        summary["dsc"] = numerics["export_metrics"]["dsc"]
    print(json.dumps(summary))
    return numerics


def script_main(fmt_key: str, build: Callable) -> None:
    run(fmt_key, build, sys.argv[1:])
