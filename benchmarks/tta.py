"""Test-time augmentation, accuracy beside cost: `python benchmarks/tta.py [--weights FILE] [--update-results]`.

For one model file (default: the default model's fp32 ONNX), pooled DSC / mIoU on the default dataset's val and
test splits with and without flip TTA (`Segmenter.predict(..., tta=True)`: the mean of four flipped runs), and
the end-to-end `predict()` p50 on a 765x572 PH2 photo with and without it, interleaved. TTA stays off by
default; this says what turning it on buys and costs. Writes outputs/tta/tta.json and .md;
`--update-results` writes benchmarks/results/tta.* (docs/benchmarks.md cites them).
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Dict, Optional, Sequence

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.clitools import ArgumentParser, add_verbose, check_ranges, quiet, user_errors
from core.errors import UserError
from core.paths import BENCHMARK_RESULTS, DEFAULT_DATA, REPO, export_path

RESULTS = BENCHMARK_RESULTS
DEFAULT_OUT = REPO / "outputs" / "tta"
PHOTO = DEFAULT_DATA.parent / "ph2" / "images" / "IMD002.jpg"


def markdown(res: Dict) -> str:
    lines = ["| split | images | DSC | DSC with TTA | mIoU | mIoU with TTA |", "|---|---:|---:|---:|---:|---:|"]
    for split, r in res["splits"].items():
        lines.append(f"| {split} | {r['plain']['n_images']} | {r['plain']['dsc']:.4f} | {r['tta']['dsc']:.4f} | "
                     f"{r['plain']['miou']:.4f} | {r['tta']['miou']:.4f} |")
    lat = res["latency"]
    lines += ["", f"`{res['model']}`, {res['data']}: end-to-end predict() on {lat['photo']} at {lat['threads']} thread(s), "
              f"p50 {lat['plain_ms']:.1f} ms, with TTA {lat['tta_ms']:.1f} ms ({lat['tta_ms'] / lat['plain_ms']:.2f}x), "
              f"{lat['runs']} interleaved runs each; {res['cpu']}."]
    return "\n".join(lines)


@user_errors
def main(argv: Optional[Sequence[str]] = None) -> Dict:
    import runtimes
    from core.machine import device_facts
    from model.data import load_rgb, open_dataset
    from model.evaluation.pooled import evaluate_samples
    from core.safeio import ensure_writable_dir, results_folder, write_results

    p = ArgumentParser(description=__doc__.splitlines()[0], epilog="\n".join(__doc__.splitlines()[2:]))
    p.add_argument("--weights", default=str(export_path(".onnx")), help="model file, any format runtimes.load opens")
    p.add_argument("--data", default=str(DEFAULT_DATA), help="dataset with val and test splits")
    p.add_argument("--splits", default="val,test", help="comma list of splits to score")
    p.add_argument("--count", type=int, default=0, help="first N images of each split only (0 = all)")
    p.add_argument("--runs", type=int, default=30, help="timed predict() calls each, interleaved")
    p.add_argument("--threads", type=int, default=1, help="runtime threads")
    p.add_argument("--photo", default=str(PHOTO), help="photo for the end-to-end latency")
    p.add_argument("--out", default=None, help=f"folder for tta.json/.md (default {DEFAULT_OUT.relative_to(REPO)}/)")
    p.add_argument("--update-results", action="store_true", help="write benchmarks/results/tta.* (committed)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_verbose(p)
    args = p.parse_args(argv)
    check_ranges(args, {"count": 0, "runs": 1, "threads": 1})
    weights, data, photo = Path(args.weights), Path(args.data), Path(args.photo)
    for flag, path in (("--weights", weights), ("--photo", photo)):
        if not path.is_file():
            raise UserError(f"{flag} {path}: file not found; pass an existing file")
    if not data.is_dir():
        raise UserError(f"--data {data}: folder not found; pass a dataset folder (default {DEFAULT_DATA})")
    out = results_folder(args.update_results, args.out, DEFAULT_OUT)
    with quiet(args.verbose):  # the runtime's start-up output
        seg = runtimes.load(weights, threads=args.threads)
    ds = open_dataset(data)
    splits = {}
    for split in (s.strip() for s in args.splits.split(",") if s.strip()):
        samples = ds.subset(split)
        samples = samples[:args.count] if args.count else samples
        splits[split] = {k: {m: r[m] for m in ("dsc", "miou", "n_images")}
                         for k, r in (("plain", evaluate_samples(seg, samples, progress=not args.no_progress)),
                                      ("tta", evaluate_samples(seg, samples, progress=not args.no_progress, tta=True)))}
    rgb = load_rgb(photo)
    seg.predict(rgb), seg.predict(rgb, tta=True)  # warm-up
    times = {False: [], True: []}
    for _ in range(args.runs):
        for tta in (False, True):
            t0 = time.perf_counter()
            seg.predict(rgb, tta=tta)
            times[tta].append(1000 * (time.perf_counter() - t0))
    res = {"schema": "aulunet-tta/1", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "model": weights.name,
           "data": data.name, "cpu": device_facts().get("cpu"), "splits": splits,
           "latency": {"photo": f"{photo.name} ({rgb.shape[1]}x{rgb.shape[0]})", "threads": args.threads, "runs": args.runs,
                       "plain_ms": statistics.median(times[False]), "tta_ms": statistics.median(times[True])}}
    out = ensure_writable_dir(out, "--out")
    md = markdown(res)
    write_results(out, "tta", res, md)
    print(md)
    return res


if __name__ == "__main__":
    main()
