"""Regenerate the measured tables of README.md and docs/*.md from the results JSON committed in the repository.

`python docs/generate.py` rewrites every block between `<!-- generated:NAME -->` and `<!-- /generated:NAME -->`;
`python docs/generate.py --check` changes nothing and exits 1 if a committed file differs from what the JSON
gives (tests/docs/test_generate.py runs it, so the docs cannot drift from the numbers). The prose around the blocks is
written by hand. Sources:

  model/weights/<name>.metrics.json       python model/evaluate.py --json (the checkpoint's val metrics)
  model/weights/<name>.train_log.json     the run's log.json from model/train.py (every epoch)
  exports/*.numerics.json, *.summary.json python export/all.py
  exports/int8_recipes_<model>.json       python export/int8_recipes.py --update-results (default model's INT8 recipes)
  benchmarks/results/<device>.json        python benchmarks/run.py --update-results
  benchmarks/results/profile_ops_host.json  python benchmarks/profile_ops.py --json
  benchmarks/results/train_speed_cpu.json python benchmarks/train_speed.py --json
  model/weights/protocol_results.json     python model/protocol.py --save (val/test/cross-dataset rows)

ISIC 2018 / ISIC 2017: their rows fill in by themselves once `model/weights/aulunet_v3_isic2018.metrics.json`
(and `.train_log.json`; the same for isic2017) are committed, and their export columns once
`exports/aulunet_v3_isic2018*.numerics.json` are; until then the tables say "pending". The web demo's row
comes from web_demo/results/chromium_wasm.json, which web_demo/bench.py writes (web_demo_row below).
"""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.clitools import user_errors  # noqa: E402
from core.errors import UserError  # noqa: E402
from core.paths import EXPORTS_DIR as EXPORTS, REPO, WEIGHTS_DIR as WEIGHTS  # noqa: E402,F401
from docs.tables import (DATASETS, PENDING, RESULTS, SHIPPED, WEB_RESULTS, _bench_names, _f, _json, _title,  # noqa: E402,F401
                         _val_metrics)
from benchmarks.pareto import markdown as pareto_markdown  # noqa: E402
from benchmarks.postprocess import markdown as postprocess_markdown  # noqa: E402
from benchmarks.robust_recipes import markdown as recipes_markdown  # noqa: E402
from benchmarks.robustness import markdown as robustness_markdown  # noqa: E402
from benchmarks.tta import markdown as tta_markdown  # noqa: E402
from docs.training_blocks import checkpoints, isic_runs, paper, ph2_run, protocol, schedules, train_speed  # noqa: E402

BLOCK = re.compile(r"(<!-- generated:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /generated:(?P=name) -->)", re.S)


# ------------------------------------------------------------------ README: the headline table


