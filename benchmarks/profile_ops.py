"""Where the time goes, per op type: `python benchmarks/profile_ops.py [FILE.onnx ...] [--threads 2]`.

ONNX Runtime's own profiler (SessionOptions.enable_profiling) over N single-image runs; prints a Markdown
table of total time per op type for each file (default: the fp32 and INT8 ONNX exports), so an INT8 file
that is slower than fp32 can be explained op by op rather than guessed at.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Dict, Optional, Sequence

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT = [REPO / "exports" / "aulunet_v3_ph2.onnx", REPO / "exports" / "aulunet_v3_ph2_int8.onnx"]


def profile_onnx(path: Path, threads: int = 2, runs: int = 50) -> Dict[str, float]:
    """Mean microseconds per run, by op type (node events of ORT's profiler)."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as td:
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.enable_profiling = True
        so.profile_file_prefix = str(Path(td) / "p")
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        x = np.random.default_rng(0).random((1, 3, 256, 256), dtype=np.float32)
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
    return dict(per_op)


def main(argv: Optional[Sequence[str]] = None) -> Dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="*", default=[str(f) for f in DEFAULT])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=50)
    args = p.parse_args(argv)
    res = {}
    for f in map(Path, args.files):
        if f.suffix != ".onnx" or not f.is_file():
            raise SystemExit(f"error: {f}: not an existing .onnx file; export one with export/to_onnx.py")
        res[f.name] = profile_onnx(f, args.threads, args.runs)
    ops = sorted({o for r in res.values() for o in r}, key=lambda o: -max(r.get(o, 0) for r in res.values()))
    names = list(res)
    print("| op type | " + " | ".join(f"{n} (ms/run)" for n in names) + " |")
    print("|---|" + "---:|" * len(names))
    for o in ops:
        print(f"| {o} | " + " | ".join(f"{res[n].get(o, 0) / 1000:.2f}" for n in names) + " |")
    print("| **total (kernels)** | " + " | ".join(f"**{sum(res[n].values()) / 1000:.2f}**" for n in names) + " |")
    return res


if __name__ == "__main__":
    main()
