"""Where the time goes, per op: `python benchmarks/profile_ops.py [FILE.onnx|FILE.xml ...] [--threads 2] [--json F]`.

Each runtime's own profiler over N single-image runs: ONNX Runtime's (SessionOptions.enable_profiling)
for .onnx files and OpenVINO's performance counters (PERF_COUNT) for .xml files. Prints one Markdown table
per runtime, time per op type and kernel, for each file (default: the fp32 and INT8 ONNX and OpenVINO
exports), so an INT8 file that is slower than fp32 is explained op by op rather than guessed at. The
share of time spent at the full 256x256 resolution (ONNX Runtime, from the output shapes) is printed too.
LiteRT's Python API has no per-op profiler; docs/benchmarks.md explains its INT8 numbers from the op counts.
"""
from __future__ import annotations

import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Dict, Optional, Sequence

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from core.clitools import ArgumentParser, add_verbose, check_ranges, check_threads, quiet, user_errors
from core.errors import UserError
from core.paths import export_path

DEFAULT = [export_path(f"{q}{ext}") for ext in (".onnx", ".xml") for q in ("", "_int8")]


def _image(size: int = 256) -> np.ndarray:
    return np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)


def profile_onnx(path: Path, threads: int = 2, runs: int = 50) -> Dict[str, float]:
    """Mean microseconds per run by op type, and under "@full-res" the part whose output is 256x256."""
    import onnxruntime as ort

    import runtimes

    # profile what the backend runs: the graph optimization level its session chose for this file
    level = runtimes.load(path).session.get_session_options().graph_optimization_level
    x = _image()
    with tempfile.TemporaryDirectory() as td:
        so = ort.SessionOptions()
        so.graph_optimization_level = level
        so.intra_op_num_threads = threads
        so.enable_profiling = True
        so.profile_file_prefix = str(Path(td) / "p")
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        for _ in range(5):
            sess.run(None, {sess.get_inputs()[0].name: x})
        sess.end_profiling()  # drop warm-up events: profile a fresh session with the same options
        so.profile_file_prefix = str(Path(td) / "q")
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        for _ in range(runs):
            sess.run(None, {sess.get_inputs()[0].name: x})
        events = json.loads(Path(sess.end_profiling()).read_text())
    per_op: Dict[str, float] = defaultdict(float)
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per_op[e["args"]["op_name"]] += e["dur"] / runs
            shapes = [d for o in e["args"].get("output_type_shape", []) for d in o.values()]
            if any(256 in s[-3:] and s.count(256) >= 2 for s in shapes):  # NCHW or NHWC 256x256
                per_op["@full-res"] += e["dur"] / runs
    return dict(per_op)


def profile_openvino(path: Path, threads: int = 2, runs: int = 50) -> Dict[str, float]:
    """Mean microseconds per run by op type and the kernel OpenVINO picked (e.g. brgconv_avx2_1x1_I8)."""
    import openvino as ov

    core = ov.Core()
    m = core.read_model(str(path))
    m.reshape([1, 3, 256, 256])
    req = core.compile_model(m, "CPU", {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32",
                                        "PERF_COUNT": True}).create_infer_request()
    x = _image()
    for _ in range(5):
        req.infer({0: x})
    per_op: Dict[str, float] = defaultdict(float)
    for _ in range(runs):
        req.infer({0: x})
        for info in req.profiling_info:
            per_op[f"{info.node_type} [{info.exec_type}]"] += info.real_time.total_seconds() * 1e6 / runs
    return {k: v for k, v in per_op.items() if v > 0}


PROFILERS = {".onnx": ("ONNX Runtime", profile_onnx), ".xml": ("OpenVINO", profile_openvino)}


def markdown(res: Dict[str, Dict[str, float]]) -> str:
    ops = sorted({o for r in res.values() for o in r if o != "@full-res"},
                 key=lambda o: -max(r.get(o, 0) for r in res.values()))
    names = list(res)
    rows = ["| op type | " + " | ".join(f"{n} (ms/run)" for n in names) + " |", "|---|" + "---:|" * len(names)]
    rows += [f"| {o} | " + " | ".join(f"{res[n].get(o, 0) / 1000:.2f}" for n in names) + " |" for o in ops]
    totals = {n: sum(v for k, v in res[n].items() if k != "@full-res") for n in names}
    rows.append("| **total (kernels)** | " + " | ".join(f"**{totals[n] / 1000:.2f}**" for n in names) + " |")
    if any("@full-res" in r for r in res.values()):
        rows.append("| of which at 256x256 | " + " | ".join(
            f"{res[n].get('@full-res', 0) / 1000:.2f} ({100 * res[n].get('@full-res', 0) / max(totals[n], 1e-9):.0f}%)"
            for n in names) + " |")
    return "\n".join(rows)


@user_errors
def main(argv: Optional[Sequence[str]] = None) -> Dict:
    p = ArgumentParser(description=__doc__.splitlines()[0], epilog="\n".join(__doc__.splitlines()[2:]))
    p.add_argument("files", nargs="*", default=[str(f) for f in DEFAULT],
                   help="exported .onnx / .xml files to profile (default: " + ", ".join(f.name for f in DEFAULT) + ")")
    p.add_argument("--threads", type=int, default=2, help="intra-op threads of each runtime")
    p.add_argument("--runs", type=int, default=50, help="profiled single-image runs per file (after 5 warm-up runs)")
    p.add_argument("--json", default=None, help="also write {file: {op: microseconds per run}} here (default: print only)")
    p.add_argument("--update-results", action="store_true",
                   help="allow --json to replace the committed benchmarks/results/profile_ops_host.json that "
                        "docs/benchmarks.md cites")
    add_verbose(p)
    args = p.parse_args(argv)
    check_ranges(args, {"threads": 1, "runs": 1})
    check_threads(args.threads)
    if args.json:
        from core.safeio import ensure_writable_dir, guard_committed

        guard_committed(args.json, "--update-results", args.update_results, "pass --json with a path under outputs/")
        ensure_writable_dir(Path(args.json).parent, "--json")  # before minutes of profiling, not after
    by_runtime: Dict[str, Dict[str, Dict[str, float]]] = {}
    for f in map(Path, args.files):
        if f.suffix not in PROFILERS or not f.is_file():
            raise UserError(f"{f}: not an existing .onnx or .xml file; export one with export/all.py")
    for f in map(Path, args.files):
        runtime, fn = PROFILERS[f.suffix]
        with quiet(args.verbose):
            by_runtime.setdefault(runtime, {})[f.name] = fn(f, args.threads, args.runs)
    for runtime, res in by_runtime.items():
        print(f"\n{runtime}, {args.threads} thread(s), {args.runs} runs\n\n{markdown(res)}")
    flat = {n: r for res in by_runtime.values() for n, r in res.items()}
    if args.json:
        from core.safeio import atomic_write_text

        atomic_write_text(Path(args.json), json.dumps(flat, indent=1) + "\n")
    return flat


if __name__ == "__main__":
    main()