def headline() -> str:
    """The default model's formats: val accuracy, size and latency; the other shipped models' val DSC beside."""
    from core.paths import DEFAULT_MODEL, SHIPPED as MODELS

    host = _json(RESULTS / "host.json")
    label = dict(DATASETS)
    others = [m for m in MODELS if MODELS[m] != MODELS[DEFAULT_MODEL]  # the other datasets' models that are exported
              and any(EXPORTS.glob(f"{m}*.numerics.json"))]
    by = {(r["name"], r["threads"]): r for r in host["results"] if "error" not in r}
    ds = label[MODELS[DEFAULT_MODEL]]
    rows = [f"| format | file KB | {ds} val DSC | {ds} val mIoU | "
            + "".join(f"{label[MODELS[m]]} model, its val DSC | " for m in others)
            + "p50 ms, 1 / 2 threads | end-to-end ms, 1 / 2 threads |",
            "|---|---:|---:|---:|" + "---:|" * len(others) + "---:|---:|"]
    for name, suffix in _bench_names().items():
        one, two = by.get((name, 1)), by.get((name, 2))
        m = _val_metrics(DEFAULT_MODEL, name, suffix)
        if m is None or not (one or two):  # a row per file both exported and measured in host.json
            continue
        size = (one or two or {}).get("file_bytes")
        cells = [_title(name), "" if size is None else f"{size / 1024:.0f}", f"{m['dsc']:.4f}", f"{m['miou']:.4f}"]
        cells += [format((_val_metrics(o, name, suffix) or {}).get("dsc") or float("nan"), ".4f").replace("nan", "")
                  for o in others]  # blank where that model has no such file
        cells += [f"{_f(one and one['p50_ms'], '.1f')} / {_f(two and two['p50_ms'], '.1f')}",
                  f"{_f(one and one['e2e_p50_ms'], '.1f')} / {_f(two and two['e2e_p50_ms'], '.1f')}"]
        rows.append("| " + " | ".join(cells) + " |")
    rows.append(web_demo_row(len(others)))
    d, pt = host["device"], _json(WEIGHTS / f"{DEFAULT_MODEL}.metrics.json")
    rows += ["", f"Latency: {d.get('cpu')} ({d['cores']} cores, shared and noisy), one 256x256 image per call, p50 pooled over "
                 f"{host['settings']['rounds']} interleaved rounds (`benchmarks/results/host.json`); end-to-end is "
                 f"`Segmenter.predict` on a {'x'.join(map(str, by[('torch', 1)]['e2e_image_size'][::-1]))} photo. "
                 f"{ds} val: {pt['n_images']} images, one confusion matrix pooled at 256x256, threshold 0.5. "
                 f"Other models: those with committed exports, each on its own val split."
                 + (f" Conditions: {host['note']}" if host.get("note") else "")]
    return "\n".join(rows)


# ------------------------------------------------------------------ docs/training.md


def web_demo_row(others: int = 0) -> str:
    """The web demo's default file in Chromium (model alone and end to end, 1 / 2 threads)."""
    data = _json(WEB_RESULTS)
    if not data:
        return "| Chromium WASM, this host | | | | " + "| " * others + "pending | pending |"
    from web_demo.models import DEFAULT, default_file

    fmt, quant = DEFAULT
    rows = {r["threads"]: r for r in data["rows"] if r["file"] == default_file().name}  # not the edge model's file
    one, two = rows.get(1), rows.get(2)
    name = (one or two)["runtime_name"].split(" (")[0] if (one or two) else fmt
    ms = lambda r, k: _f(r and r[k]["median_ms"], ".1f")  # noqa: E731
    cpu = data.get("device", {}).get("cpu") or "its own host"
    return (f"| Chromium WASM on {cpu} ({name} {quant.upper() if quant != 'none' else 'fp32'}, the web demo's default, "
            f"measured apart from the rows above; "
            f"[docs/web.md](docs/web.md)) | | same masks as the file in Python | | {'| ' * others}{ms(one, 'model')} / {ms(two, 'model')} | "
            f"{ms(one, 'end_to_end')} / {ms(two, 'end_to_end')} |")


# ------------------------------------------------------------------ docs/export.md, docs/benchmarks.md

def formats() -> str:
    from core.formats import markdown_table

    return markdown_table()


def exports(model: Optional[str] = None) -> str:
    """The table of one model's committed exports, from each file's numerics JSON, in format-table order."""
    from export.all import summary_markdown, summary_rows
    from core.paths import DEFAULT_MODEL

    rows = summary_rows(EXPORTS, model or DEFAULT_MODEL)
    return summary_markdown(rows) if rows else PENDING


def int8_recipes(model: Optional[str] = None) -> str:
    """The INT8 recipe table of one model (default: core/paths.py's); the by-hand column only for PH2, where
    it was measured."""
    from export.int8_recipes import markdown, results_name
    from core.paths import DEFAULT_MODEL

    model = model or DEFAULT_MODEL
    return markdown(_json(EXPORTS / results_name(model)), earlier=model == SHIPPED)


