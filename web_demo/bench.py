"""Measure the browser runtimes in Chromium: `python web_demo/bench.py [--rounds 3] [--runs 30] [--threads 1,2]`.

For every file the page offers (onnxruntime-web on the .onnx files, LiteRT.js on the .tflite files, fp32 and
INT8) and every thread count, a fresh page loads the model, segments a real PH2 photo and times the model alone
on that photo's tensor (`--runs` after `--warmup`), and the whole pipeline (preprocess, model, probabilities,
mask) on its pixels. The sweep runs `--rounds` times, interleaved, and the latencies are pooled (the rounds'
medians are kept: this host is shared and noisy). The same files in their Python runtimes are timed the same way
between the browser runs, for reference. Parity, once per file: the logits on Python's own input tensor (max abs
diff) and the masks of `--parity-images` PH2 and ISIC 2018 val photos chosen through the page's file input
against `runtimes.load(file).predict` (mask IoU; gates 0.995 fp32, 0.98 INT8).

The default runtime rule: the fastest file (pooled median, model alone, at the page's default thread count) that
passes parity. Writes web_demo/results/chromium_wasm.{json,md} and the table in docs/web.md.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Dict, List

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.paths import EXPORTS_DIR, REPO, SHARED_DATA  # noqa: E402

import numpy as np  # noqa: E402

from core.machine import device_facts  # noqa: E402
from core.clitools import ArgumentParser, HelpFormatter, add_verbose, check_ranges, quiet, user_errors  # noqa: E402
from core.errors import UserError  # noqa: E402
from core.safeio import atomic_write_text  # noqa: E402
from web_demo import models  # noqa: E402

RESULTS = REPO / "web_demo" / "results"
DOC = REPO / "docs" / "web.md"
DATA = SHARED_DATA
GATES = {"none": 0.995, "int8": 0.98}
MAX_DIFF_FP32 = 1e-4
MARK_START, MARK_END = "<!-- web-results:start -->", "<!-- web-results:end -->"


def stats(ms: List[float]) -> Dict:
    a = np.asarray(ms, float)
    return {"median_ms": float(np.median(a)), "p90_ms": float(np.percentile(a, 90)), "min_ms": float(a.min()),
            "n_runs": int(a.size)}


def photos(count: int) -> List[Path]:
    from model.data import open_dataset

    out = []
    for name in ("ph2", "isic2018"):
        root = DATA / name
        if not (root / "images").is_dir():
            raise UserError(f"{root}: real data not found; the benchmark needs ../shared/data/{{ph2,isic2018}}")
        out += [s.image for s in open_dataset(root).subset("val")[:count]]
    return out


def python_ms(path: Path, threads: int, x: np.ndarray, runs: int, warmup: int) -> List[float]:
    import runtimes

    seg = runtimes.load(path, threads=threads)
    for _ in range(warmup):
        seg.run(x)
    ms = []
    for _ in range(runs):
        t0 = time.perf_counter()
        seg.run(x)
        ms.append((time.perf_counter() - t0) * 1000)
    return ms


def parity(page, path: Path, entry: Dict, images: List[Path]) -> Dict:
    import runtimes
    from model.data import load_rgb
    from core.preprocess import preprocess_image

    seg = runtimes.load(path, threads=1)
    ious = []
    for img in images:
        rgb = load_rgb(img)
        got = page.segment(img)
        if got is None:
            raise RuntimeError(f"{img}: the page refused it: {page.error_text()}")
        _, want = seg.predict(rgb)
        union = (got["mask"] | want).sum()
        ious.append(float((got["mask"] & want).sum() / union) if union else 1.0)
    x = preprocess_image(load_rgb(images[0]), entry["input_size"])  # the file's own size (the edge model: 128)
    xin = x.transpose(1, 2, 0) if entry["layout"] == "NHWC" else x
    diff = float(np.abs(page.run_tensor(xin) - seg.run(x[None])[0, 0]).max())
    gate = GATES[entry["quantize"]]
    ok = min(ious) >= gate and (entry["quantize"] != "none" or diff <= MAX_DIFF_FP32)
    return {"images": [p.name for p in images], "mask_iou_mean": float(np.mean(ious)), "mask_iou_min": float(min(ious)),
            "logits_max_abs_diff": diff, "iou_gate": gate, "pass": bool(ok)}


def measure(args) -> Dict:
    from model.data import load_rgb
    from core.preprocess import preprocess_image
    from web_demo.browser import Page, chromium
    from web_demo.build import build, pinned_versions
    from web_demo.serve import Server

    site = Path(args.site)
    with quiet(args.verbose):
        manifest = build(site)
    images = photos(args.parity_images)
    rgb0 = load_rgb(images[0])
    tensors = {size: preprocess_image(rgb0, size)[None] for size in {e["input_size"] for e in manifest["models"]}}
    threads = [int(t) for t in args.threads.split(",")]
    rows: Dict[str, Dict] = {}
    parities: Dict[str, Dict] = {}
    load_before = os.getloadavg()
    t_start = time.time()
    with Server(site) as server, chromium() as browser:
        for r in range(args.rounds):
            for entry in manifest["models"]:
                for t in threads:
                    key = f"{entry['file']}@{t}"
                    row = rows.setdefault(key, {"file": entry["file"], "runtime": entry["runtime"],
                                                "quantize": entry["quantize"], "threads": t, "model_ms": [],
                                                "end_to_end_ms": [], "python_ms": [], "round_medians": [],
                                                "load_ms": []})
                    page = Page(browser, server.url, f"model={entry['file']}&threads={t}&sw=0")
                    try:
                        info = page.wait_ready()
                        if info["threads"] != t:
                            raise RuntimeError(f"{key}: the page ran {info['threads']} threads")
                        row["load_ms"].append(info["loadMs"])
                        row["runtime_name"] = info["runtime"]
                        if page.segment(images[0]) is None:
                            raise RuntimeError(f"{images[0]}: {page.error_text()}")
                        ms = page.bench(args.runs, args.warmup, args.warmup_s)
                        row["model_ms"] += ms
                        row["round_medians"].append(float(np.median(ms)))
                        row["end_to_end_ms"] += page.bench_end_to_end(max(5, args.runs // 3))
                        if r == 0 and t == max(threads):
                            parities[entry["file"]] = parity(page, EXPORTS_DIR / entry["file"], entry, images)
                        errors, foreign = page.console_errors, page.foreign_requests()
                        if errors or foreign:
                            raise RuntimeError(f"{key}: console errors {errors[:3]} / requests off the origin {foreign[:3]}")
                    finally:
                        page.close()
                    with quiet(args.verbose):
                        row["python_ms"] += python_ms(EXPORTS_DIR / entry["file"], t, tensors[entry["input_size"]],
                                                      args.runs, args.warmup)
                    print(f"round {r + 1}/{args.rounds} {key}: median {np.median(ms):.2f} ms", flush=True)
        chromium_version = browser.version
    out_rows = []
    for row in rows.values():
        out_rows.append({**{k: row[k] for k in ("file", "runtime", "runtime_name", "quantize", "threads")},
                         "model": stats(row["model_ms"]), "round_medians_ms": row["round_medians"],
                         "end_to_end": stats(row["end_to_end_ms"]), "python": stats(row["python_ms"]),
                         "load_ms_median": float(np.median(row["load_ms"])), "parity": parities[row["file"]]})
    return {
        "schema": "aulunet-web-benchmark/1",
        "device": {**device_facts(), "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
                   "note": args.note},
        "browser": {"chromium": chromium_version, "headless": True, "cross_origin_isolated": True,
                    "npm": pinned_versions()},
        "settings": {"rounds": args.rounds, "runs": args.runs, "warmup": args.warmup, "warmup_s": args.warmup_s,
                     "threads": threads,
                     "photo": images[0].name, "parity_images": len(images)},
        "wall_s": time.time() - t_start,
        "rows": out_rows,
        "ratios": paired_ratios(out_rows, threads),
    }


def model_of(file: str) -> str:
    """Which model of models.STEMS an offered file belongs to ('' for a file the page does not offer)."""
    return next((stem for stem in models.STEMS if any(file == models.filename(f, q, stem) for f, q in models.OFFERED)), "")


def choose_default(res: Dict) -> Dict:
    """The default-runtime rule on measured results: among the default model's files that pass parity, the
    fastest (pooled median of the model alone) at the page's default thread count (the largest measured); with
    the runner-up and their paired per-round ratio, and the shipped default (web_demo/models.py) for comparison.
    The edge model's files are faster by design and are not candidates: the page opens the default model.
    A choice other than the shipped default replaces it only when it was faster in every round (`switch`): the
    rounds' medians differ by tens of percent on a shared host, and a default should not follow the noise."""
    threads = max(r["threads"] for r in res["rows"])
    passing = sorted((r for r in res["rows"] if r["threads"] == threads and r["parity"]["pass"]
                      and model_of(r["file"]) == models.STEM), key=lambda r: r["model"]["median_ms"])
    out = {"rule": f"fastest file passing parity at {threads} threads (pooled median, model alone)",
           "shipped": models.default_file().name, "chosen": None, "runner_up": None}
    if passing:
        out["chosen"] = {"file": passing[0]["file"], "runtime": passing[0]["runtime"]}
    if len(passing) > 1:
        a, b = passing[0], passing[1]
        ratios = [x / y for x, y in zip(a["round_medians_ms"], b["round_medians_ms"])]
        out["runner_up"] = {"file": b["file"], "runtime": b["runtime"], "paired_ratio_median": float(np.median(ratios)),
                            "per_round": ratios, "rounds_faster": sum(r < 1 for r in ratios),
                            "end_to_end_ms": [a["end_to_end"]["median_ms"], b["end_to_end"]["median_ms"]]}
    shipped = next((r for r in passing if r["file"] == out["shipped"]), None)
    if passing and shipped is not None and passing[0] is not shipped:
        ratios = [x / y for x, y in zip(passing[0]["round_medians_ms"], shipped["round_medians_ms"])]
        out["vs_shipped"] = {"per_round": ratios, "switch": all(r < 1 for r in ratios)}
    return out


