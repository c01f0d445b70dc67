"""The flow every exporter shares: arguments, checkpoint, calibration, build, parity gates, atomic write.

A format module only supplies `build(model, meta, quantize, calib, path)`; everything else is here.
Every format is built from the same exactly rewritten graph (export/rewrites.py) and checked against the
checkpoint's own, unrewritten module.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from core.clitools import user_errors
from core.errors import UserError
from core.formats import EXPORT_PACKAGES, FORMATS, Format
from export import exporter

from core import paths  # noqa: E402
from core.paths import DEFAULT_WEIGHTS, EXPORTS_DIR as EXPORTS  # noqa: E402,F401
OUTPUTS = paths.OUTPUTS / "exports"       # where an export goes unless --update-results (core/safeio.py, rule 3)
UPDATE_FLAG = "--update-results"


def add_postprocess(p: argparse.ArgumentParser) -> None:
    """--postprocess, shared by every exporter and export/all.py."""
    from core.postprocess import CHOICES

    p.add_argument("--postprocess", default="none", metavar="STEPS",
                   help=f"mask clean-up written into the file's metadata, applied by every runtime, the web page and "
                        f"the Android core after the threshold (core/postprocess.py): {', '.join(CHOICES)}")


def parse_args(fmt: Format, argv: Optional[Sequence[str]]) -> argparse.Namespace:
    from core.clitools import ArgumentParser, HelpFormatter, add_verbose, check_ranges
    from core.postprocess import parse_steps

    p = ArgumentParser(prog=fmt.script, formatter_class=HelpFormatter,
                                description=f"Export an AULUNet checkpoint to {fmt.title} ({fmt.suffix}) and check parity "
                                            f"against PyTorch; the file is written only if every gate passes.")
    p.add_argument("--weights", default=str(DEFAULT_WEIGHTS), help="checkpoint written by model/train.py")
    p.add_argument("--quantize", default="none", choices=fmt.quantize, help="weight/activation precision of the export")
    p.add_argument("--calib", default=None, help="INT8 only: dataset root or folder of real images to calibrate on "
                                                 "(default: the checkpoint's own training split, when it is here)")
    p.add_argument("--calib-count", type=int, default=0, help="use only the first N calibration images (0 = all)")
    p.add_argument("--eval-data", default=None,
                   help="dataset for the parity check (default: the checkpoint's own data; if that is not here, "
                        "8 synthetic images, with a note). A path that does not exist is an error")
    p.add_argument("--eval-split", default="val", help="split of --eval-data to check on")
    p.add_argument("--eval-count", type=int, default=0, help="use only the first N evaluation images (0 = all)")
    p.add_argument("--out", default=None, help=f"output file, its name ending in {fmt.suffix} "
                                               f"(default: outputs/exports/<checkpoint>[_<quantize>]{fmt.suffix}, "
                                               f"or the committed exports/ with {UPDATE_FLAG})")
    p.add_argument(UPDATE_FLAG, action="store_true",
                   help="allow writing the committed results in exports/ (the default --out then goes there)")
    add_postprocess(p)
    add_verbose(p)
    args = p.parse_args(argv)
    check_ranges(args, {"calib_count": 0, "eval_count": 0})
    args.postprocess = parse_steps(args.postprocess)
    if args.quantize != "int8":
        for flag, value in (("--calib", args.calib), ("--calib-count", args.calib_count)):
            if value:
                raise UserError(f"{flag} applies to --quantize int8 only (got --quantize {args.quantize}); "
                                 f"drop {flag} or pass --quantize int8")
    return args


def input_size(ckpt: Dict) -> int:
    """The side the checkpoint was trained at (its preprocessing, validated by model.networks.checkpoint.load_checkpoint)."""
    return int(ckpt["preprocessing"]["input_size"][0])


def output_paths(fmt: Format, out: Path) -> List[Path]:
    """Every path an export to `out` writes: the file, its companions (OpenVINO's .bin), its numerics JSON and
    the numerics of a failed gate."""
    return [out, *(out.with_suffix(c) for c in fmt.companions), out.with_name(out.name + ".numerics.json"),
            out.with_name(out.name + ".numerics.failed.json")]


def check_outputs(fmt: Format, out: Path, update_results: bool) -> None:
    """OutputError (one line) for an output that cannot be written, BEFORE anything is exported: wrong suffix,
    a committed result without --update-results, a folder where a file goes, an unwritable folder."""
    from core.errors import OutputError
    from core.safeio import ensure_writable_dir, guard_committed

    if not fmt.matches(out) or out.name.lower() == fmt.suffix:  # ".ncnn.param" is two suffixes
        raise OutputError(f"{out}: a {fmt.title} export must end in {fmt.suffix}; pass --out NAME{fmt.suffix}")
    for path in output_paths(fmt, out):
        guard_committed(path, UPDATE_FLAG, update_results, "leave --out out to write under outputs/exports/")
    for path in output_paths(fmt, out):
        if path.is_dir():
            what = "" if path == out else f" (the export writes it beside {out.name})"
            raise OutputError(f"{path}: is a folder{what}; pass --out with a file name ending in {fmt.suffix}, "
                              f"or move the folder away")
    ensure_writable_dir(out.parent, "--out")


def eval_set(args, ckpt: Dict):
    """Images (N,3,S,S), masks (N,S,S) or None, and a description. An explicit --eval-data must exist; only
    the default (the checkpoint's own data) may fall back to synthetic images, and then it says so."""
    from model.data import DataError, load_arrays, open_dataset
    from model.data.synthetic import make_lesion
    from core.preprocess import preprocess_image, preprocess_mask

    from model.data.locate import training_dataset

    if args.eval_data:
        root = Path(args.eval_data)
        if not root.is_dir():
            raise DataError(f"{root}: --eval-data folder not found; pass a dataset folder (images/ + masks/, ISIC or PH2), "
                            f"or leave --eval-data out to use the checkpoint's own data")
        ds = open_dataset(root, seed=(ckpt.get("train_args") or {}).get("seed", 0))
    else:
        ds = training_dataset(ckpt)  # opened with the run's seed, or None when it is not here
    size = input_size(ckpt)
    if ds is not None:
        root = ds.root
        samples = ds.subset(args.eval_split)
        if args.eval_count:
            samples = samples[: args.eval_count]
        x, y = load_arrays(samples, size)
        return x, y, {"data": root.name, "split": args.eval_split, "n_images": len(samples), "synthetic": False}
    n = args.eval_count or 8
    print(f"note: the checkpoint's data ({ckpt.get('data', {}).get('root')}) is not here: parity is checked on {n} "
          f"SYNTHETIC images, so the DSC printed is not a skin-lesion figure; pass --eval-data DIR for real images",
          file=sys.stderr)
    rng = np.random.default_rng(0)
    pairs = [make_lesion(rng) for _ in range(n)]
    x = np.stack([preprocess_image(img, size) for img, _ in pairs])
    y = np.stack([preprocess_mask(m, size) for _, m in pairs])
    return x, y, {"data": "synthetic", "split": "all", "n_images": len(pairs), "synthetic": True}


def torch_probabilities(model, x: np.ndarray, batch: int = 8) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return np.concatenate([torch.sigmoid(model(torch.from_numpy(x[i:i + batch])))[:, 0].numpy()
                               for i in range(0, len(x), batch)])


@user_errors
def run(fmt_key: str, build: Callable, argv: Optional[Sequence[str]] = None) -> Dict:
    """The command line of every exporter (export/to_<format>.py): export, check parity, write artifact +
    numerics JSON atomically. Exits with `error: <one line>` on any failure (the tools' own output is hidden unless --verbose). Every output path is checked before
    the export starts; messages name the user's files, never the hidden temporaries."""
    import runtimes
    from core.safeio import clean_stale_temps, temp_prefix

    fmt = FORMATS[fmt_key]
    args = parse_args(fmt, argv)
    weights = Path(args.weights)
    default_dir = EXPORTS if args.update_results else OUTPUTS
    out = Path(args.out) if args.out else default_dir / fmt.filename(weights.stem, args.quantize)
    check_outputs(fmt, out, args.update_results)
    clean_stale_temps(out.parent, temp_prefix(out.stem))  # left by an export that was killed
    tmp = out.with_name(f"{temp_prefix(out.stem)}{os.getpid()}{fmt.suffix}")
    tmp_files = [tmp] + [tmp.with_suffix(c) for c in fmt.companions]
    real_files = [out] + [out.with_suffix(c) for c in fmt.companions]

    def user_paths(text: str) -> str:
        """A message about a temporary names the file the user asked for instead."""
        for t, r in zip(tmp_files, real_files):
            text = text.replace(str(t), str(r)).replace(t.name, r.name)
        return text

    def discard_tmp():
        for path in tmp_files:
            try:
                path.unlink(missing_ok=True)
            except OSError:
                pass
    try:
        numerics = _export(fmt, build, args, weights, out, tmp, tmp_files)
    except UserError as e:
        discard_tmp()
        raise UserError(user_paths(str(e))) from None
    except OSError as e:
        discard_tmp()
        raise UserError(f"{user_paths(str(e.filename or out))}: cannot write it "
                         f"({e.strerror or type(e).__name__}); pass --out in a writable folder") from None
    except (SystemExit, KeyboardInterrupt):
        discard_tmp()
        raise
    except Exception as e:  # a converter or runtime that broke: one line, the details with --verbose
        discard_tmp()
        if args.verbose:
            raise
        raise UserError(f"{out}: the {fmt.title} export failed ({type(e).__name__}: "
                         f"{user_paths(runtimes.base.reason(e))}); rerun with --verbose to see the tools' output") from None
    summary = {k: numerics[k] for k in ("artifact", "quantization", "max_abs_diff", "mask_iou_mean", "flipped_fraction")}
    if "export_metrics" in numerics:
        summary["dsc"] = numerics["export_metrics"]["dsc"]
    if numerics["eval"].get("synthetic"):
        summary["eval"] = "SYNTHETIC images"
    summary["wrote"] = [str(out), *(str(out.with_suffix(c)) for c in fmt.companions), str(out.with_name(out.name + ".numerics.json"))]
    print(json.dumps(summary))
    return numerics


def _export(fmt: Format, build: Callable, args, weights: Path, out: Path, tmp: Path, tmp_files) -> Dict:
    import runtimes
    from export.calibration import calibration_set
    from export.metadata import build_metadata
    from export.parity import check_gates, compare, failures, versions
    from export.rewrites import inference_graph
    from core.safeio import atomic_write_text, file_sha256
    from model.networks.checkpoint import model_from_checkpoint
    from core.clitools import quiet

    model, ckpt = model_from_checkpoint(weights)
    calib, calib_info = (None, None)
    if args.quantize == "int8":
        calib, calib_info = calibration_set(args.calib, ckpt, args.calib_count, input_size(ckpt))
    meta = build_metadata(ckpt, weights, fmt.key, args.quantize, calib_info, fmt.layout, args.postprocess)
    graph = inference_graph(model)
    meta["graph_rewrites"] = graph.rewrites
    x, y, eval_info = eval_set(args, ckpt)
    t0 = time.time()
    with quiet(args.verbose):
        build(graph, meta, args.quantize, calib, tmp)
        export_s = time.time() - t0
        seg = runtimes.load(tmp)
        got = seg.probabilities(x)
    ref = torch_probabilities(model, x)
    numbers = compare(ref, got, y, meta["threshold"])
    gates = check_gates(numbers, args.quantize)
    numerics = {
        "artifact": out.name,
        "format": fmt.key,
        "quantization": args.quantize,
        "source_checkpoint": meta["source_checkpoint"],
        "reference": "PyTorch fp32 checkpoint (its own module, not the rewritten graph)",
        "graph_rewrites": meta["graph_rewrites"],
        "input_size": input_size(ckpt),
        "eval": eval_info,
        "calibration": calib_info,
        **numbers,
        "gates": gates,
        "passed": not failures(gates),
        "export_seconds": round(export_s, 2),
        "file_bytes": sum(p.stat().st_size for p in tmp_files),
        "versions": versions(fmt.runtime_packages + EXPORT_PACKAGES),
    }
    numerics_path = out.with_name(out.name + ".numerics.json")
    failed_path = out.with_name(out.name + ".numerics.failed.json")
    if not numerics["passed"]:
        atomic_write_text(failed_path, json.dumps(numerics, indent=1) + "\n")
        raise UserError(f"{out}: parity gate failed ({'; '.join(failures(gates))}); nothing written, details in {failed_path}")
    for c in fmt.companions:  # companions first: the model file appears last, complete
        os.replace(tmp.with_suffix(c), out.with_suffix(c))
    os.replace(tmp, out)
    failed_path.unlink(missing_ok=True)
    numerics["sha256"] = file_sha256(out)
    numerics["companion_sha256"] = {c: file_sha256(out.with_suffix(c)) for c in fmt.companions}
    atomic_write_text(numerics_path, json.dumps(numerics, indent=1) + "\n")
    return numerics


def script_main(fmt_key: str, build: Callable) -> None:
    run(fmt_key, build, sys.argv[1:])


def main(argv: Optional[Sequence[str]] = None) -> None:
    """`python export/cli.py FORMAT [exporter flags]`: the same as export/to_<format>.py."""
    from core.clitools import ArgumentParser, HelpFormatter

    exporters = {k: f for k, f in FORMATS.items() if f.script.startswith("export/")}
    p = ArgumentParser(prog="export/cli.py", formatter_class=HelpFormatter,
                                description=__doc__.split("\n\n")[0] + "\n\nRun an exporter through it: "
                                + ", ".join(f"{k} = {f.script}" for k, f in exporters.items())
                                + ".\nFlags after FORMAT go to the exporter (FORMAT --help lists them).")
    p.add_argument("format", choices=sorted(exporters), help="which exporter to run")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="the exporter's own flags")
    args = p.parse_args(argv)
    fmt = exporters[args.format]
    run(fmt.key, exporter(fmt).build, args.rest)


if __name__ == "__main__":
    main()
