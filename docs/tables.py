"""What every generated block of the docs shares: where the results JSON lives, reading it, number formats,
the shipped models' display names and val metrics. docs/generate.py fills the blocks; the training and
protocol blocks are docs/training_blocks.py."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Optional

from core.paths import BENCHMARK_RESULTS, EXPORTS_DIR as EXPORTS, REPO, WEIGHTS_DIR as WEIGHTS  # noqa: F401  (the blocks' sources)

RESULTS = BENCHMARK_RESULTS
SHIPPED = "aulunet_v3_ph2"  # the PH2 checkpoint's own sections (its run and schedules), whatever the default
DATASETS = [("ph2", "PH2"), ("isic2018", "ISIC 2018"), ("isic2017", "ISIC 2017")]
PENDING = "pending"
# The web demo's place in the headline table (web_demo/bench.py measures it in Chromium and writes docs/web.md).
WEB_RESULTS = REPO / "web_demo" / "results" / "chromium_wasm.json"
METRICS = ("dsc", "miou", "accuracy", "specificity", "sensitivity", "mean_image_dsc")


def _json(path: Path) -> Optional[Dict]:
    return json.loads(path.read_text()) if path.is_file() else None


def _f(v, fmt: str = ".4f") -> str:
    return PENDING if v is None else format(v, fmt)


def _bench_names() -> Dict[str, str]:
    """benchmark name ('onnx-int8') -> export artifact suffix ('_int8.onnx'), '.pt' for torch."""
    from core.formats import FORMATS

    out = {}
    for fmt in FORMATS.values():
        for q in fmt.quantize:
            out[fmt.key if q == "none" else f"{fmt.key}-{q}"] = fmt.filename("", q)
    return out


def _title(name: str) -> str:
    from core.formats import FORMATS

    key, _, q = name.partition("-")
    return f"{FORMATS[key].title} {q.upper() if q == 'int8' else (q or 'fp32')}" if key != "torch" else "PyTorch (.pt)"


def _val_metrics(model: str, name: str, suffix: str) -> Optional[Dict]:
    """A shipped model's val metrics in one format: the checkpoint's (.pt) or its export's numerics JSON."""
    if name == "torch":
        return _json(WEIGHTS / f"{model}.metrics.json")
    n = _json(EXPORTS / f"{model}{suffix}.numerics.json")
    return n and n.get("export_metrics")