def paired_ratios(rows: List[Dict], threads: List[int]) -> List[Dict]:
    """LiteRT.js / onnxruntime-web per model, quantization and thread count: the median of the rounds' ratios (each
    round's two pages ran seconds apart, so the ratio is steadier than the pooled medians)."""
    out = []
    for stem in models.STEMS:
        for q in ("none", "int8"):
            for t in threads:
                pair = {r["runtime"]: r["round_medians_ms"] for r in rows
                        if model_of(r["file"]) == stem and r["quantize"] == q and r["threads"] == t}
                if {"litert.js", "onnxruntime-web"} <= set(pair):
                    ratios = [a / b for a, b in zip(pair["litert.js"], pair["onnxruntime-web"])]
                    out.append({"model": stem, "quantize": q, "threads": t, "litert_over_ort": float(np.median(ratios)),
                                "per_round": ratios})
    return out


def markdown(res: Dict) -> str:
    d, b = res["device"], res["browser"]
    lines = [
        f"Chromium {b['chromium']} headless, cross-origin isolated; {d['cpu']} ({d['machine']}, {d['cores']} cores), "
        f"{d['os']}; onnxruntime-web {b['npm']['onnxruntime-web']}, @litertjs/core {b['npm']['@litertjs/core']}. "
        f"Load average {d['loadavg_before'][0]:.1f} before, {d['loadavg_after'][0]:.1f} after"
        + (f" ({d['note']})" if d.get("note") else "") + ".",
        f"{res['settings']['rounds']} interleaved rounds x {res['settings']['runs']} runs per page after a warm-up of "
        f">= {res['settings']['warmup']} runs and >= {res['settings']['warmup_s']:g} s, pooled; model alone on the tensor of "
        f"{res['settings']['photo']} (765x572); end to end = preprocess + model + probabilities + mask on its pixels; "
        f"Python = the same file in its Python runtime, same threads, timed between the browser pages.",
        "",
        "| runtime | file | threads | median ms | p90 ms | min ms | round medians ms | end-to-end median ms | Python median ms "
        f"| logits max diff vs Python | mask IoU vs Python, mean / min ({res['settings']['parity_images']} photos) | parity |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---|---|",
    ]
    for r in sorted(res["rows"], key=lambda r: (r["quantize"] != "none", r["runtime"], r["threads"])):
        p = r["parity"]
        lines.append(
            f"| {r['runtime']} | {r['file']} | {r['threads']} | {r['model']['median_ms']:.1f} | {r['model']['p90_ms']:.1f} "
            f"| {r['model']['min_ms']:.1f} | {' / '.join(f'{m:.1f}' for m in r['round_medians_ms'])} "
            f"| {r['end_to_end']['median_ms']:.1f} | {r['python']['median_ms']:.1f} | {p['logits_max_abs_diff']:.1e} "
            f"| {p['mask_iou_mean']:.4f} / {p['mask_iou_min']:.4f} | {'pass' if p['pass'] else 'FAIL'} |")
    lines += ["", "| model | LiteRT.js / onnxruntime-web | threads | median of per-round ratios | per round |",
              "|---|---|---:|---:|---|"]
    for q in res["ratios"]:
        lines.append(f"| {q.get('model', '')} | {'fp32' if q['quantize'] == 'none' else 'INT8'} | {q['threads']} | "
                     f"{q['litert_over_ort']:.2f}x | {' / '.join(f'{v:.2f}' for v in q['per_round'])} |")
    d = choose_default(res)
    c, u = d["chosen"], d["runner_up"]
    lines += ["", f"Rule: {d['rule']}. Measured choice: " + (f"**{c['file']}** on {c['runtime']}" if c else "none passed")
              + f"; shipped default: **{d['shipped']}**."]
    if d.get("vs_shipped"):
        v = d["vs_shipped"]
        lines.append(f"The choice against the shipped default, per round: {' / '.join(f'{r:.2f}' for r in v['per_round'])}x; "
                     + ("faster in every round: make it web_demo/models.py DEFAULT." if v["switch"] else
                        "not faster in every round, so the default stays (a default does not follow the noise)."))
    if u:
        lines.append(f"Runner-up: {u['file']} on {u['runtime']}; the choice took {u['paired_ratio_median']:.2f}x its time "
                     f"(median of the per-round ratios; faster in {u['rounds_faster']} of {len(u['per_round'])} rounds), "
                     f"end to end {u['end_to_end_ms'][0]:.1f} vs {u['end_to_end_ms'][1]:.1f} ms.")
    lines.append(f"Whole run: {res['wall_s']:.0f} s.")
    return "\n".join(lines) + "\n"


