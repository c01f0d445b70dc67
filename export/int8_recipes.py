"""Re-measure the INT8 recipes of every format on a checkpoint: one command instead of hand-made scripts.

`python export/int8_recipes.py [--weights W] [--formats onnx,tflite,openvino] [--recipes a,b] [--out DIR] [--update-results]`

Each recipe (the RECIPES table in this file, --list shows it: a name, a format, the keyword arguments given
to the exporter's quantize function) is built with the exporter's own `build` from the checkpoint's rewritten graph, calibrated on the
checkpoint's own training split (export/calibration.py), run in its real runtime on the checkpoint's val split
and compared with the PyTorch fp32 checkpoint by export/parity.py: mean per-image mask IoU, pooled DSC change,
flipped pixels, and the INT8 gate. A short interleaved timing (1 thread, single image) gives each file's median
latency beside the same format's fp32 file; it runs on a shared machine, so it is noisy. The shipped recipe of
each format is marked: it is what export/to_<format>.py --quantize int8 writes.

--retime times the files of the run already in --out again, without building or scoring them: build on a busy
machine with --timing-rounds 0, then retime on a quiet one (export/recipe_timing.py).

Writes <out>/int8_recipes_<checkpoint>.json and .md (and the built files under <out>/<checkpoint>/);
--update-results also writes the committed copy exports/int8_recipes_<checkpoint>.json, which docs/generate.py
renders into docs/export.md for the default model.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.clitools import user_errors
from core.errors import UserError
from core.formats import EXPORT_PACKAGES, FORMATS, model_files
from export import exporter
from export.recipe_timing import load_words, retime, time_recipes, timing_block
from core.paths import DEFAULT_WEIGHTS, EXPORTS_DIR, REPO, repo_relative

DEFAULT_OUT = REPO / "outputs" / "int8_recipes"
TFL_STEM = r"Sequential_stem/(?:[\w.]+\.)?Conv2d_0"  # the one 3x3 CONV_2D (the stem), long or shortened names
OV_GATE = ".*/gate/.*"
EVERY_CONV = {"skip_depthwise": False, "exclude": None}  # ONNX Runtime's earlier shipped recipe: every Conv INT8


@dataclass(frozen=True)
class Recipe:
    name: str          # unique, used by --recipes and as the file name
    format: str        # key of core/formats.py FORMATS
    description: str
    params: Dict = field(default_factory=dict)  # keyword arguments of export/to_<format>.py quantize_int8
    shipped: bool = False  # what the exporter writes with --quantize int8 (params == its defaults)
    earlier: str = ""  # what docs/export.md had measured by hand on PH2 (mask IoU / DSC change), for comparison


RECIPES: List[Recipe] = [
    Recipe("onnx-per-tensor", "onnx", "quantize_static QDQ, Conv only, MinMax, per-tensor weights",
           EVERY_CONV, earlier="0.983 / -0.13 pt"),
    Recipe("onnx-per-channel", "onnx", "quantize_static QDQ, Conv only, MinMax, per-channel weights",
           {**EVERY_CONV, "per_channel": True}, earlier="0.77 / -8 pt"),
    Recipe("onnx-per-channel-no-gates", "onnx", "per-channel weights, the AKF gate convs kept float",
           {"per_channel": True, "skip_depthwise": False}),
    Recipe("onnx-1x1-and-stem", "onnx", "per-tensor, the depthwise convs kept float (1x1 convs and the 3x3 stem INT8)",
           {"exclude": None}),
    Recipe("onnx-1x1-and-stem-no-gates", "onnx", "per-tensor, the depthwise and AKF gate convs kept float", {}, True),
    Recipe("tflite-library-default", "tflite", "ai-edge-quantizer static int8, every op the library supports",
           {"ops": ("*",), "float_layers": None}, earlier="0.948 / -1.65 pt"),
    Recipe("tflite-all-but-gates", "tflite", "every supported op except the AKF gate convs",
           {"ops": ("*",)}, earlier="0.957 / -1.23 pt"),
    Recipe("tflite-convs-per-tensor", "tflite", "all CONV_2D + DEPTHWISE_CONV_2D, per-tensor weights",
           {"float_layers": None, "granularity": "tensorwise"}, earlier="0.937 / -2.29 pt"),
    Recipe("tflite-depthwise-only", "tflite", "DEPTHWISE_CONV_2D only, per-tensor weights",
           {"ops": ("DEPTHWISE_CONV_2D",), "float_layers": None, "granularity": "tensorwise"}, earlier="0.994 / +0.01 pt"),
    Recipe("tflite-1x1-only", "tflite", "1x1 CONV_2D only (every CONV_2D but the 3x3 stem), per-tensor weights",
           {"ops": ("CONV_2D",), "float_layers": TFL_STEM, "granularity": "tensorwise"}, earlier="0.939 / -2.16 pt"),
    Recipe("tflite-no-gates-per-tensor", "tflite", "convs except the AKF gate convs, per-tensor weights",
           {"granularity": "tensorwise"}, earlier="0.987 / -0.15 pt"),
    Recipe("tflite-no-gates-per-channel", "tflite", "convs except the AKF gate convs, per-channel weights", {}, True,
           "0.993 / -0.03 pt"),
    Recipe("tflite-1x1-and-stem", "tflite", "CONV_2D only (1x1 convs and the 3x3 stem), the AKF gate convs float, "
           "per-channel weights", {"ops": ("CONV_2D",)}),
    Recipe("tflite-dynamic-range", "tflite", "dynamic range: int8 weights (per channel), float activations, every op",
           {"ops": ("*",), "float_layers": None, "mode": "dynamic"}, earlier="0.997 / +0.01 pt"),
    Recipe("openvino-ort-qdq", "openvino", "the ONNX Runtime QDQ model (onnx-per-tensor) converted to IR",
           {"method": "ort-qdq", **EVERY_CONV}, earlier="0.982 / -0.17 pt"),
    Recipe("openvino-nncf-default", "openvino", "nncf.quantize on the fp32 IR, defaults",
           {"method": "nncf", "ignored_types": (), "ignored_patterns": ()}, earlier="0.949 / -1.3 pt"),
    Recipe("openvino-nncf-no-mul-sub", "openvino", "nncf, Multiply and Subtract ignored",
           {"method": "nncf", "ignored_types": ("Multiply", "Subtract"), "ignored_patterns": ()}, earlier="0.958 / -0.92 pt"),
    Recipe("openvino-nncf-no-gates", "openvino", "nncf, AKF gate convs ignored",
           {"method": "nncf", "ignored_types": (), "ignored_patterns": (OV_GATE,)}, earlier="0.954 / -0.88 pt"),
    Recipe("openvino-nncf-no-gates-mul-sub", "openvino", "nncf, AKF gate convs, Multiply and Subtract ignored",
           {"method": "nncf", "ignored_types": ("Multiply", "Subtract"), "ignored_patterns": (OV_GATE,)},
           earlier="0.965 / -0.65 pt"),
    Recipe("openvino-nncf-convs-only", "openvino",
           "nncf, only convolutions (gates, elementwise, pooling, resize, concat ignored)",
           {"method": "nncf", "ignored_types": ("Multiply", "Subtract", "Add", "AvgPool", "ReduceMean", "Interpolate",
                                                "Concat"), "ignored_patterns": (OV_GATE,)}, earlier="0.967 / -0.57 pt"),
    Recipe("openvino-nncf-1x1-and-stem", "openvino",
           "nncf, only the 1x1 convs and the 3x3 stem (depthwise, gates, elementwise, pooling, resize, concat ignored)",
           {}, True),
    Recipe("openvino-nncf-no-slow-ops", "openvino",
           "nncf, the ops measured slow in INT8 ignored: dilated depthwise convs, AvgPool; gates, Multiply, Subtract too",
           {"method": "nncf", "ignored_types": ("Multiply", "Subtract", "AvgPool"), "ignored_patterns": (OV_GATE,),
            "ignore_dilated": True}),
    Recipe("openvino-nncf-mixed", "openvino", "nncf, MIXED preset (asymmetric activations)",
           {"method": "nncf", "preset": "mixed", "ignored_types": (), "ignored_patterns": ()}, earlier="0.65 / -16.6 pt"),
    Recipe("executorch-per-channel", "executorch", "XNNPACKQuantizer symmetric, per-channel weights (pt2e)", {}, True),
    Recipe("executorch-per-tensor", "executorch", "XNNPACKQuantizer symmetric, per-tensor weights (pt2e)",
           {"per_channel": False}),
    Recipe("ncnn-convs", "ncnn", "Convolution + ConvolutionDepthWise int8 (per channel), the InnerProduct gates float",
           {}, True),
    Recipe("ncnn-convs-and-gates", "ncnn", "Convolution, ConvolutionDepthWise and the InnerProduct gates int8",
           {"layer_types": ("Convolution", "ConvolutionDepthWise", "InnerProduct")}),
]
BY_NAME = {r.name: r for r in RECIPES}
INT8_FORMATS = [k for k, f in FORMATS.items() if "int8" in f.quantize]


def results_name(stem: str) -> str:
    return f"int8_recipes_{stem}.json"


def choose(formats: str, recipes: Optional[str]) -> List[Recipe]:
    """The recipes to run; a UserError (one line) for an unknown name or an empty choice."""
    keys = [k.strip() for k in formats.split(",") if k.strip()]
    for k in keys:
        if k not in INT8_FORMATS:
            raise UserError(f"--formats: unknown format '{k}'; choose from {', '.join(INT8_FORMATS)}")
    if not keys:
        raise UserError(f"--formats '{formats}': name at least one of {', '.join(INT8_FORMATS)}")
    if recipes is None:
        return [r for r in RECIPES if r.format in keys]
    names = [n.strip() for n in recipes.split(",") if n.strip()]
    if not names:
        raise UserError("--recipes '': name at least one recipe (--list shows them)")
    out = []
    for n in names:
        if n not in BY_NAME:
            raise UserError(f"--recipes: unknown recipe '{n}'; --list shows the {len(RECIPES)} recipes")
        if BY_NAME[n].format not in keys:
            raise UserError(f"--recipes: '{n}' is a {BY_NAME[n].format} recipe but --formats is {','.join(keys)}")
        out.append(BY_NAME[n])
    return out


def listing() -> str:
    return "\n".join(f"{r.name:32s} {r.format:9s} {'SHIPPED ' if r.shipped else ''}{r.description}" for r in RECIPES)


# ------------------------------------------------------------------ measuring

def cpu_info() -> Dict:
    """The CPU model and its int8 dot-product extensions (core/machine.py), as the recipe table records them."""
    from core.machine import device_facts, int8_isa

    facts = device_facts()
    return {"machine": facts["machine"], "model": facts["cpu"], "int8_isa": int8_isa()}


def measure(args) -> Dict:
    import runtimes
    from tqdm import tqdm

    from export.calibration import calibration_set
    from export.cli import eval_set, input_size, torch_probabilities
    from export.metadata import build_metadata
    from export.parity import GATES, check_gates, compare, failures, versions
    from export.rewrites import inference_graph
    from core.safeio import file_sha256
    from model.networks.checkpoint import model_from_checkpoint
    from core.clitools import quiet
    from core.safeio import ensure_writable_dir
    from runtimes.base import reason

    chosen = choose(args.formats, args.recipes)
    weights = Path(args.weights)
    out = ensure_writable_dir(Path(args.out), "--out")
    files_dir = ensure_writable_dir(out / weights.stem, "--out")
    model, ckpt = model_from_checkpoint(weights)
    calib, calib_info = calibration_set(None, ckpt, args.calib_count, input_size(ckpt))
    x, y, eval_info = eval_set(argparse.Namespace(eval_data=None, eval_split=args.eval_split, eval_count=args.eval_count), ckpt)
    ref = torch_probabilities(model, x)
    graph = inference_graph(model)
    show = not args.no_progress

    rows: List[Dict] = []
    built: Dict[str, Dict[str, Path]] = {}
    bar = tqdm(chosen, desc="int8 recipes", disable=not show, file=sys.stderr)
    for r in bar:
        bar.set_postfix_str(r.name)
        fmt = FORMATS[r.format]
        path = files_dir / f"{r.name}{fmt.suffix}"
        meta = build_metadata(ckpt, weights, fmt.key, "int8", calib_info, fmt.layout)
        meta["graph_rewrites"] = graph.rewrites
        meta["int8_recipe"] = {"name": r.name, "params": r.params}
        row = {"recipe": r.name, "format": r.format, "description": r.description, "params": r.params,
               "shipped": r.shipped, "earlier_ph2_by_hand": r.earlier or None, "artifact": repo_relative(path)}
        t0 = time.time()
        try:
            with quiet(args.verbose):
                exporter(FORMATS[r.format]).build(graph, meta, "int8", calib, path, recipe=r.params)
                row["export_seconds"] = round(time.time() - t0, 1)
                got = runtimes.load(path).probabilities(x)
        except Exception as e:  # a recipe the converter or runtime rejects: reported in its row, the others go on
            if args.verbose:
                raise
            row["error"] = f"{type(e).__name__}: {reason(e)}"
            for f in model_files(path):  # the converter may have left a partial file: no artifact for a failed recipe
                f.unlink(missing_ok=True)
            row.pop("artifact")
            rows.append(row)
            continue
        numbers = compare(ref, got, y, meta["threshold"])
        gates = check_gates(numbers, "int8")
        row.update({
            "mask_iou_mean": numbers["mask_iou_mean"],
            "dsc_change_points": -numbers["dsc_drop_points"] + 0.0 if "dsc_drop_points" in numbers else None,
            "flipped_percent": 100.0 * numbers["flipped_fraction"],
            "max_abs_diff": numbers["max_abs_diff"],
            "export_dsc": numbers.get("export_metrics", {}).get("dsc"),
            "passed": not failures(gates),
            "failures": failures(gates),
            "numbers": numbers,
            "file_bytes": sum(p.stat().st_size for p in model_files(path)),
        })
        rows.append(row)
        built.setdefault(r.format, {})[r.name] = path

    fp32_ms, other_load = time_recipes(rows, built, files_dir, graph, ckpt, weights, x, args.timing_rounds, args.verbose,
                                       show)
    return {
        "tool": "export/int8_recipes.py",
        "checkpoint": {"path": repo_relative(weights), "stem": weights.stem, "sha256": file_sha256(weights)},
        "calibration": calib_info,
        "eval": eval_info,
        "reference": "PyTorch fp32 checkpoint (its own module); each file run in its own runtime",
        "gate": GATES["int8"],
        "timing": timing_block(args.timing_rounds, fp32_ms, other_load),
        "cpu": cpu_info(),
        "versions": versions(("onnxruntime", *EXPORT_PACKAGES)),
        "results": rows,
    }


# ------------------------------------------------------------------ reporting

def is_shipped(row: Dict) -> bool:
    """Whether a measured row's recipe is what the exporter writes today (RECIPES), not when it was measured."""
    return BY_NAME[row["recipe"]].shipped if row["recipe"] in BY_NAME else False


