"""Evaluate a model file on a dataset: `python model/evaluate.py --weights W --data D [--split val] [--json F]`.

One confusion matrix pooled over all pixels of the split at 256x256 and threshold 0.5; keys
`miou` (foreground IoU), `dsc`, `accuracy`, `specificity`, `sensitivity`, `n_images`, plus the
per-image means ISIC reports: `mean_image_dsc`, `jaccard_mean` and `thresholded_jaccard` (per-image
Jaccard set to 0 below 0.65, then averaged: the ISIC 2018 leaderboard metric). `--weights` takes any file that `runtimes.load` can open.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Dict, Optional, Sequence

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.clitools import ArgumentParser, HelpFormatter, add_verbose, check_ranges, quiet, user_errors
from core.paths import DEFAULT_DATA, DEFAULT_WEIGHTS
from model.data import open_dataset
from model.evaluation.pooled import evaluate_samples


@user_errors
def main(argv: Optional[Sequence[str]] = None) -> Dict:
    p = ArgumentParser(description=__doc__.splitlines()[0], formatter_class=HelpFormatter)
    p.add_argument("--weights", default=str(DEFAULT_WEIGHTS), help="model file (.pt, or any format runtimes.load opens)")
    p.add_argument("--data", default=str(DEFAULT_DATA), help="dataset root: images/ + masks/ (+ split.json), ISIC or PH2 layout")
    p.add_argument("--split", default="val", help="train, val, test or all")
    p.add_argument("--json", default=None, help="also write the metrics here as JSON (default: print only)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for the runtime (0 = the runtime's default)")
    p.add_argument("--allow-foreign", action="store_true",
                   help="run a model file without this toolkit's metadata, assuming AULUNet's preprocessing and threshold")
    p.add_argument("--allow-train-overlap", action="store_true",
                   help="score images the checkpoint was trained on (refused by default: the numbers would be inflated)")
    p.add_argument("--tta", action="store_true", help="test-time augmentation: probabilities averaged over the four "
                                                      "flips (4 runs per image; off by default)")
    p.add_argument("--postprocess", default=None, metavar="STEPS",
                   help="mask clean-up before scoring (core/postprocess.py): none, largest-component, fill-holes or "
                        "largest-component,fill-holes (default: the steps of the file's metadata)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_verbose(p)
    args = p.parse_args(argv)
    check_ranges(args, {"threads": 0})

    import runtimes
    from core.postprocess import parse_steps
    from core.safeio import atomic_write_text

    asked = None if args.postprocess is None else parse_steps(args.postprocess)
    with quiet(args.verbose):
        seg = runtimes.load(args.weights, threads=args.threads, allow_foreign=args.allow_foreign)
    if seg.metadata.get("foreign"):
        print(f"note: {args.weights} has no AULUNet metadata; assuming {runtimes.base.ASSUMED}", file=sys.stderr)
    samples = open_dataset(args.data).subset(args.split)
    if not args.allow_train_overlap:
        from model.evaluation.provenance import refuse_training_images

        refuse_training_images(args.weights, samples, args.split, seg.metadata)
    steps = seg.postprocess if asked is None else asked
    res = evaluate_samples(seg, samples, progress=not args.no_progress, tta=args.tta, postprocess=steps)
    res.update({"weights": str(args.weights), "data": str(args.data), "split": args.split, "backend": seg.name})
    if steps:
        res["postprocess"] = list(steps)
    text = json.dumps(res, indent=1)
    if args.json:
        atomic_write_text(args.json, text + "\n")
    print(text)
    return res


if __name__ == "__main__":
    main()
