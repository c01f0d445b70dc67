"""Device-side benchmark runner: numpy and the runtimes only, never torch (unless asked to time a .pt).

`python benchmarks/runner.py --models M [M ...] --eval eval.npz [--threads 1,2] [--json out.json]`

Each (model, threads) pair runs in its own child process, so peak RSS is the model's own and a crash or a
missing runtime costs that pair only: its entry carries an `error` and the others are kept. The eval set is
an .npz that benchmarks/run.py writes: preprocessed images `x` (N,3,S,S float32), ground-truth masks `y`
(N,S,S bool), the PyTorch fp32 probabilities `ref` (N,S,S float16) for mask agreement, and optionally one
uint8 RGB image `raw` at its own size for the end-to-end `predict()` latency (preprocessing included).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from core.machine import (OtherLoad, device_facts, model_bytes, other_load_words, peak_rss_mb, runtime_versions,
                          thermal)
from core.clitools import ArgumentParser, check_ranges, user_errors  # stdlib only, like core/errors.py

SCHEMA = "aulunet-benchmark/1"
SPREAD_WARN = 0.25  # warn when (p90 - p50) / p50 exceeds this: the run was disturbed (thermal, governor, load)
ROUND_SPREAD_WARN = 0.25  # warn when the p50s of the rounds differ by more than this (max/min - 1)


def latency_stats(ms: np.ndarray) -> Dict:
    p50, p90, p99 = (float(np.percentile(ms, q)) for q in (50, 90, 99))
    return {"p50_ms": p50, "p90_ms": p90, "p99_ms": p99, "mean_ms": float(ms.mean()), "std_ms": float(ms.std()),
            "min_ms": float(ms.min()), "n_runs": int(len(ms)), "throughput_ips": 1000.0 / float(ms.mean()),
            "spread": (p90 - p50) / p50 if p50 > 0 else 0.0}


EVAL_ARRAYS = "x (N,3,S,S float32), y (N,S,S bool) and ref (N,S,S float16)"


def load_eval(path) -> Dict[str, np.ndarray]:
    """The eval set's arrays (x, y, ref, and raw when present), checked; DataError naming the file otherwise.
    np.load keeps allow_pickle=False: an eval set holds plain arrays, never Python objects."""
    import zipfile

    from core.errors import DataError

    path = Path(path)
    fix = f"give the .npz of arrays {EVAL_ARRAYS} that benchmarks/run.py writes"
    if not path.is_file():
        raise DataError(f"--eval {path}: eval set not found; {fix}")

    def bad(reason: str) -> DataError:
        return DataError(f"--eval {path}: not an eval set ({reason}); {fix}")

    try:
        data = np.load(path, allow_pickle=False)
    except ValueError:  # numpy: the file is a pickle (or unreadable as .npy/.npz)
        raise bad("a pickle or an unknown format, not an .npz of arrays") from None
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise bad(f"unreadable: {type(e).__name__}") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise bad("a single .npy array, not an .npz archive")
    try:
        missing = [k for k in ("x", "y", "ref") if k not in data.files]
        if missing:
            raise bad(f"no array {', '.join(missing)}")
        arrays = {}
        for k in ("x", "y", "ref", "raw"):
            if k in data.files:
                try:
                    arrays[k] = data[k]
                except ValueError:  # an object array: refused, as allow_pickle=False
                    raise bad(f"'{k}' holds Python objects, not numbers") from None
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise bad(f"unreadable: {type(e).__name__}") from None
    finally:
        data.close()
    x, y, ref = arrays["x"], arrays["y"], arrays["ref"]
    if x.ndim != 4 or x.shape[1] != 3 or len(x) < 1 or x.dtype.kind != "f":
        raise bad(f"x is {x.dtype} {tuple(x.shape)}, expected float (N,3,S,S) with N >= 1")
    for k, a in (("y", y), ("ref", ref)):
        if a.shape != (x.shape[0], *x.shape[2:]):
            raise bad(f"{k} is {tuple(a.shape)}, expected {(x.shape[0], *x.shape[2:])} to match x")
    raw = arrays.get("raw")
    if raw is not None and (raw.dtype != np.uint8 or raw.ndim != 3 or raw.shape[2] != 3):
        raise bad(f"raw is {raw.dtype} {tuple(raw.shape)}, expected one uint8 RGB image (H,W,3)")
    return arrays


def measure_one(model: Path, threads: int, eval_path: Path, warmup: int, runs: int, min_seconds: float,
                eval_count: int, save_probs: Optional[Path] = None, latency_only: bool = False) -> Dict:
    """Everything about one model at one thread count, measured in this process (latency_only: the
    single-image latencies alone, for the later rounds of run_all)."""
    import runtimes
    from core.metrics import POOLED_KEYS, PooledMetrics, mask_iou

    data = load_eval(eval_path)
    x, y, ref = data["x"], data["y"], data["ref"].astype(np.float32)
    if eval_count:
        x, y, ref = x[:eval_count], y[:eval_count], ref[:eval_count]
    if str(model).lower().endswith(".pt"):  # the .pt backend is registered by the model package (needs torch)
        import model as _pt_backend  # noqa: F401  (importing the package registers the .pt backend)
    rss_before = peak_rss_mb()
    t0 = time.perf_counter()
    seg = runtimes.load(model, threads=threads)
    load_ms = 1000 * (time.perf_counter() - t0)
    one = x[:1]
    t0 = time.perf_counter()
    seg.run(one)
    first_ms = 1000 * (time.perf_counter() - t0)
    for _ in range(warmup):
        seg.run(one)
    times: List[float] = []
    start = time.perf_counter()
    while len(times) < runs or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        seg.run(one)
        times.append(1000 * (time.perf_counter() - t0))
    stats = latency_stats(np.asarray(times))
    if latency_only:
        return {"load_ms": load_ms, **stats, "latencies_ms": [round(t, 4) for t in times]}
    e2e = []
    if "raw" in data:  # uint8 image at its own size -> resize, scale, run, sigmoid, resize back, threshold
        raw = data["raw"]
        for _ in range(max(2, runs // 5)):
            t0 = time.perf_counter()
            seg.predict(raw)
            e2e.append(1000 * (time.perf_counter() - t0))
    pm, ious, all_probs = PooledMetrics(), [], []
    for i in range(len(x)):
        p = seg.probabilities(x[i:i + 1])[0]
        all_probs.append(p)
        mask = p > seg.threshold
        pm.update(mask[None], y[i:i + 1])
        ious.append(mask_iou(mask, ref[i] > seg.threshold))
    acc = pm.result()
    if save_probs:
        import io

        from core.safeio import atomic_write_bytes

        buf = io.BytesIO()
        np.save(buf, np.stack(all_probs).astype(np.float32))
        atomic_write_bytes(save_probs, buf.getvalue())
    return {"load_ms": load_ms, "first_inference_ms": first_ms, **stats,
            "e2e_p50_ms": float(np.median(e2e)) if e2e else None,
            "e2e_image_size": list(data["raw"].shape[:2]) if e2e else None,
            "peak_rss_mb": peak_rss_mb(), "rss_before_load_mb": rss_before,
            "latencies_ms": [round(t, 4) for t in times],
            "accuracy": {k: acc[k] for k in POOLED_KEYS + ("n_images",)},
            "mask_iou_vs_torch_fp32": float(np.mean(ious)), "backend": seg.name,
            "quantization": seg.metadata.get("quantization", "none")}


def child_python() -> List[str]:
    """How to start a child runner: this interpreter, or AULUNET_RUNNER_CHILD (a command line), which the
    emulated-ARM path sets to `qemu-aarch64-static -L SYSROOT SYSROOT/usr/bin/python3.11`."""
    import shlex

    return shlex.split(os.environ["AULUNET_RUNNER_CHILD"]) if os.environ.get("AULUNET_RUNNER_CHILD") else [sys.executable]


def _child(model: Path, t: int, eval_path: Path, warmup: int, runs: int, min_seconds: float, eval_count: int,
           extra: Sequence[str] = ()) -> Dict:
    """Run measure_one in a fresh process: its result, or {"error": its last stderr line}."""
    cmd = [*child_python(), str(Path(__file__).resolve()), "--one", str(model), "--threads", str(t),
           "--eval", str(eval_path), "--warmup", str(warmup), "--runs", str(runs),
           "--min-seconds", str(min_seconds), "--eval-count", str(eval_count), *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode == 0 and lines:
        return json.loads(lines[-1])
    return {"error": (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1][:300]}


def merge_rounds(entry: Dict, later: Sequence[Dict]) -> None:
    """Pool the latencies of every round into the entry's statistics; keep each round's p50.

    Rounds run the whole sweep again in the same order, so a slow spell of the device lands on every
    format instead of on whichever ran during it; the pooled p50 and the rounds' spread say how much.
    """
    good = [r for r in later if "latencies_ms" in r]
    rounds = [entry] + good
    entry["round_p50s_ms"] = [round(r["p50_ms"], 4) for r in rounds]
    pooled = [t for r in rounds for t in r["latencies_ms"]]
    entry.update(latency_stats(np.asarray(pooled)))
    entry["latencies_ms"] = pooled
    p50s = entry["round_p50s_ms"]
    entry["round_spread"] = max(p50s) / min(p50s) - 1 if min(p50s) > 0 else 0.0
    errors = [r["error"] for r in later if "error" in r]
    if errors:
        entry["round_errors"] = errors


def run_all(models: Sequence[Path], threads: Sequence[int], eval_path: Path, warmup: int, runs: int,
            min_seconds: float, eval_count: int = 0, progress: bool = True, names: Optional[Dict] = None,
            probs_dir: Optional[Path] = None, rounds: int = 1, evals: Optional[Dict[str, Path]] = None) -> Dict:
    """One child process per (model, threads) and round; errors are recorded per entry, never fatal.

    evals: model file (str) -> its own eval set, for a run over models of different input sizes
    (benchmarks/pareto.py); eval_path for the others.

    Round 1 measures everything; rounds 2..N re-measure the single-image latency only, interleaved
    (all entries, then all again), and merge_rounds pools them.
    """
    from tqdm import tqdm

    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    if probs_dir:
        Path(probs_dir).mkdir(parents=True, exist_ok=True)
    results, before = [], thermal()
    jobs = [(m, t) for m in models for t in threads]
    later: List[List[Dict]] = [[] for _ in jobs]
    bar = tqdm(total=len(jobs) * rounds, desc="benchmark", disable=not progress)
    with OtherLoad() as load:  # the quiet around the measurement, recorded beside it
        for model, t in jobs:
            entry = {"name": (names or {}).get(str(model), model.name), "file": model.name, "threads": t,
                     "file_bytes": model_bytes(model)}
            extra = ["--save-probs", str(Path(probs_dir) / f"{model.name}.t{t}.npy")] if probs_dir else []
            entry.update(_child(model, t, (evals or {}).get(str(model), eval_path), warmup, runs, min_seconds,
                                eval_count, extra))
            results.append(entry)
            bar.update()
        for _ in range(rounds - 1):
            for i, ((model, t), entry) in enumerate(zip(jobs, results)):
                if "error" not in entry:
                    later[i].append(_child(model, t, (evals or {}).get(str(model), eval_path), warmup, runs, min_seconds,
                                           eval_count, ["--latency-only"]))
                bar.update()
        bar.close()
    for entry, extra_rounds in zip(results, later):
        if "error" in entry:
            continue
        if rounds > 1:
            merge_rounds(entry, extra_rounds)
        warn = []
        if entry["spread"] > SPREAD_WARN:
            warn.append(f"latency spread (p90-p50)/p50 = {entry['spread']:.2f}")
        if entry.get("round_spread", 0.0) > ROUND_SPREAD_WARN:
            warn.append(f"round p50s differ by {100 * entry['round_spread']:.0f}%")
        if warn:
            entry["warning"] = "; ".join(warn) + ": the device was busy or throttling; rerun"
    return {"schema": SCHEMA, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "device": device_facts(),
            "runtimes": runtime_versions(), "thermal_before": before, "thermal_after": thermal(),
            "other_load_cores": load.cores,
            "settings": {"warmup": warmup, "runs": runs, "min_seconds": min_seconds, "threads": list(threads),
                         "rounds": rounds, "eval": Path(eval_path).name, "eval_count": eval_count},
            "results": results}


def load_note(res: Dict) -> str:
    """', other processes kept 0.02 of 2 cores busy' for a result's device line ('' if not recorded; flagged
    past core.machine.OTHER_LOAD_WARN)."""
    words = other_load_words(res.get("other_load_cores"), res.get("device", {}).get("cores"))
    return ", " + words if words else ""


def changed_since(row: Dict, folder: Path) -> bool:
    """Whether the file a result row measured has been replaced since (another size, .bin included, than the row
    recorded): its latency then describes a file that is no longer there. False when the file is not in `folder`."""
    path = Path(folder) / row.get("file", "")
    now = model_bytes(path) if row.get("file") and path.is_file() else None
    return now is not None and row.get("file_bytes") is not None and now != row["file_bytes"]


def parse_threads(text: str, this_machine: bool = True) -> List[int]:
    """--threads "1,2,4" -> [1, 2, 4]; UserError for anything but positive integers, and (this_machine: the
    runs happen here) for a count above this machine's cores (clitools.check_threads)."""
    from core.clitools import check_threads
    from core.errors import UserError

    try:
        out = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        out = []
    if not out or min(out) < 1:
        raise UserError(f"--threads {text!r}: give a comma list of positive integers, e.g. 1,2,4")
    return check_threads(out) if this_machine else out


