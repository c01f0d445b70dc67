"""Corruption benchmark: `python benchmarks/robustness.py [--models F,...] [--count N] [--update-results]`.

Every corruption of model/data/corruptions.py at severities 1-3, applied to the ISIC 2018 test split (seeded by
the image's index, so every model sees the same bytes), scored for the PyTorch checkpoint and every export
of it: pooled DSC per corruption and severity at the protocol's 256x256 grid (a model of another input size
is scored on its probabilities resized to that grid), the mean drop against clean, and for each INT8 file its
difference from the fp32 file of the same runtime. Writes robustness.json, robustness.md and
robustness.png (a heat map) to outputs/robustness/; `--update-results` writes the committed
benchmarks/results/ copies that docs/generate.py reads.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from core.clitools import ArgumentParser, HelpFormatter, add_verbose, check_ranges, quiet, user_errors
from core.errors import UserError
from core.safeio import atomic_write_bytes, ensure_writable_dir, file_sha256, results_folder, write_results
from core.paths import BENCHMARK_RESULTS, DEFAULT_DATA, DEFAULT_MODEL, DEFAULT_WEIGHTS, EXPORTS_DIR, REPO, repo_relative

RESULTS = BENCHMARK_RESULTS
DEFAULT_OUT = REPO / "outputs" / "robustness"
GRID = 256  # the protocol's scoring grid (model/evaluate.py)


def default_models(model: str = DEFAULT_MODEL) -> List[Path]:
    """The checkpoint and every export of it in exports/, in the format table's order."""
    import runtimes

    files = [DEFAULT_WEIGHTS] if model == DEFAULT_MODEL else [REPO / "model" / "weights" / f"{model}.pt"]
    for suffix in runtimes.BACKENDS:
        if suffix != ".pt":
            files += sorted(EXPORTS_DIR.glob(f"{model}*{suffix}"))
    return files


def label_of(path: Path) -> str:
    """'PyTorch', 'ONNX Runtime fp32', 'ncnn INT8', ... from the file's suffix (the longest: .ncnn.param) and name."""
    from core.formats import for_path

    path = Path(path)
    if path.suffix == ".pt":
        return "PyTorch"
    try:
        runtime = for_path(path).title
    except KeyError:
        runtime = path.suffix
    quant = next((q for q in ("int8", "fp16") if f"_{q}" in path.name), "fp32")
    return f"{runtime} {quant.upper() if quant == 'int8' else quant}"


def _scores(pm) -> Dict:
    r = pm.result()
    return {"dsc": r["dsc"], "miou": r["miou"]}


def measure(files: Sequence[Path], samples, corruptions: Sequence[str], severities: Sequence[int], threads: int,
            progress: bool = True, verbose: bool = False, jobs: int = 1) -> Dict:
    """Every file's pooled DSC / mIoU clean and under each corruption and severity, their mean drop and worst
    case, and the INT8-vs-fp32 gaps. jobs > 1 scores the files in that many processes at once (each at `threads`;
    the figures are the same, each process draws the same corruptions from the same seeds)."""
    labels = [label_of(f) for f in files]
    if len(set(labels)) != len(labels):
        raise UserError("--models: two files map to the same label (e.g. two fp32 ONNX files); give one per format")
    t0 = time.time()
    if jobs > 1 and len(files) > 1:
        results = _score_in_processes(files, samples, corruptions, severities, threads, progress, verbose, jobs)
    else:
        results = _score(files, samples, corruptions, severities, threads, progress, verbose)
    for r in results.values():
        drops = [r["dsc"]["clean"] - v for k, v in r["dsc"].items() if k != "clean"]
        r["mean_drop"] = float(np.mean(drops)) if drops else 0.0
        r["worst"] = min(((v, k) for k, v in r["dsc"].items() if k != "clean"), default=(r["dsc"]["clean"], "clean"))[1]
    return {**conditions_of(len(samples), corruptions, severities, threads), "seconds": round(time.time() - t0, 1),
            "models": results, "int8_vs_fp32": int8_gaps(results, severities)}


