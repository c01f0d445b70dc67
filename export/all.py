"""Export every format and quantization in the format table, check parity, print the table.

`python export/all.py [--weights W] [--formats onnx] [--out outputs/exports/] [--update-results]`
Writes each artifact with its numerics JSON, plus <out>/<model>.summary.json and <model>.summary.md
(<model> is the checkpoint's file stem, so each shipped model keeps its own table).
"""
from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Dict, List, Optional, Sequence

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from export.cli import DEFAULT_WEIGHTS, EXPORTS, OUTPUTS, UPDATE_FLAG, add_postprocess, check_outputs, run
from core.clitools import user_errors
from core.formats import FORMATS
from export import exporter

EXPORTABLE = [k for k, f in FORMATS.items() if f.script.startswith("export/")]


def summary_path(folder: Path, model: str, ext: str) -> Path:
    """<folder>/<model>.summary.json or .md: the table of one checkpoint's exports."""
    return folder / f"{model}.summary{ext}"


def summary_markdown(rows: List[Dict]) -> str:
    lines = ["| artifact | KB | val DSC | val mIoU | DSC vs PyTorch (pt) | mean mask IoU vs PyTorch | flipped px | max abs diff | gates |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for n in rows:
        if "skipped" in n or "error" in n:
            lines.append(f"| {n['artifact']} | | | | | | | | {'skipped: ' + n['skipped'] if 'skipped' in n else 'FAIL: ' + n['error']} |")
            continue
        m = n.get("export_metrics", {})
        lines.append(
            f"| {n['artifact']} | {n['file_bytes'] / 1024:.0f} | {m.get('dsc', float('nan')):.4f} | {m.get('miou', float('nan')):.4f} | "
            f"{0.0 - n.get('dsc_drop_points', float('nan')) + 0.0:+.2f} | {n['mask_iou_mean']:.4f} | {100 * n['flipped_fraction']:.3f}% | "
            f"{n['max_abs_diff']:.2g} | {'pass' if n['passed'] else 'FAIL'} |")
    return "\n".join(lines)


def summary_rows(folder: Path, stem: str) -> List[Dict]:
    """The numerics JSON of every exported file of `stem` in `folder`, in format-table order."""
    rows = []
    for fmt in FORMATS.values():
        for q in fmt.quantize if fmt.key in EXPORTABLE else ():
            n = folder / f"{fmt.filename(stem, q)}.numerics.json"
            if n.is_file():
                rows.append(json.loads(n.read_text()))
    return rows


def rebuild_summary(args) -> List[Dict]:
    from core.errors import UserError
    from core.safeio import atomic_write_text, guard_committed

    out, stem = Path(args.out or (EXPORTS if args.update_results else OUTPUTS)), Path(args.weights).stem
    rows = summary_rows(out, stem)
    if not rows:
        raise UserError(f"--out {out}: no numerics JSON of {stem} there; export it first (python export/all.py)")
    for ext in (".json", ".md"):
        guard_committed(summary_path(out, stem, ext), UPDATE_FLAG, args.update_results, "pass --out under outputs/")
    atomic_write_text(summary_path(out, stem, ".json"), json.dumps(rows, indent=1) + "\n")
    atomic_write_text(summary_path(out, stem, ".md"), summary_markdown(rows) + "\n")
    print(f"wrote {summary_path(out, stem, '.md')} ({len(rows)} files)")
    return rows


@user_errors
def main(argv: Optional[Sequence[str]] = None) -> List[Dict]:
    from core.clitools import ArgumentParser, HelpFormatter, add_verbose

    p = ArgumentParser(description=__doc__.splitlines()[0], formatter_class=HelpFormatter,
                                epilog="Each export is checked in its own runtime against PyTorch and written only if it "
                                       "passes its gates; one that fails is reported and the others go on (exit code 1).")
    p.add_argument("--weights", default=str(DEFAULT_WEIGHTS), help="checkpoint to export (written by model/train.py)")
    p.add_argument("--formats", default=",".join(EXPORTABLE), help=f"comma list of {', '.join(EXPORTABLE)}")
    p.add_argument("--out", default=None, help="folder for the artifacts, their numerics JSON and <model>.summary.json/.md "
                                                f"(default: outputs/exports/, or the committed exports/ with {UPDATE_FLAG})")
    p.add_argument(UPDATE_FLAG, action="store_true",
                   help="allow writing the committed results in exports/ (the default --out then goes there)")
    p.add_argument("--eval-data", default=None,
                   help="dataset for the parity checks (default: the checkpoint's own data, val split; if that is "
                        "not here, synthetic images, with a note). A path that does not exist is an error")
    p.add_argument("--calib", default=None, help="INT8 calibration images (default: the checkpoint's training split; "
                                                 "INT8 is skipped with a note when neither is here)")
    p.add_argument("--summary-only", action="store_true",
                   help="export nothing: rebuild <model>.summary.json/.md in --out from the numerics JSON of the files "
                        "there (after re-exporting one format with its own exporter)")
    add_postprocess(p)
    add_verbose(p)
    args = p.parse_args(argv)
    if args.summary_only:
        return rebuild_summary(args)
    from model.data.locate import training_dataset
    from core.safeio import atomic_write_text
    from model.networks.checkpoint import model_from_checkpoint
    from core.errors import UserError
    from core.safeio import ensure_writable_dir, guard_committed
    from runtimes.base import reason
    from core.postprocess import parse_steps

    steps = parse_steps(args.postprocess)  # refused before anything is exported
    keys = list(dict.fromkeys(k.strip() for k in args.formats.split(",") if k.strip()))  # each format once, in order
    for key in keys:
        if key not in EXPORTABLE:
            raise UserError(f"unknown format '{key}'; choose from {', '.join(EXPORTABLE)}")
    if not keys:
        raise UserError(f"--formats '{args.formats}': name at least one of {', '.join(EXPORTABLE)}")
    if args.eval_data and not Path(args.eval_data).is_dir():
        raise UserError(f"{args.eval_data}: --eval-data folder not found; pass a dataset folder, or leave "
                         f"--eval-data out to use the checkpoint's own data")
    if args.calib and not Path(args.calib).is_dir():
        raise UserError(f"{args.calib}: --calib folder not found; pass a folder of real lesion images")
    args.out = args.out or str(EXPORTS if args.update_results else OUTPUTS)
    stem = Path(args.weights).stem
    for path in (Path(args.out), summary_path(Path(args.out), stem, ".json")):
        guard_committed(path, UPDATE_FLAG, args.update_results, "leave --out out to write under outputs/exports/")
    _, ckpt = model_from_checkpoint(Path(args.weights))
    ensure_writable_dir(Path(args.out), "--out")
    for key in keys:  # every artifact's paths, before the first export starts
        for q in FORMATS[key].quantize:
            check_outputs(FORMATS[key], Path(args.out) / FORMATS[key].filename(stem, q), args.update_results)
    for path in (summary_path(Path(args.out), stem, ".json"), summary_path(Path(args.out), stem, ".md")):
        if path.is_dir():
            raise UserError(f"{path}: is a folder, where the summary table goes; move it away or pass another --out")
    can_calibrate = args.calib is not None or training_dataset(ckpt) is not None

    rows = []
    for key in keys:
        fmt = FORMATS[key]
        build = exporter(fmt).build
        for q in fmt.quantize:
            out = Path(args.out) / fmt.filename(Path(args.weights).stem, q)
            if q == "int8" and not can_calibrate:
                rows.append({"artifact": out.name, "skipped": "no calibration images here (pass --calib DIR)"})
                continue
            extra = ["--eval-data", args.eval_data] if args.eval_data else []
            extra += ["--calib", args.calib] if args.calib and q == "int8" else []
            extra += ["--postprocess", ",".join(steps)] if steps else []
            extra += ["--verbose"] if args.verbose else []
            extra += [UPDATE_FLAG] if args.update_results else []
            try:
                rows.append(run(key, build, ["--weights", args.weights, "--quantize", q, "--out", str(out), *extra]))
            except SystemExit as e:  # a failed gate or a broken tool: keep going, report it, exit 1 at the end
                rows.append({"artifact": out.name, "error": str(e).removeprefix("error: ")})
            except Exception as e:  # only with --verbose does run() let a tool's exception through: show it, go on
                traceback.print_exc()
                rows.append({"artifact": out.name, "error": f"{type(e).__name__}: {reason(e)}"})
    md = summary_markdown(rows)
    if any(r.get("eval", {}).get("synthetic") for r in rows):
        md += "\n\nParity checked on SYNTHETIC images (the checkpoint's data is not here): the DSC columns are not skin-lesion figures."
    atomic_write_text(summary_path(Path(args.out), stem, ".json"), json.dumps(rows, indent=1) + "\n")
    atomic_write_text(summary_path(Path(args.out), stem, ".md"), md + "\n")
    print(md)
    written = sum(1 for r in rows if "passed" in r)
    print(f"\n{written} export(s) in {Path(args.out)}/ (each with its .numerics.json), table in "
          f"{summary_path(Path(args.out), stem, '.md')}")
    if any("error" in r for r in rows):
        raise SystemExit(1)
    return rows


if __name__ == "__main__":
    main()