@user_errors
def main(argv: Optional[Sequence[str]] = None) -> Dict:
    from core.errors import UserError
    from core.safeio import guard_committed

    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="*", default=[], help="model files to measure, each in its own process")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)
    p.add_argument("--eval", required=True, help="eval set .npz written by benchmarks/run.py (required)")
    p.add_argument("--threads", default="1", help="comma list of thread counts, e.g. 1,2,4")
    p.add_argument("--warmup", type=int, default=10, help="untimed runs before timing, per entry")
    p.add_argument("--runs", type=int, default=50, help="timed single-image runs per entry, at least (more while "
                                                         "--min-seconds have not passed)")
    p.add_argument("--min-seconds", type=float, default=1.0, help="time each entry for at least this long")
    p.add_argument("--eval-count", type=int, default=0, help="first N eval images only (0 = all)")
    p.add_argument("--rounds", type=int, default=1, help="repeat the latency sweep, interleaved, and pool it")
    p.add_argument("--latency-only", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--json", default=None, help="write the results here (default: print them)")
    p.add_argument("--update-results", action="store_true",
                   help="allow --json to replace a committed result under benchmarks/results/")
    p.add_argument("--save-probs", default=None, help="folder for each model's probabilities on the eval set "
                                                      "(<model>.t<threads>.npy; default: not saved)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    check_ranges(args, {"warmup": 0, "runs": 1, "min_seconds": 0.0, "eval_count": 0})
    if args.rounds < 1:
        raise UserError(f"--rounds {args.rounds}: give 1 or more")
    threads = parse_threads(args.threads)
    if args.json:
        guard_committed(args.json, "--update-results", args.update_results)
    if args.one:  # a child: measure_one loads (and checks) the eval set itself
        res = measure_one(Path(args.one), threads[0], Path(args.eval), args.warmup, args.runs,
                          args.min_seconds, args.eval_count, args.save_probs, args.latency_only)
        print(json.dumps(res))
        return res
    if not args.models:
        raise UserError("--models: name at least one model file")
    load_eval(args.eval)  # a bad eval set is one error here, not one per (model, threads) child
    missing = [m for m in args.models if not Path(m).is_file()]
    if missing:
        raise UserError(f"--models {missing[0]}: model file not found; export it with export/all.py")
    res = run_all([Path(m) for m in args.models], threads, Path(args.eval), args.warmup,
                  args.runs, args.min_seconds, args.eval_count, progress=not args.no_progress,
                  probs_dir=Path(args.save_probs) if args.save_probs else None, rounds=args.rounds)
    text = json.dumps(res, indent=1)
    if args.json:
        from core.safeio import atomic_write_text

        atomic_write_text(args.json, text + "\n")
    else:
        print(text)
    return res


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # the child's last stderr line becomes the entry's error: keep it to one line
        if "--one" in sys.argv:
            print(f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}", file=sys.stderr)
            sys.exit(1)
        raise