def int8_fastest(model: Optional[str] = None) -> str:
    """Per format, the fastest INT8 recipe that passes its gate, beside the shipped one (exports/int8_recipes_*.json)."""
    from core.formats import FORMATS
    from export.int8_recipes import fastest_passing, int8_verdict, results_name
    from core.paths import DEFAULT_MODEL

    res = _json(EXPORTS / results_name(model or DEFAULT_MODEL))
    if not res:
        return PENDING
    rows = ["| format | fastest passing recipe | ms (x fp32) | shipped recipe | ms (x fp32) | on this CPU |",
            "|---|---|---:|---|---:|---|"]
    ms = lambda r: f"{r['latency_ms']:.1f} ({r['latency_vs_fp32']:.2f}x)" if r and r.get("latency_ms") is not None else ""  # noqa: E731
    for key, (best, shipped) in fastest_passing(res).items():
        rows.append(f"| {FORMATS[key].title} | {best['recipe'] if best else 'none passes'} | {ms(best)} | "
                    f"{shipped['recipe'] if shipped else ''} | {ms(shipped)} | {int8_verdict(best)} |")
    rows += ["", f"{res['cpu']['model']}; latency: median of {res['timing']['rounds']} interleaved single-image calls at "
                 f"1 thread ({res['timing']['note']})."]
    return "\n".join(rows)


def int8_vs_fp32() -> str:
    """Per runtime with an INT8 file, from the host run: INT8's p50 over its fp32 file's and over LiteRT INT8's
    (the same XNNPACK kernels behind ExecuTorch and LiteRT), per thread count, paired per round."""
    from benchmarks.recommend import int8_verdicts
    from benchmarks.targets import ratio
    from core.formats import FORMATS

    res = _json(RESULTS / "host.json")
    if res is None:
        return PENDING
    ok = [r for r in res["results"] if "p50_ms" in r]
    by = {(r["name"], r["threads"]): r for r in ok}
    threads = sorted({r["threads"] for r in ok})
    rows = ["| runtime | " + " | ".join(f"fp32 / INT8 p50 ms, {t}t" for t in threads) + " | "
            + " | ".join(f"INT8 x fp32, {t}t" for t in threads) + " | " + " | ".join(f"INT8 x LiteRT INT8, {t}t" for t in threads)
            + " |", "|---|" + "---:|" * (3 * len(threads))]
    for v in int8_verdicts(ok):
        fp32, q = v["runtime"], v["runtime"] + "-int8"
        cells = [f"{by[(fp32, t)]['p50_ms']:.2f} / {by[(q, t)]['p50_ms']:.2f}" if (fp32, t) in by and (q, t) in by else ""
                 for t in threads]
        cells += [f"{v['int8_over_fp32'][t]:.2f}" if t in v["int8_over_fp32"] else "" for t in threads]
        cells += [f"{ratio(by[(q, t)], by[('tflite-int8', t)])[0]:.2f}" if (q, t) in by and ("tflite-int8", t) in by else ""
                  for t in threads]
        rows.append(f"| {FORMATS[fp32].title} | " + " | ".join(cells) + " |")
    rows += ["", *[f"- {v['advice']}" for v in int8_verdicts(ok)], "",
             f"{res['device'].get('cpu')}, {res['settings']['rounds']} interleaved rounds, ratios the median of the "
             f"per-round ratios (`benchmarks/results/host.json`)."]
    return "\n".join(rows)


def _result_block(name: str, render: Callable[[Dict], str]) -> Callable[[], str]:
    """The block of one benchmark's result: its own markdown() over benchmarks/results/<name>.json."""
    def block() -> str:
        res = _json(RESULTS / f"{name}.json")
        return PENDING if res is None else render(res)
    return block