def update_doc(doc: Path, table: str) -> None:
    text = doc.read_text() if doc.is_file() else ""
    if MARK_START not in text or MARK_END not in text:
        raise UserError(f"{doc}: no {MARK_START} ... {MARK_END} section to write the table into; restore the markers")
    head, rest = text.split(MARK_START, 1)
    _, tail = rest.split(MARK_END, 1)
    atomic_write_text(doc, f"{head}{MARK_START}\n{table}{MARK_END}{tail}")


@user_errors
def main(argv=None) -> None:
    p = ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds over every page and thread count")
    p.add_argument("--runs", type=int, default=30, help="timed runs per page (>= 20)")
    p.add_argument("--warmup", type=int, default=5, help="warm-up runs per page (at least)")
    p.add_argument("--warmup-s", type=float, default=3.0,
                   help="warm-up seconds per page (at least): V8 tiers WebAssembly up in the background")
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    p.add_argument("--parity-images", type=int, default=5, help="val photos per dataset (PH2, ISIC 2018) for parity")
    p.add_argument("--note", default="", help="what else ran on the machine (goes into the results)")
    p.add_argument("--site", default=str(REPO / "web_demo" / "dist"), help="where the site is assembled")
    p.add_argument("--out", default=None, help="results JSON (default: outputs/web/chromium_wasm.json; "
                   "--update-results: the committed benchmarks/results/chromium_wasm.json)")
    p.add_argument("--doc", default=None, help="Markdown file whose marked section gets the table "
                   "(default: none; --update-results: docs/web.md)")
    p.add_argument("--update-results", action="store_true",
                   help="write the committed results and docs/web.md's table instead of outputs/web/")
    p.add_argument("--render-only", action="store_true",
                   help="rewrite the Markdown (and the ratios derived from the rows) from the --out JSON, measure nothing")
    add_verbose(p)
    args = p.parse_args(argv)
    check_ranges(args, {"rounds": 1, "runs": 20, "warmup": 0, "warmup_s": 0.0, "parity_images": 1})
    try:
        threads = [int(t) for t in args.threads.split(",")]
    except ValueError:
        threads = []
    if not threads or min(threads) < 1:
        raise UserError(f"--threads {args.threads}: give comma-separated positive counts, e.g. 1,2")
    from core.safeio import guard_committed

    if args.update_results and (args.out or args.doc):
        raise UserError("--update-results writes benchmarks/results/chromium_wasm.json and docs/web.md; drop --out/--doc")
    out = RESULTS / "chromium_wasm.json" if args.update_results else Path(args.out or REPO / "outputs" / "web" / "chromium_wasm.json")
    doc = DOC if args.update_results else (Path(args.doc) if args.doc else None)
    for path in (out, out.with_suffix(".md"), doc):
        if path is not None:
            guard_committed(path, "--update-results", args.update_results, "pass --out/--doc under outputs/")
    if args.render_only:
        if not out.is_file():
            raise UserError(f"--out {out}: no results to render; run without --render-only first")
        res = json.loads(out.read_text())
        res["ratios"] = paired_ratios(res["rows"], res["settings"]["threads"])  # derived: computed again
        atomic_write_text(out, json.dumps(res, indent=1) + "\n")
    else:
        res = measure(args)
        atomic_write_text(out, json.dumps(res, indent=1) + "\n")
    table = markdown(res)
    atomic_write_text(out.with_suffix(".md"), table)
    if doc is not None:
        update_doc(doc, table)
    print(table)
    d = choose_default(res)
    if d.get("vs_shipped", {}).get("switch"):
        print(f"note: {d['chosen']['file']} was faster than the shipped default {d['shipped']} in every round: "
              "make it web_demo/models.py DEFAULT")


if __name__ == "__main__":
    main()
