"""The main job: evaluate the shipped checkpoint and draw overlays.

`python model/demo.py [--weights W] [--data D] [--split test] [--out outputs/demo]`

Data: --data, else the default model's dataset (core/paths.py) when present, its test split when it
has one, else a few synthetic lesions that the
toolkit draws itself (labelled synthetic in every output). Writes metrics.json, metrics.md and
overlays.png (input | ground truth | prediction, like the paper's Figure 3).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Dict, Optional, Sequence

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.clitools import ArgumentParser, HelpFormatter, add_verbose, check_ranges, quiet, user_errors
from core.metrics import REPORTED_KEYS
from core.paths import DEFAULT_DATA, DEFAULT_WEIGHTS
from model.evaluation.pooled import evaluate_samples

from core.paths import REPO  # noqa: E402



def metrics_markdown(res: Dict, label: str) -> str:
    head = "| data | images | " + " | ".join(REPORTED_KEYS) + " |"
    sep = "|---|---:|" + "---:|" * len(REPORTED_KEYS)
    row = f"| {label} | {res['n_images']} | " + " | ".join(f"{res[k]:.4f}" for k in REPORTED_KEYS) + " |"
    return "\n".join([head, sep, row])


@user_errors
def main(argv: Optional[Sequence[str]] = None) -> Dict:
    p = ArgumentParser(description=__doc__.splitlines()[0], formatter_class=HelpFormatter)
    p.add_argument("--weights", default=str(DEFAULT_WEIGHTS), help="model file to evaluate (.pt or any exported format)")
    p.add_argument("--data", default=None, help=f"dataset root (default: {DEFAULT_DATA.relative_to(REPO.parent)} when "
                                                "present, else 6 synthetic images, labelled so); a path that does not "
                                                "exist is an error")
    p.add_argument("--synthetic", action="store_true", help="use synthetic lesions even when real data is present")
    p.add_argument("--split", default=None, help="split to evaluate (default: test when the data has one, else val; all for "
                                                  "synthetic images)")
    p.add_argument("--allow-train-overlap", action="store_true",
                   help="score images the checkpoint was trained on (refused by default: the numbers would be inflated)")
    p.add_argument("--out", default=str(REPO / "outputs" / "demo"), help="folder for metrics.json, metrics.md, overlays.png")
    p.add_argument("--figures", type=int, default=6, help="rows in overlays.png")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_verbose(p)
    args = p.parse_args(argv)
    check_ranges(args, {"figures": 1})

    import runtimes
    from core.safeio import atomic_write_text
    from model.data import load_sample, open_dataset
    from model.data.synthetic import is_synthetic, write_synthetic_dataset
    from model.evaluation.figures import figure_grid

    from core.safeio import ensure_writable_dir

    out = ensure_writable_dir(Path(args.out), "--out")
    data = Path(args.data) if args.data else (DEFAULT_DATA if DEFAULT_DATA.is_dir() and not args.synthetic else None)
    if data is None:
        data = write_synthetic_dataset(out / "synthetic_data", n=6)
        print(f"using 6 SYNTHETIC lesion images in {data} ({'--synthetic' if args.synthetic else f'no data given and {DEFAULT_DATA} absent'})")
    synthetic = is_synthetic(data)
    with quiet(args.verbose):
        seg = runtimes.load(args.weights)
    dataset = open_dataset(data)
    split = args.split or ("all" if synthetic else "test" if dataset.splits.get("test") else "val")
    samples = dataset.subset(split)
    if not args.allow_train_overlap:
        from model.evaluation.provenance import refuse_training_images

        refuse_training_images(args.weights, samples, split, seg.metadata)
    res = evaluate_samples(seg, samples, progress=not args.no_progress)
    shown = samples[: args.figures]
    pairs = [load_sample(s) for s in shown]  # EXIF orientation applied to both, as evaluation does
    rgbs, gts = [r for r, _ in pairs], [m for _, m in pairs]
    preds = [seg.predict(r)[1] for r in rgbs]

    label = f"{'SYNTHETIC ' if synthetic else ''}{data.name} {split}"
    res.update({"weights": str(args.weights), "data": str(data), "split": split, "synthetic": synthetic,
                "backend": seg.name})
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "metrics.json", json.dumps(res, indent=1) + "\n")
    md = metrics_markdown(res, label)
    atomic_write_text(out / "metrics.md", md + "\n")
    title = f"{Path(args.weights).name} on {label}" + (" (synthetic images, not dermoscopy)" if synthetic else "")
    figure_grid(rgbs, gts, preds, [s.id for s in shown], out / "overlays.png", suptitle=title)
    print(md)
    print(f"wrote {out / 'metrics.json'}, {out / 'metrics.md'}, {out / 'overlays.png'}")
    return res


if __name__ == "__main__":
    main()