def edge_headline() -> str:
    """README: one row per model of the default dataset: test DSC, PH2, params, GFLOPs, best file at 1 thread."""
    res = _json(RESULTS / "pareto.json")
    if res is None:
        return PENDING
    ref, v = res["reference"], res["verdict"]
    rows = ["| model | ISIC 2018 test DSC / mIoU | PH2 (150) DSC | params | GFLOPs | its fastest file, p50 at 1 thread | x v3's fastest |",
            "|---|---:|---:|---:|---:|---|---:|"]
    for m, info in res["models"].items():
        a, x = info["accuracy"], v[m]
        name = f"**{m}**" if m == res["fastest_within_margin"] else m
        rows.append(f"| {name} | {a['test']['dsc']:.4f} / {a['test']['miou']:.4f} | {a['ph2']['dsc']:.4f} | "
                    f"{info['params']:,} | {info['gflops']:.4f} | `{x['best_file']}` {x['best_p50_ms_1t']:.2f} ms | "
                    f"{x['best_vs_reference_best_1t']:.2f} |")
    rows += ["", f"Bold: the fastest model within {res['settings']['dsc_margin_points']:g} DSC points of {ref} on test. "
             f"{res['device'].get('cpu')}, one interleaved run (`benchmarks/results/pareto.json`, "
             f"`python benchmarks/pareto.py --update-results`); every runtime and thread count: "
             f"[docs/benchmarks.md](docs/benchmarks.md#edge-models-latency-against-accuracy)."]
    return "\n".join(rows)


def _bench(device: str) -> str:
    from benchmarks.run import markdown

    return markdown(_json(RESULTS / f"{device}.json"))


def _profile(suffix: str) -> str:
    from benchmarks.profile_ops import markdown

    flat = _json(RESULTS / "profile_ops_host.json")
    return markdown({k: v for k, v in flat.items() if k.endswith(suffix)})


BLOCKS: Dict[str, Callable[[], str]] = {
    "headline": headline,
    "checkpoints": checkpoints,
    "ph2-run": ph2_run,
    "schedules": schedules,
    "isic-runs": isic_runs,
    "paper": paper,
    "protocol": protocol,
    "train-speed": train_speed,
    "formats": formats,
    "exports": exports,
    "int8-recipes": int8_recipes,
    "int8-recipes-ph2": lambda: int8_recipes(SHIPPED),
    "host": lambda: _bench("host"),
    "pareto": _result_block("pareto", pareto_markdown),
    "tta": _result_block("tta", tta_markdown),
    "robustness": _result_block("robustness", robustness_markdown),
    "robust-recipes": _result_block("robust_recipes", recipes_markdown),
    "postprocess": _result_block("postprocess", postprocess_markdown),
    "int8-vs-fp32": int8_vs_fp32,
    "int8-fastest": int8_fastest,
    "edge-headline": edge_headline,
    "arm-emu": lambda: _bench("arm-emu"),
    "profile-onnx": lambda: _profile(".onnx"),
    "profile-openvino": lambda: _profile(".xml"),
}
FILES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def render(text: str, where: str = "") -> str:
    def fill(m: re.Match) -> str:
        name = m.group("name")
        if name not in BLOCKS:
            raise UserError(f"{where}: unknown generated block '{name}'; known: {', '.join(BLOCKS)}")
        return f"{m.group(1)}{BLOCKS[name]().rstrip()}\n{m.group(4)}"
    return BLOCK.sub(fill, text)


def stale(files: Sequence[Path] = FILES) -> List[Path]:
    """Files whose generated blocks differ from what the committed JSON gives."""
    return [f for f in files if render(f.read_text(), str(f)) != f.read_text()]


@user_errors
def main(argv: Optional[Sequence[str]] = None) -> List[Path]:
    from core.clitools import ArgumentParser, HelpFormatter
    from core.safeio import atomic_write_text

    p = ArgumentParser(description=__doc__.splitlines()[0], formatter_class=HelpFormatter)
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file is out of date")
    args = p.parse_args(argv)
    changed = stale()
    if args.check:
        if changed:
            raise UserError("out of date: " + ", ".join(str(f.relative_to(REPO)) for f in changed)
                             + "; run python docs/generate.py")
        print("docs are up to date")
        return []
    for f in changed:
        atomic_write_text(f, render(f.read_text(), str(f)))
        print(f"updated {f.relative_to(REPO)}")
    return changed


if __name__ == "__main__":
    main()