def int8_verdict(best: Optional[Dict]) -> str:
    """In words, for a format's fastest passing recipe row (fastest_passing): is INT8 worth it on the measuring CPU."""
    if not best or best["latency_vs_fp32"] >= 1.0:
        return "INT8 is not faster here: use fp32"
    return f"the fastest passing recipe, {best['recipe']}, is {best['latency_vs_fp32']:.2f}x fp32"


def fastest_passing(res: Dict) -> Dict[str, tuple]:
    """format -> (the fastest recipe row that passes its gate, or None; the shipped recipe's row), from a results
    JSON with timing; a recipe without a latency is not ranked."""
    out = {}
    for key in dict.fromkeys(r["format"] for r in res["results"]):
        rows = [r for r in res["results"] if r["format"] == key]
        ok = [r for r in rows if r.get("passed") and r.get("latency_ms") is not None]
        out[key] = (min(ok, key=lambda r: r["latency_ms"]) if ok else None, next((r for r in rows if is_shipped(r)), None))
    return out


def markdown(res: Optional[Dict], earlier: bool = False) -> str:
    """The recipe table; `earlier` adds the column of figures measured by hand on PH2 (docs/export.md)."""
    if not res:
        return "pending"
    head = "| format | recipe | mask IoU vs fp32 | DSC change | flipped px | INT8 gate | KB | ms (x fp32) |"
    sep = "|---|---|---:|---:|---:|---|---:|---:|"
    if earlier:
        head, sep = head + " earlier, by hand |", sep + "---:|"
    lines = [head, sep]
    for r in res["results"]:
        name = f"**{r['description']} (shipped)**" if is_shipped(r) else r["description"]
        title = FORMATS[r["format"]].title
        if "error" in r:
            cells = [title, name, "", "", "", f"FAIL: {r['error']}", "", ""]
        else:
            ms = f"{r['latency_ms']:.1f} ({r['latency_vs_fp32']:.2f}x)" if r.get("latency_ms") is not None else ""
            dsc = r["dsc_change_points"]
            cells = [title, name, f"{r['mask_iou_mean']:.3f}", "" if dsc is None else f"{dsc:+.2f} pt",
                     f"{r['flipped_percent']:.2f}%", "pass" if r["passed"] else "fail", f"{r['file_bytes'] / 1024:.0f}", ms]
        if earlier:
            cells.append(r.get("earlier_ph2_by_hand") or "")
        lines.append("| " + " | ".join(cells) + " |")
    verdicts = [f"- {FORMATS[key].title}: {int8_verdict(best)}" for key, (best, _) in fastest_passing(res).items()
                if best is not None and best.get("latency_vs_fp32") is not None]
    if verdicts:
        lines += [""] + verdicts
    ev, ca, t = res["eval"], res["calibration"], res["timing"]
    lines += ["", f"`{res['checkpoint']['stem']}`: {ev['n_images']} {ev['data']} {ev['split']} images"
                  f"{' (SYNTHETIC)' if ev.get('synthetic') else ''}, calibrated on {ca['n_images']} {ca['data']} "
                  f"{ca['split']} images; gate: mask IoU >= {res['gate']['mask_iou_mean']}, DSC within "
                  f"{res['gate']['dsc_drop_points']} pt."
              + (f" Latency: median of {t['rounds']} interleaved single-image calls at 1 thread (fp32 "
                 + ", ".join(f"{FORMATS[k].title} {v:.1f} ms" for k, v in t["fp32_ms"].items())
                 + f"); {load_words(t)}." if t["rounds"] and t["fp32_ms"] else "")
              + (f" CPU: {res['cpu']['model']} ({', '.join(res['cpu']['int8_isa']) or 'no int8 dot-product extensions'})."
                 if res.get("cpu") else "")]
    return "\n".join(lines)


