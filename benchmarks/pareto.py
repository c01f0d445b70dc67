"""Latency against accuracy for the paper's v3 and the latency-first variants: `python benchmarks/pareto.py`.

Every shipped model trained on the default dataset (core/paths.py) is measured in ONE interleaved run:
each exported file of each model, at each thread count, in its own process (benchmarks/runner.py), round after
round, so a slow spell of the machine lands on every entry alike and the ratios to v3 compare like with like.
Accuracy is PyTorch's, from the committed protocol rows (val selects, test is scored once, PH2 is unseen);
each export's own val DSC comes from its numerics JSON. The end-to-end column is `predict()` on a 765x572
PH2 photo (resize, run, sigmoid, resize back, threshold).

An edge model qualifies when its test DSC is within 0.5 points of v3 and its p50 is at most 0.4x v3's in
every runtime's fp32 file at 1 thread (benchmarks/targets.py holds the limits).

Writes outputs/pareto/pareto.json, .md and .png; `--update-results` writes benchmarks/results/pareto.*
instead, which docs/benchmarks.md and the README cite (python docs/generate.py).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.clitools import ArgumentParser, check_ranges, user_errors
from core.errors import UserError
from core.paths import BENCHMARK_RESULTS, DEFAULT_DATA, DEFAULT_DATASET, DEFAULT_MODEL, EXPORTS_DIR, REPO, SHARED_DATA, SHIPPED, \
    WEIGHTS_DIR

SCHEMA = "aulunet-pareto/1"
RESULTS = BENCHMARK_RESULTS
DEFAULT_OUT = REPO / "outputs" / "pareto"
PROTOCOL = WEIGHTS_DIR / "protocol_results.json"
PHOTO = SHARED_DATA / "ph2" / "images" / "IMD002.jpg"  # 765x572, a PH2 photo none of these models trained on
FP32_RUNTIMES = ("onnx", "openvino", "tflite", "executorch", "ncnn")  # the deployable fp32 file of each runtime


def edge_models() -> List[str]:
    """The default model first, then every other shipped model trained on its dataset."""
    return [DEFAULT_MODEL] + [m for m, ds in SHIPPED.items() if ds == DEFAULT_DATASET and m != DEFAULT_MODEL]


def accuracy(model: str, rows: Sequence[Dict]) -> Dict:
    """{val, test, ph2}: pooled DSC / mIoU of the PyTorch checkpoint, from the committed protocol rows."""
    out = {}
    for r in rows:
        if r["model"] == model:
            key = "ph2" if r["role"] == "cross" and r["dataset"] == "ph2" else r["split"]
            out[key] = {"dsc": r["dsc"], "miou": r["miou"], "n_images": r["n_images"]}
    return out


def export_dsc(file: Path) -> Optional[float]:
    n = file.with_name(file.name + ".numerics.json")
    if file.suffix == ".pt" or not n.is_file():
        return None
    return (json.loads(n.read_text()).get("export_metrics") or {}).get("dsc")


def ratios(results: Sequence[Dict], reference: str) -> None:
    """Each entry's p50 over the reference model's for the same format and thread count (in place): the median
    of the per-round ratios when there are rounds (both measured seconds apart), as benchmarks/targets.py does."""
    from benchmarks.targets import ratio

    ref = {(r["format"], r["threads"]): r for r in results if r["model"] == reference and "error" not in r}
    for r in results:
        if "error" not in r and (r["format"], r["threads"]) in ref:
            r["ratio_to_reference"] = ratio(r, ref[(r["format"], r["threads"])])[0]


def verdicts(models: Dict[str, Dict], results: Sequence[Dict], reference: str, dsc_margin: float,
             max_ratio: float) -> Dict[str, Dict]:
    """Per model: test DSC against the reference, its worst fp32 ratio at 1 thread, its best file against the
    reference's best file at 1 thread, and whether it qualifies as the edge model."""
    one = [r for r in results if r["threads"] == 1 and "error" not in r]
    best_ref = min((r["p50_ms"] for r in one if r["model"] == reference and r["format"] != "torch"), default=None)
    ref_test = models[reference]["accuracy"].get("test", {}).get("dsc")
    out = {}
    for m, info in models.items():
        mine = [r for r in one if r["model"] == m]
        fp32 = {r["format"]: r.get("ratio_to_reference") for r in mine if r["format"] in FP32_RUNTIMES}
        best = min((r for r in mine if r["format"] != "torch"), key=lambda r: r["p50_ms"], default=None)
        test = info["accuracy"].get("test", {}).get("dsc")
        within = test is not None and ref_test is not None and test >= ref_test - dsc_margin
        worst = max((v for v in fp32.values() if v is not None), default=None)
        out[m] = {"test_dsc_drop_points": None if test is None or ref_test is None else round(100 * (ref_test - test), 3),
                  "within_dsc_margin": within, "fp32_ratio_1t": fp32, "worst_fp32_ratio_1t": worst,
                  "best_file": best and best["file"], "best_p50_ms_1t": best and best["p50_ms"],
                  "best_vs_reference_best_1t": best and best_ref and best["p50_ms"] / best_ref,
                  "qualifies": m != reference and within and worst is not None and worst <= max_ratio
                  and set(fp32) >= set(FP32_RUNTIMES)}
    return out


