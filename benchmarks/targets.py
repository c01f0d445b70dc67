"""Speed targets of the toolkit, checked on every benchmark run and reported (never asserted in tests).

- best format's p50 single-image latency <= 1/8 of PyTorch eager fp32 (each at its best thread count)
- INT8 at least as fast as fp32 on each runtime that has an INT8 file, at every thread count measured
  for both (p50): a win at the best thread count alone can hide a loss at another
- a full host run of all formats in under 2 minutes (wall time of benchmarks/run.py with its defaults,
  one round; run.py passes no wall time when --rounds > 1)

With --rounds N >= 2 a ratio is the median of the N per-round ratios (both entries of a round were
measured seconds apart, so a busy spell of the machine mostly cancels out), not the ratio of the
pooled p50s; the value says which.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import numpy as np

SPEEDUP_VS_TORCH = 8.0
HOST_RUN_SECONDS = 120.0
# benchmarks/pareto.py: an edge model is within this test DSC of the paper's v3 (0.5 points) and at most this
# fraction of v3's p50 in every runtime's fp32 file at 1 thread.
EDGE_DSC_MARGIN = 0.005
EDGE_MAX_RATIO = 0.4


def _entries(results: List[Dict], name: str) -> Dict[int, Dict]:
    return {r.get("threads", 1): r for r in results if r.get("name") == name and "p50_ms" in r}


def _best(results: List[Dict], name: str) -> Dict:
    return min(_entries(results, name).values(), key=lambda r: r["p50_ms"])


def ratio(a: Dict, b: Dict) -> Tuple[float, str]:
    """a/b latency: paired per round when both carry the same number (>= 2) of round p50s."""
    ra, rb = a.get("round_p50s_ms", []), b.get("round_p50s_ms", [])
    if len(ra) >= 2 and len(ra) == len(rb):
        return float(np.median(np.asarray(ra) / np.asarray(rb))), f"median of {len(ra)} paired rounds"
    return a["p50_ms"] / b["p50_ms"], f"{a['p50_ms']:.2f} / {b['p50_ms']:.2f} ms"


def check_targets(results: List[Dict], wall_seconds: Optional[float] = None) -> List[Dict]:
    out = []
    names = sorted({r["name"] for r in results if "p50_ms" in r})
    best = {n: _best(results, n) for n in names}
    torch_entry = best.pop("torch", None)
    if torch_entry and best:
        fastest = min(best, key=lambda n: best[n]["p50_ms"])
        value, how = ratio(best[fastest], torch_entry)
        out.append({"target": f"best format p50 <= 1/{SPEEDUP_VS_TORCH:g} of PyTorch eager ({fastest})",
                    "value": f"{value:.3f} ({how})", "limit": f"<= {1 / SPEEDUP_VS_TORCH:.3f}",
                    "met": value <= 1 / SPEEDUP_VS_TORCH})
    for n in names:
        if n.endswith("-int8") and n[:-5] in names:
            q, f = _entries(results, n), _entries(results, n[:-5])
            for t in sorted(set(q) & set(f)):
                value, how = ratio(q[t], f[t])
                out.append({"target": f"{n} p50 <= {n[:-5]} p50 ({t} thread{'s' if t > 1 else ''})",
                            "value": f"{value:.2f}x ({how})", "limit": "<= 1.00x", "met": value <= 1.0})
    if wall_seconds is not None:
        out.append({"target": "benchmark run wall time", "value": f"{wall_seconds:.0f} s",
                    "limit": f"<= {HOST_RUN_SECONDS:.0f} s", "met": wall_seconds <= HOST_RUN_SECONDS})
    return out
