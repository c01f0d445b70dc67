"""Speed targets of the toolkit, checked on every benchmark run and reported (never asserted in tests).

- best format's p50 single-image latency <= 1/8 of PyTorch eager fp32 (each at its best thread count)
- INT8 at least as fast as fp32 on each runtime that has an INT8 file, at every thread count measured
  for both (p50): a win at the best thread count alone can hide a loss at another
- a full host run of all formats in under 2 minutes (wall time of benchmarks/run.py with its defaults,
  one round; run.py passes no wall time when --rounds > 1)
"""
from __future__ import annotations

from typing import Dict, List, Optional

SPEEDUP_VS_TORCH = 8.0
HOST_RUN_SECONDS = 120.0


def _p50s(results: List[Dict], name: str) -> Dict[int, float]:
    return {r.get("threads", 1): r["p50_ms"] for r in results if r.get("name") == name and "p50_ms" in r}


def check_targets(results: List[Dict], wall_seconds: Optional[float] = None) -> List[Dict]:
    out = []
    names = sorted({r["name"] for r in results if "p50_ms" in r})
    best = {n: min(_p50s(results, n).values()) for n in names}
    torch_ms = best.pop("torch", None)
    if torch_ms and best:
        fastest = min(best, key=best.get)
        ratio = best[fastest] / torch_ms
        out.append({"target": f"best format p50 <= 1/{SPEEDUP_VS_TORCH:g} of PyTorch eager ({fastest})",
                    "value": f"{ratio:.3f} ({best[fastest]:.2f} / {torch_ms:.2f} ms)",
                    "limit": f"<= {1 / SPEEDUP_VS_TORCH:.3f}", "met": ratio <= 1 / SPEEDUP_VS_TORCH})
    for n in names:
        if n.endswith("-int8") and n[:-5] in names:
            q, f = _p50s(results, n), _p50s(results, n[:-5])
            for t in sorted(set(q) & set(f)):
                out.append({"target": f"{n} p50 <= {n[:-5]} p50 ({t} thread{'s' if t > 1 else ''})",
                            "value": f"{q[t] / f[t]:.2f}x ({q[t]:.2f} / {f[t]:.2f} ms)",
                            "limit": "<= 1.00x", "met": q[t] <= f[t]})
    if wall_seconds is not None:
        out.append({"target": "benchmark run wall time", "value": f"{wall_seconds:.0f} s",
                    "limit": f"<= {HOST_RUN_SECONDS:.0f} s", "met": wall_seconds <= HOST_RUN_SECONDS})
    return out