def _score_in_processes(files, samples, corruptions, severities, threads, progress, verbose, jobs) -> Dict:
    """_score for one file per task in a pool of `jobs` spawned processes; the rows in the order of `files`."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from tqdm import tqdm

    with ProcessPoolExecutor(max_workers=min(jobs, len(files)), mp_context=multiprocessing.get_context("spawn")) as pool:
        tasks = {pool.submit(_score, [f], samples, corruptions, severities, threads, False, verbose): f for f in files}
        done = {}
        for t in tqdm(as_completed(tasks), total=len(tasks), desc="robustness (files)", disable=not progress):
            done[tasks[t]] = t.result()
    return {label: row for f in files for label, row in done[f].items()}


def _score(files: Sequence[Path], samples, corruptions: Sequence[str], severities: Sequence[int], threads: int,
           progress: bool, verbose: bool) -> Dict:
    """label -> {file, sha256, dsc, miou} with one entry per condition, every file in this process; the
    corrupted batch of each condition is made once and shared by the files."""
    from tqdm import tqdm

    import runtimes
    from model.data.corruptions import corrupt, torch_threads
    from model.data import load_sample
    from core.metrics import PooledMetrics
    from core.preprocess import preprocess_image, preprocess_mask, resize_bilinear

    with quiet(verbose):
        segs = {label_of(f): runtimes.load(f, threads=threads) for f in files}
        for seg in segs.values():  # the runtimes' first-run chatter (delegates, cpuinfo) stays hidden too
            seg.probabilities(np.zeros((1, 3, seg.input_size, seg.input_size), np.float32))
    loaded = [load_sample(s) for s in samples]
    images = [rgb for rgb, _ in loaded]
    masks = [preprocess_mask(mask, GRID) for _, mask in loaded]
    conditions = [("clean", 0)] + [(c, s) for c in corruptions for s in severities]
    results = {name: {"file": repo_relative(f), "sha256": file_sha256(f), "dsc": {}, "miou": {}}
               for name, f in zip(segs, files)}
    for cond, sev in tqdm(conditions, desc="robustness", disable=not progress):
        with torch_threads(threads):  # the corruptions' torch ops on as many threads as the runtimes
            batch = images if cond == "clean" else [corrupt(rgb, cond, sev, seed=i) for i, rgb in enumerate(images)]
        by_size: Dict[int, np.ndarray] = {}
        for name, seg in segs.items():
            size = seg.input_size
            if size not in by_size:
                by_size[size] = np.stack([preprocess_image(rgb, size) for rgb in batch])
            x = by_size[size]
            pm = PooledMetrics()
            with quiet(verbose):  # a runtime meeting a new batch size sets itself up again, and says so
                for i in range(0, len(x), 8):
                    p = seg.probabilities(x[i:i + 8])
                    if size != GRID:
                        p = np.stack([resize_bilinear(q[..., None], (GRID, GRID))[..., 0] for q in p])
                    pm.update(p > seg.threshold, np.stack(masks[i:i + 8]))
            sc = _scores(pm)
            key = cond if cond == "clean" else f"{cond}/{sev}"
            results[name]["dsc"][key], results[name]["miou"][key] = sc["dsc"], sc["miou"]
    return results


def conditions_of(n_images: int, corruptions: Sequence[str], severities: Sequence[int], threads: int) -> Dict:
    """What a run measured under, as its results record it (and --keep-others compares)."""
    from model.data.corruptions import SEVERITIES

    return {"n_images": n_images, "severities": list(severities),
            "corruptions": {c: list(SEVERITIES[c]) for c in corruptions}, "grid": GRID, "threads": threads}


def int8_gaps(results: Dict, severities: Sequence[int]) -> Dict:
    """For each runtime with an INT8 and an fp32 file: INT8 - fp32 DSC (points) under each corruption at the
    middle severity, and the largest loss."""
    mid = sorted(severities)[len(severities) // 2]
    out = {}
    for name, r in results.items():
        if not name.endswith(" INT8"):
            continue
        ref = results.get(name[: -len("INT8")] + "fp32")
        if ref is None:
            continue
        keys = [k for k in r["dsc"] if k.endswith(f"/{mid}")]
        gaps = {k.split("/")[0]: 100 * (r["dsc"][k] - ref["dsc"][k]) for k in keys}
        out[name] = {"severity": mid, "points": gaps, "worst_loss": -min(gaps.values()) if gaps else 0.0}
    return out


SAME_RUN_KEYS = ("data", "split", "n_images", "corruptions", "severities", "grid", "threads", "cpu")


def rows_to_keep(path: Path, run: Dict, measuring: Sequence[str]) -> Dict:
    """--keep-others: the model rows of the earlier results at `path` that this run does not measure again, checked
    before anything is measured. Only when both runs use the same images, corruptions, severities, threads and
    CPU (INT8 files score differently on other CPUs; `run` holds this run's SAME_RUN_KEYS), and only rows whose
    file is unchanged (its sha256, where the row records one)."""
    import json

    if not path.is_file():
        raise UserError(f"--keep-others: no earlier {path} to keep rows from; run without --keep-others")
    try:
        old = json.loads(path.read_text())
        old_models = dict(old["models"])
        files = {label: str(row["file"]) for label, row in old_models.items()}
    except (ValueError, KeyError, TypeError):
        raise UserError(f"--keep-others: {path} is not a robustness results JSON; run without --keep-others") from None
    differ = [k for k in SAME_RUN_KEYS if old.get(k) != run.get(k)]
    if differ:
        raise UserError(f"--keep-others: {path} was measured with another {differ[0]} ({old.get(differ[0])!r}, now "
                        f"{run.get(differ[0])!r}); run every model again without --keep-others")
    kept = {label: row for label, row in old_models.items() if label not in measuring}
    for label, row in kept.items():
        f = Path(files[label]) if Path(files[label]).is_absolute() else REPO / files[label]
        if row.get("sha256") and (not f.is_file() or file_sha256(f) != row["sha256"]):
            raise UserError(f"--keep-others: {files[label]} ({label}) changed since {path} measured it; add it to "
                            "--models or run without --keep-others")
    return {"order": list(old_models), "rows": kept}


def merge_rows(res: Dict, kept: Dict) -> Dict:
    """res with the kept rows in the earlier run's order (a row measured now in its old place, new ones last) and
    the INT8-vs-fp32 gaps computed again over all of them."""
    order = kept["order"] + [k for k in res["models"] if k not in kept["order"]]
    models = {k: res["models"].get(k) or kept["rows"][k] for k in order}
    return {**res, "models": models, "int8_vs_fp32": int8_gaps(models, res["severities"]),
            "kept_from_earlier_run": list(kept["rows"])}


def markdown(res: Dict) -> str:
    models = res["models"]
    sev = res["severities"]
    mid = sorted(sev)[len(sev) // 2]
    names = list(res["corruptions"])
    lines = [f"Pooled DSC on {res['n_images']} ISIC 2018 test images at {res['grid']}x{res['grid']}, severity {mid} "
             f"(of {', '.join(map(str, sev))}); mean drop over every corruption and severity, in DSC points.", "",
             "| model | clean | " + " | ".join(n.replace("_", " ") for n in names) + " | mean drop |",
             "|---|---:|" + "---:|" * len(names) + "---:|"]
    for label, r in models.items():
        cells = [f"{r['dsc']['clean']:.4f}"] + [f"{r['dsc'].get(f'{n}/{mid}', float('nan')):.4f}" for n in names]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {100 * r['mean_drop']:.2f} |")
    if res["int8_vs_fp32"]:
        lines += ["", f"INT8 against fp32 of the same runtime at severity {mid}: the largest DSC loss over the "
                  "corruptions (points; the target is at most 1).", "", "| INT8 file | largest loss | under |", "|---|---:|---|"]
        for label, g in res["int8_vs_fp32"].items():
            worst = min(g["points"], key=g["points"].get) if g["points"] else "-"
            lines.append(f"| {label} | {g['worst_loss']:.2f} | {worst.replace('_', ' ')} |")
    if res.get("kept_from_earlier_run"):
        lines += ["", "Measured in an earlier run with the same images, corruptions, threads and CPU, and kept "
                  "(`--keep-others`): " + ", ".join(res["kept_from_earlier_run"]) + "; the other rows were measured again."]
    return "\n".join(lines) + "\n"


def heatmap(res: Dict, path: Path) -> None:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = res["models"]
    cols = [f"{c}/{s}" for c in res["corruptions"] for s in res["severities"]]
    drop = np.array([[100 * (r["dsc"]["clean"] - r["dsc"][k]) for k in cols] for r in models.values()])
    fig, ax = plt.subplots(figsize=(max(8, 0.32 * len(cols) + 3), 0.45 * len(models) + 2.2))
    im = ax.imshow(drop, cmap="magma_r", aspect="auto", vmin=0)
    ax.set_yticks(range(len(models)), list(models))
    ax.set_xticks(range(len(cols)), [k.replace("_", " ").replace("/", " ") for k in cols], rotation=90, fontsize=7)
    fig.colorbar(im, ax=ax, label="DSC drop against clean (points)")
    ax.set_title(f"Corruptions of ISIC 2018 test ({res['n_images']} images), severities {res['severities']}")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


@user_errors
def main(argv: Optional[Sequence[str]] = None) -> Dict:
    from model.data.corruptions import CORRUPTIONS, SEVERITY_LEVELS

    p = ArgumentParser(description=__doc__.splitlines()[0], formatter_class=HelpFormatter)
    p.add_argument("--models", default=None,
                   help="comma-separated model files (default: the default checkpoint and each of its exports in exports/)")
    p.add_argument("--data", default=str(DEFAULT_DATA), help="dataset root (its test split is corrupted)")
    p.add_argument("--split", default="test", help="split to corrupt")
    p.add_argument("--count", type=int, default=0, help="use the first N images of the split (0 = all)")
    p.add_argument("--corruptions", default="all", help=f"comma-separated subset of: {', '.join(CORRUPTIONS)}")
    p.add_argument("--severities", default="1,2,3", help="comma-separated severities (1..3)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads per runtime (and for the corruptions)")
    p.add_argument("--jobs", type=int, default=1,
                   help="score this many files at once, one process each (--jobs x --threads cores busy; same figures)")
    p.add_argument("--out", default=None, help="folder for robustness.json/.md/.png (default: outputs/robustness/)")
    p.add_argument("--update-results", action="store_true", help="write the committed benchmarks/results/ copies")
    p.add_argument("--keep-others", action="store_true",
                   help="measure only --models and keep the other rows of the results already in --out (same images, "
                        "corruptions, severities, threads and CPU, files unchanged): to add or replace one export")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_verbose(p)
    args = p.parse_args(argv)
    check_ranges(args, {"count": 0, "threads": 1, "jobs": 1})
    corruptions = list(CORRUPTIONS) if args.corruptions == "all" else [c.strip() for c in args.corruptions.split(",") if c.strip()]
    unknown = [c for c in corruptions if c not in CORRUPTIONS]
    if unknown or not corruptions:
        raise UserError(f"--corruptions {args.corruptions}: unknown '{unknown[0] if unknown else ''}'; give 'all' or names from: {', '.join(CORRUPTIONS)}")
    try:
        severities = sorted({int(s) for s in args.severities.split(",") if s.strip()})
    except ValueError:
        severities = []
    if not severities or any(s not in SEVERITY_LEVELS for s in severities):
        raise UserError(f"--severities {args.severities}: give comma-separated values from {SEVERITY_LEVELS}, e.g. 1,2,3")
    files = [Path(f.strip()) for f in args.models.split(",") if f.strip()] if args.models else default_models()
    missing = [f for f in files if not f.is_file()]
    if missing or not files:
        raise UserError(f"--models: {missing[0] if missing else '(none)'} not found; give existing model files (.pt, .onnx, .xml, .tflite)")
    out = results_folder(args.update_results, args.out, DEFAULT_OUT, ("robustness.json", "robustness.md", "robustness.png"))
    ensure_writable_dir(out, "--out")

    from model.data import open_dataset
    from model.evaluation.provenance import refuse_training_images

    samples = open_dataset(args.data).subset(args.split)
    if args.count:
        samples = samples[: args.count]
    for f in files:
        refuse_training_images(f, samples, args.split)
    from core.machine import device_facts  # the CPU the figures came from

    facts = device_facts()
    run = {"data": Path(args.data).name, "split": args.split,
           **conditions_of(len(samples), corruptions, severities, args.threads), "cpu": {"name": facts["cpu"], "cores": facts["cores"], "machine": facts["machine"]}}
    kept = rows_to_keep(out / "robustness.json", run, [label_of(f) for f in files]) if args.keep_others else None
    res = measure(files, samples, corruptions, severities, args.threads, progress=not args.no_progress, verbose=args.verbose,
                  jobs=args.jobs)
    res.update({"data": run["data"], "split": run["split"], "cpu": run["cpu"]})
    if kept is not None:
        res = merge_rows(res, kept)
    md = markdown(res)
    write_results(out, "robustness", res, md)
    heatmap(res, out / "robustness.png")
    print(md)
    print(f"wrote {out / 'robustness.json'}, .md and .png" + ("" if args.update_results else
          " (the committed benchmarks/results/ copy is unchanged: --update-results replaces it)"))
    return res


if __name__ == "__main__":
    main()
