"""What every exported file carries about itself (embedded by each exporter in its own way; the keys and the
version: core/metadata.py)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Optional, Sequence

from core.metadata import TOOLKIT, TOOLKIT_VERSION
from core.safeio import file_sha256


def build_metadata(ckpt: Dict, weights: Path, fmt: str, quantize: str, calibration: Optional[Dict],
                   input_layout: str = "NCHW", postprocess: Sequence[str] = ()) -> Dict:
    """The metadata of one export. `postprocess`: the mask clean-up steps (core/postprocess.py) the file asks every
    runtime to apply; written as the "postprocess" key only when there are some, so a file exported without any
    carries exactly the metadata it carried before the key existed."""
    from core.postprocess import check_steps

    steps = check_steps(postprocess, "--postprocess")
    size = ckpt["preprocessing"]["input_size"]
    shape = [-1, 3, *size] if input_layout == "NCHW" else [-1, *size, 3]
    meta = {
        "toolkit": TOOLKIT,
        "toolkit_version": TOOLKIT_VERSION,
        "format": fmt,
        "quantization": quantize,
        "variant": ckpt["model"],
        "config": ckpt["config"],
        "input": {"name": "image", "layout": input_layout, "dtype": "float32", "shape": shape},
        "output": {"name": "logits", "layout": input_layout, "dtype": "float32", "kind": "logits",
                   "activation": "sigmoid"},
        "preprocessing": ckpt["preprocessing"],
        "threshold": ckpt["threshold"],
        "classes": ["lesion"],
        "source_checkpoint": {"file": Path(weights).name, "sha256": file_sha256(weights),
                              "val_metrics": ckpt.get("metrics", {}).get("val"),
                              # what it trained on, so that model/evaluation/provenance.py can refuse scoring the export on
                              # those images where the checkpoint itself is not at hand
                              "data": ckpt.get("data"),
                              "train_split": {k: v for k, v in (ckpt.get("train_args") or {}).items() if k in ("seed", "limit_train")}},
        "calibration": calibration,
    }
    if steps:
        meta["postprocess"] = list(steps)
    return meta


def dumps(meta: Dict) -> str:
    return json.dumps(meta, sort_keys=True, separators=(",", ":"))
