"""Speed targets of the toolkit, checked on every benchmark run and reported (never asserted in tests).

- best format's p50 single-image latency <= 1/8 of PyTorch eager fp32 (each at its best thread count)
- INT8 at least as fast as fp32 on each runtime that has an INT8 file (p50, best thread count)
- a full host run of all formats in under 2 minutes (wall time of benchmarks/run.py)
"""
from __future__ import annotations

from typing import Dict, List, Optional

SPEEDUP_VS_TORCH = 8.0
HOST_RUN_SECONDS = 120.0


def _best_p50(results: List[Dict], name: str) -> Optional[float]:
    vals = [r["p50_ms"] for r in results if r.get("name") == name and "p50_ms" in r]
    return min(vals) if vals else None


def check_targets(results: List[Dict], wall_seconds: Optional[float] = None) -> List[Dict]:
    out = []
    names = {r["name"] for r in results if "p50_ms" in r}
    torch_ms = _best_p50(results, "torch")
    others = {n: _best_p50(results, n) for n in names if n != "torch"}
    if torch_ms and others:
        best = min(others, key=others.get)
        ratio = others[best] / torch_ms
        out.append({"target": f"best format p50 <= 1/{SPEEDUP_VS_TORCH:g} of PyTorch eager ({best})",
                    "value": f"{ratio:.3f} ({others[best]:.2f} / {torch_ms:.2f} ms)",
                    "limit": f"<= {1 / SPEEDUP_VS_TORCH:.3f}", "met": ratio <= 1 / SPEEDUP_VS_TORCH})
    for n in sorted(names):
        if n.endswith("-int8") and n[:-5] in names:
            q, f = _best_p50(results, n), _best_p50(results, n[:-5])
            out.append({"target": f"{n} p50 <= {n[:-5]} p50", "value": f"{q / f:.2f}x ({q:.2f} / {f:.2f} ms)",
                        "limit": "<= 1.00x", "met": q <= f})
    if wall_seconds is not None:
        out.append({"target": "benchmark run wall time", "value": f"{wall_seconds:.0f} s",
                    "limit": f"<= {HOST_RUN_SECONDS:.0f} s", "met": wall_seconds <= HOST_RUN_SECONDS})
    return out