def fastest_within_margin(verdict: Dict[str, Dict]) -> Optional[str]:
    ok = [(v["best_p50_ms_1t"], m) for m, v in verdict.items() if v["within_dsc_margin"] and v["best_p50_ms_1t"]]
    return min(ok)[1] if ok else None


def markdown(res: Dict) -> str:
    from benchmarks.runner import changed_since, load_note
    from core.paths import EXPORTS_DIR, WEIGHTS_DIR

    d = res["device"]
    models, ref = res["models"], res["reference"]
    lines = [f"Device: {d.get('cpu')} ({d['machine']}, {d['cores']} cores), one interleaved run of {res['settings']['rounds']} "
             f"rounds on {res.get('created', '?')[:10]}{load_note(res)}; ratios are to {ref} in the same format and thread "
             "count.", "",
             "| model | input | params | GFLOPs | val DSC | val mIoU | test DSC | test mIoU | PH2 (150) DSC |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for m, info in models.items():
        a = info["accuracy"]
        cell = lambda k, f: f"{a[k][f]:.4f}" if k in a else "n/a"  # noqa: E731
        lines.append(f"| {m} | {info['input_size']} | {info['params']:,} | {info['gflops']:.4f} | {cell('val', 'dsc')} | "
                     f"{cell('val', 'miou')} | {cell('test', 'dsc')} | {cell('test', 'miou')} | {cell('ph2', 'dsc')} |")
    threads = res["settings"]["threads"]
    lines += ["", "| model | format | export val DSC | " + " | ".join(f"p50 ms, {t}t" for t in threads) + " | "
              + " | ".join(f"x {ref.split('_isic')[0]}, {t}t" for t in threads) + " | end-to-end ms, 1t |",
              "|---|---|---:|" + "---:|" * (2 * len(threads)) + "---:|"]
    by = {(r["model"], r["format"], r["threads"]): r for r in res["results"]}
    for m in models:
        for fmt in dict.fromkeys(r["format"] for r in res["results"] if r["model"] == m):
            rs = [by.get((m, fmt, t), {}) for t in threads]
            dsc = rs[0].get("export_val_dsc")
            stale = any(changed_since(r, WEIGHTS_DIR if r.get("file", "").endswith(".pt") else EXPORTS_DIR) for r in rs)
            cells = [f"{r['p50_ms']:.2f}{' *' if stale else ''}" if "p50_ms" in r else "error" for r in rs]
            cells += [f"{r['ratio_to_reference']:.2f}" if "ratio_to_reference" in r else "" for r in rs]
            e2e = rs[0].get("e2e_p50_ms")
            lines.append(f"| {m} | {fmt} | {'' if dsc is None else f'{dsc:.4f}'} | " + " | ".join(cells)
                         + f" | {'' if e2e is None else f'{e2e:.1f}'} |")
    if any(" * |" in ln for ln in lines):
        lines += ["", "\\* measured on an earlier version of this file (it has been re-exported since, another size): "
                  "run `python benchmarks/pareto.py --update-results` again for its latency."]
    v, fastest = res["verdict"], res["fastest_within_margin"]
    lines += ["", "| model | test DSC drop, points | worst fp32 ratio, 1t | best file, 1t | x best v3 file | qualifies |",
              "|---|---:|---:|---|---:|---|"]
    for m, x in v.items():
        worst = "" if x["worst_fp32_ratio_1t"] is None else f"{x['worst_fp32_ratio_1t']:.2f}"
        lines.append(f"| {m} | {x['test_dsc_drop_points']} | {worst} | "
                     f"{x['best_file']} ({x['best_p50_ms_1t']:.2f} ms) | {x['best_vs_reference_best_1t']:.2f} | "
                     f"{'yes' if x['qualifies'] else 'no'} |")
    lines += ["", f"Fastest model within {res['settings']['dsc_margin_points']} DSC points of {ref} on test: "
              f"**{fastest}**."]
    return "\n".join(lines)


def plot(res: Dict, path: Path) -> None:
    """Test DSC against p50 at 1 thread: one marker per (model, format)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from model.evaluation.figures import save_figure

    fig, ax = plt.subplots(figsize=(8, 5))
    formats = sorted({r["format"] for r in res["results"]})
    markers = dict(zip(formats, "os^vD<>pPX*hH+x"))
    for i, (m, info) in enumerate(res["models"].items()):
        test = info["accuracy"].get("test", {}).get("dsc")
        rs = [r for r in res["results"] if r["model"] == m and r["threads"] == 1 and "error" not in r]
        for r in rs:
            ax.scatter(r["p50_ms"], 100 * test, marker=markers[r["format"]], color=f"C{i}", s=36,
                       label=m if r is rs[0] else None)
            ax.annotate(r["format"], (r["p50_ms"], 100 * test), fontsize=6, xytext=(3, 2), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel(f"p50 latency per image at 1 thread, ms (log) — {res['device'].get('cpu')}")
    ax.set_ylabel("ISIC 2018 test DSC (%), PyTorch")
    ax.set_title("Latency against accuracy, one interleaved run")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save_figure(fig, path)


@user_errors
def main(argv: Optional[Sequence[str]] = None) -> Dict:
    from benchmarks import runner
    from benchmarks.run import format_names, write_eval_set
    from benchmarks.targets import EDGE_DSC_MARGIN, EDGE_MAX_RATIO
    from model.networks.checkpoint import model_from_checkpoint
    from core.safeio import ensure_writable_dir, results_folder, write_results
    from model.summary import count

    p = ArgumentParser(description=__doc__.splitlines()[0], epilog="\n".join(__doc__.splitlines()[2:]))
    p.add_argument("--models", default=",".join(edge_models()), help="comma list of shipped checkpoints; the first is "
                   "the reference the ratios are taken to")
    p.add_argument("--exports", default=str(EXPORTS_DIR), help="folder of the exported files")
    p.add_argument("--formats", default=None, help="comma list of benchmark names (torch, onnx, onnx-int8, ...; "
                   "default: every exported file of each model)")
    p.add_argument("--threads", default="1,2", help="comma list of thread counts")
    p.add_argument("--rounds", type=int, default=3, help="interleaved latency rounds, pooled")
    p.add_argument("--warmup", type=int, default=10, help="untimed runs before timing, per entry")
    p.add_argument("--runs", type=int, default=50, help="timed single-image runs per entry and round, at least")
    p.add_argument("--min-seconds", type=float, default=1.0, help="time each entry for at least this long per round")
    p.add_argument("--eval-count", type=int, default=16,
                   help="val images each entry's agreement check runs on (accuracy comes from the protocol rows)")
    p.add_argument("--photo", default=str(PHOTO), help="image for the end-to-end predict() latency")
    p.add_argument("--out", default=None, help=f"folder for pareto.json/.md/.png (default: {DEFAULT_OUT.relative_to(REPO)}/)")
    p.add_argument("--update-results", action="store_true", help="write benchmarks/results/pareto.* (committed)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    check_ranges(args, {"rounds": 1, "warmup": 0, "runs": 1, "min_seconds": 0.0, "eval_count": 1})
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in names if m not in SHIPPED]
    if not names or unknown:
        raise UserError(f"--models: unknown checkpoint '{unknown[0] if unknown else args.models}'; choose from "
                        f"{', '.join(SHIPPED)}")
    photo, exports = Path(args.photo), Path(args.exports)
    if not photo.is_file():
        raise UserError(f"--photo {photo}: image not found; pass a photo (a PH2 image is 765x572)")
    if not DEFAULT_DATA.is_dir():
        raise UserError(f"{DEFAULT_DATA}: dataset folder not found; put {DEFAULT_DATASET}/ under ../shared/data")
    if not PROTOCOL.is_file():
        raise UserError(f"{PROTOCOL}: protocol rows not found; run python model/protocol.py --save")
    threads = runner.parse_threads(args.threads)
    out = results_folder(args.update_results, args.out, DEFAULT_OUT)
    rows = json.loads(PROTOCOL.read_text())["rows"]
    wanted = {f.strip() for f in args.formats.split(",")} if args.formats else None
    models: Dict[str, Dict] = {}
    files: List[Path] = []
    label: Dict[str, tuple] = {}
    for m in names:
        weights = WEIGHTS_DIR / f"{m}.pt"
        if not weights.is_file():
            raise UserError(f"--models {m}: {weights} not found; train and promote it first (model/promote.py)")
        net, _ = model_from_checkpoint(weights)
        acc = accuracy(m, rows)
        if "test" not in acc:
            raise UserError(f"--models {m}: no test row in {PROTOCOL.name}; run python model/protocol.py --models {m} --save")
        models[m] = {**count(net), "input_size": net.cfg.input_size, "accuracy": acc, "weights": weights.name}
        for fmt, path in format_names(weights, exports).items():
            if path.is_file() and (wanted is None or fmt in wanted):
                files.append(path)
                label[str(path)] = (m, fmt)
    if not any(label[str(f)][1] != "torch" for f in files):
        raise UserError(f"--exports {exports}: no exported file of {', '.join(names)}; run python export/all.py "
                        "--weights model/weights/<model>.pt first")
    out = ensure_writable_dir(out, "--out")
    t0 = time.time()
    evals = {}
    try:
        for m in names:
            evals[m] = out / f"eval_{m}.npz"
            write_eval_set(evals[m], DEFAULT_DATA, "val", args.eval_count, WEIGHTS_DIR / f"{m}.pt", photo)
        res = runner.run_all(files, threads, evals[names[0]], args.warmup, args.runs, args.min_seconds,
                             progress=not args.no_progress, rounds=args.rounds,
                             evals={str(f): evals[label[str(f)][0]] for f in files})
    finally:
        for e in evals.values():
            e.unlink(missing_ok=True)
    by_name = {Path(k).name: v for k, v in label.items()}
    results = []
    for r in res.pop("results"):
        m, fmt = by_name[r["file"]]
        r.pop("latencies_ms", None)  # the raw samples stay out of the committed JSON; the stats are kept
        results.append({"model": m, "format": fmt, "export_val_dsc": export_dsc(exports / r["file"]), **r})
    ratios(results, names[0])
    verdict = verdicts(models, results, names[0], EDGE_DSC_MARGIN, EDGE_MAX_RATIO)
    res.update({"schema": SCHEMA, "reference": names[0], "models": models, "results": results, "verdict": verdict,
                "fastest_within_margin": fastest_within_margin(verdict), "wall_seconds": round(time.time() - t0, 1)})
    res["settings"].update({"dsc_margin_points": 100 * EDGE_DSC_MARGIN, "max_ratio": EDGE_MAX_RATIO,
                            "photo": photo.name, "eval": "per model"})
    md = markdown(res)
    write_results(out, "pareto", res, md)
    plot(res, out / "pareto.png")
    print(md)
    print(f"\nwrote {out / 'pareto.json'} and its .md and .png")
    return res


if __name__ == "__main__":
    main()
