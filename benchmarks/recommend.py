"""What to deploy on the device a benchmark ran on, from its results (torch-free).

The recommendation is the fastest exported file, at any thread count measured, whose accuracy on the
benchmark's eval set passes the INT8 gate: pooled DSC within GATE_POINTS of the PyTorch fp32 model on the same
images. Beside it, one sentence per runtime that has an INT8 file: whether INT8 is faster than its fp32 file
here (paired per round, as benchmarks/targets.py compares), so nobody has to read that off a table.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

GATE_POINTS = 0.5  # DSC points below PyTorch fp32 that a deployable file may lose (the export gates' INT8 limit)


def _best(entries: Sequence[Dict]) -> Optional[Dict]:
    return min(entries, key=lambda r: r["p50_ms"], default=None)


def reference_dsc(results: Sequence[Dict], eval_info: Optional[Dict]) -> Optional[float]:
    """PyTorch fp32's pooled DSC on the eval set: run.py computes it when it writes the set (no torch needed
    on the device); else the 'torch' entry's, when one was measured."""
    if eval_info and eval_info.get("reference_dsc") is not None:
        return eval_info["reference_dsc"]
    torch = [r for r in results if r.get("name") == "torch" and "accuracy" in r]
    return torch[0]["accuracy"]["dsc"] if torch else None


def int8_verdicts(results: Sequence[Dict]) -> List[Dict]:
    """Per runtime with both files: INT8's best p50 over fp32's at the same thread count, and the advice."""
    from benchmarks.targets import ratio

    ok = [r for r in results if "p50_ms" in r]
    out = []
    for q in sorted({r["name"] for r in ok if r["name"].endswith("-int8")}):
        fp32 = q[:-len("-int8")]
        pairs = [(a, b) for a in ok if a["name"] == q for b in ok if b["name"] == fp32 and b["threads"] == a["threads"]]
        if not pairs:
            continue
        value = {a["threads"]: ratio(a, b)[0] for a, b in pairs}
        t = min(value, key=value.get)
        faster = value[t] < 1.0
        advice = (f"{fp32}: INT8 is {value[t]:.2f}x fp32 at {t} thread{'s' if t > 1 else ''}: use INT8" if faster else
                  f"{fp32}: INT8 is not faster here ({value[t]:.2f}x fp32 at best, {t} thread{'s' if t > 1 else ''}): use fp32")
        out.append({"runtime": fp32, "int8_over_fp32": value, "int8_faster": faster, "advice": advice})
    return out


def recommend(results: Sequence[Dict], eval_info: Optional[Dict] = None, gate_points: float = GATE_POINTS) -> Dict:
    """{file, name, threads, p50_ms, dsc, reference_dsc, gate_points, int8, sentence}; file None when nothing
    passes (or no accuracy was measured), with the reason in the sentence."""
    ref = reference_dsc(results, eval_info)
    deployable = [r for r in results if "p50_ms" in r and "accuracy" in r and r.get("name") != "torch"]
    verdicts = int8_verdicts(results)
    base = {"reference_dsc": ref, "gate_points": gate_points, "int8": verdicts}
    if ref is None or not deployable:
        return {**base, "file": None, "sentence": "no recommendation: no exported file with a measured accuracy"
                + ("" if deployable else " ran") + (" and no PyTorch reference DSC" if ref is None else "")}
    passing = [r for r in deployable if r["accuracy"]["dsc"] >= ref - gate_points / 100]
    best = _best(passing)
    if best is None:
        return {**base, "file": None,
                "sentence": f"no recommendation: no file is within {gate_points} DSC points of PyTorch ({ref:.4f})"}
    t = best["threads"]
    sentence = (f"Deploy {best['file']} ({best['name']}): p50 {best['p50_ms']:.2f} ms at {t} thread{'s' if t > 1 else ''}, "
                f"DSC {best['accuracy']['dsc']:.4f} (PyTorch {ref:.4f}; gate: within {gate_points} points), "
                f"the fastest of {len(passing)} passing entries")
    return {**base, "file": best["file"], "name": best["name"], "threads": t, "p50_ms": best["p50_ms"],
            "dsc": best["accuracy"]["dsc"], "sentence": sentence}


def markdown(rec: Dict) -> str:
    lines = [f"**{rec['sentence']}.**"]
    lines += [f"- {v['advice']}" for v in rec["int8"]]
    return "\n".join(lines)
