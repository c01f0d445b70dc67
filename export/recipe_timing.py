"""Latency of INT8 recipe files beside their format's fp32 file: one interleaved single-image run at 1 thread.

Used by export/int8_recipes.py after it builds and scores the recipes, and by its --retime, which times the files
of an earlier run again (on a quiet CPU, or another CPU of the same instruction set) without building or scoring.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from core.clitools import quiet
from core.errors import UserError
from core.formats import FORMATS
from core.machine import OtherLoad, other_load_words
from core.paths import REPO
from export import exporter

NOTE = "median of a short interleaved run: noisy on a shared machine, compare ratios only"


def time_interleaved(files: Dict[str, Path], x, rounds: int, warmup: int = 2) -> Dict[str, float]:
    """Median ms of one single-image call per file, 1 thread, the files taking turns round by round."""
    import runtimes

    segs = {k: runtimes.load(p, threads=1) for k, p in files.items()}
    one = x[:1]
    for s in segs.values():
        for _ in range(warmup):
            s.run(one)
    times: Dict[str, List[float]] = {k: [] for k in segs}
    for r in range(rounds):
        order = list(segs) if r % 2 == 0 else list(segs)[::-1]
        for k in order:
            t0 = time.perf_counter()
            segs[k].run(one)
            times[k].append(1000 * (time.perf_counter() - t0))
    return {k: round(statistics.median(v), 2) for k, v in times.items()}


def timing_block(rounds: int, fp32_ms: Dict[str, float], other_load_cores: Optional[float] = None) -> Dict:
    return {"rounds": rounds, "threads": 1, "batch": 1, "fp32_ms": fp32_ms, "note": NOTE,
            "other_load_cores": other_load_cores, "cores": os.cpu_count()}


def load_words(timing: Dict) -> str:
    """How quiet the CPU was while a timing block was measured, in words for the table's notes."""
    words = other_load_words(timing.get("other_load_cores"), timing.get("cores"), during=" while timing")
    return words or "the CPU's other load was not recorded"


def time_recipes(rows: List[Dict], built: Dict[str, Dict[str, Path]], files_dir: Path, graph, ckpt, weights: Path,
                 x, rounds: int, verbose: bool = False, show: bool = True) -> Tuple[Dict[str, float], Optional[float]]:
    """Time each format's built recipe files against that format's fp32 file, built into files_dir from this
    checkpoint each time (a file left there by another run could be of another checkpoint); writes latency_ms and
    latency_vs_fp32 into the rows; returns format -> fp32 ms, and how many cores other processes kept busy
    meanwhile (core.machine.OtherLoad; None where not measurable)."""
    from tqdm import tqdm

    from export.metadata import build_metadata

    fp32_ms: Dict[str, float] = {}
    if not rounds:
        return fp32_ms, None
    with OtherLoad() as load:
        for key, files in tqdm(list(built.items()), desc="timing", disable=not show, file=sys.stderr):
            fmt = FORMATS[key]
            ref_path = files_dir / f"fp32{fmt.suffix}"
            meta = build_metadata(ckpt, weights, fmt.key, "none", None, fmt.layout)
            meta["graph_rewrites"] = graph.rewrites
            with quiet(verbose):
                exporter(fmt).build(graph, meta, "none", None, ref_path)
                ms = time_interleaved({"fp32": ref_path, **files}, x, rounds)
            fp32_ms[key] = ms.pop("fp32")
            for row in rows:
                if row["recipe"] in ms:
                    row["latency_ms"] = ms[row["recipe"]]
                    row["latency_vs_fp32"] = round(ms[row["recipe"]] / fp32_ms[key], 2)
    return fp32_ms, load.cores


def retime(res: Dict, results_path: Path, weights: Path, formats: List[str], rounds: int, cpu: Dict,
           verbose: bool = False, show: bool = True) -> Dict:
    """An earlier run's results with its chosen formats' files timed again on this CPU. The other formats keep
    their latency only when the earlier run was timed on this same CPU; a recipe that failed to build has no file
    and stays untimed."""
    from export.cli import eval_set
    from export.rewrites import inference_graph
    from core.safeio import file_sha256
    from model.networks.checkpoint import model_from_checkpoint

    if not rounds:
        raise UserError("--retime needs --timing-rounds of at least 1")
    if res["checkpoint"]["sha256"] != file_sha256(weights):
        raise UserError(f"--retime: {results_path} was measured on another checkpoint than {weights}; "
                        "pass that run's --weights, or run without --retime")
    built: Dict[str, Dict[str, Path]] = {}
    for row in res["results"]:
        if row["format"] not in formats or "artifact" not in row:
            continue
        path = Path(row["artifact"]) if Path(row["artifact"]).is_absolute() else REPO / row["artifact"]
        if not path.is_file():
            raise UserError(f"--retime: {path} (recipe {row['recipe']}) is gone; run without --retime to build it again")
        built.setdefault(row["format"], {})[row["recipe"]] = path
    if not built:
        raise UserError(f"--retime: {results_path} has no built file of --formats {','.join(formats)}")
    model, ckpt = model_from_checkpoint(weights)
    x, _, _ = eval_set(argparse.Namespace(eval_data=None, eval_split=res["eval"]["split"], eval_count=1), ckpt)
    files_dir = next(iter(next(iter(built.values())).values())).parent
    # the formats timed now lose their old latencies; the others keep theirs only if measured on this same CPU
    kept = {k: v for k, v in res["timing"].get("fp32_ms", {}).items() if k not in built} if res.get("cpu") == cpu else {}
    for r in res["results"]:
        if r["format"] not in kept:
            r.pop("latency_ms", None), r.pop("latency_vs_fp32", None)
    rows = [r for r in res["results"] if r["format"] in built]
    fp32_ms, load = time_recipes(rows, built, files_dir, inference_graph(model), ckpt, weights, x, rounds, verbose, show)
    return {**res, "timing": {**timing_block(rounds, {**kept, **fp32_ms}, load), "retimed": True}, "cpu": cpu}