def earlier_run(args, chosen: List[Recipe]) -> Dict:
    """--retime: the results JSON of the run in --out, its chosen formats' files timed again on this CPU."""
    path = Path(args.out) / results_name(Path(args.weights).stem)
    if not path.is_file():
        raise UserError(f"--retime: no earlier run in {args.out} ({path.name} is missing); run without --retime first")
    try:
        res = json.loads(path.read_text())
    except ValueError as e:
        raise UserError(f"--retime: {path} is not a results JSON ({e}); run without --retime to write it again")
    missing = sorted({"checkpoint", "eval", "results", "timing"} - set(res) if isinstance(res, dict) else ["everything"])
    if missing:
        raise UserError(f"--retime: {path} is not a results JSON of this tool (it lacks {', '.join(missing)}); "
                        "run without --retime to write it again")
    return retime(res, path, Path(args.weights), sorted({r.format for r in chosen}), args.timing_rounds, cpu_info(),
                  args.verbose, not args.no_progress)


@user_errors
def main(argv: Optional[Sequence[str]] = None) -> Dict:
    from core.clitools import ArgumentParser, HelpFormatter, add_verbose, check_ranges
    from core.safeio import atomic_write_text

    p = ArgumentParser(prog="export/int8_recipes.py", formatter_class=HelpFormatter,
                                description=__doc__.split("\n\n", 1)[1].strip())
    p.add_argument("--weights", default=str(DEFAULT_WEIGHTS), help="checkpoint written by model/train.py")
    p.add_argument("--formats", default=",".join(INT8_FORMATS), help=f"comma list of {', '.join(INT8_FORMATS)}")
    p.add_argument("--recipes", default=None, help="comma list of recipe names (default: every recipe of --formats; "
                                                   "--list shows them)")
    p.add_argument("--list", action="store_true", help="print the recipe table and exit")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="folder for the JSON, the Markdown and the built files")
    p.add_argument("--eval-split", default="val", help="split of the checkpoint's data to measure on")
    p.add_argument("--eval-count", type=int, default=0, help="use only the first N evaluation images (0 = all)")
    p.add_argument("--calib-count", type=int, default=0, help="calibrate on only the first N training images (0 = all)")
    p.add_argument("--timing-rounds", type=int, default=10,
                   help="interleaved single-image timing rounds per file (0 = no timing)")
    p.add_argument("--retime", action="store_true",
                   help="time the files of the earlier run in --out again on this CPU (no build, no scoring): "
                        "for a quiet machine after a run on a busy one")
    p.add_argument("--update-results", action="store_true",
                   help="also write the committed copy exports/int8_recipes_<checkpoint>.json (docs/generate.py reads it)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_verbose(p)
    args = p.parse_args(argv)
    check_ranges(args, {"eval_count": 0, "calib_count": 0, "timing_rounds": 0})
    if args.list:
        print(listing())
        return {}
    chosen = choose(args.formats, args.recipes)  # bad names fail before anything loads
    res = earlier_run(args, chosen) if args.retime else measure(args)
    out = Path(args.out)
    stem = res["checkpoint"]["stem"]
    text = json.dumps(res, indent=1) + "\n"
    md = markdown(res, earlier=True) + "\n"
    atomic_write_text(out / results_name(stem), text)
    atomic_write_text(out / results_name(stem).replace(".json", ".md"), md)
    wrote = [str(out / results_name(stem)), str(out / results_name(stem).replace(".json", ".md"))]
    if args.update_results:
        atomic_write_text(EXPORTS_DIR / results_name(stem), text)
        wrote.append(str(EXPORTS_DIR / results_name(stem)))
    print(md)
    print(json.dumps({"recipes": len(res["results"]), "passed": [r["recipe"] for r in res["results"] if r.get("passed")],
                      "errors": [r["recipe"] for r in res["results"] if "error" in r], "wrote": wrote}))
    return res


if __name__ == "__main__":
    main()
