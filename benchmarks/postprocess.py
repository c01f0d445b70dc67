"""What mask clean-up does: `python benchmarks/postprocess.py [--models F,...] [--update-results]`.

For each model file, every combination of core/postprocess.py's steps (none, largest-component, fill-holes,
both) is scored on the same probability maps: ISIC 2018 val (where the choice is made), ISIC 2018 test and
all 150 PH2 cases (reported, never used to choose), and the test split under every corruption of
model/data/corruptions.py at the middle severity (their mean). Pooled DSC at the protocol's 256x256 grid. The
steps a file should carry are the combination with the highest val DSC, and only if it beats no clean-up
there by at least 0.1 DSC points (`recommended`). JSON and Markdown to outputs/postprocess/, or the committed
benchmarks/results/ copies with --update-results.
"""
from __future__ import annotations

import itertools
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from core.clitools import ArgumentParser, HelpFormatter, add_verbose, check_ranges, quiet, user_errors
from core.errors import UserError
from core.paths import BENCHMARK_RESULTS, DEFAULT_WEIGHTS, EDGE_MODEL, REPO, SHARED_DATA, WEIGHTS_DIR
from core.safeio import ensure_writable_dir, results_folder, write_results

RESULTS = BENCHMARK_RESULTS
DEFAULT_OUT = REPO / "outputs" / "postprocess"
NAME = "postprocess"
GRID = 256
MIDDLE = 2  # the corruption severity reported (of 1-3)
MIN_GAIN = 0.001  # a clean-up is recommended only when it raises val DSC by at least 0.1 points (less is noise)


def combos() -> List[Tuple[str, ...]]:
    from core.postprocess import POSTPROCESS_STEPS

    return [c for n in range(len(POSTPROCESS_STEPS) + 1) for c in itertools.combinations(POSTPROCESS_STEPS, n)]


def label(steps: Tuple[str, ...]) -> str:
    return ",".join(steps) or "none"


def _probs(seg, images: Sequence[np.ndarray]) -> np.ndarray:
    """Probability maps at the scoring grid (a smaller model's resized to it), from uint8 photos."""
    from core.preprocess import preprocess_image, resize_bilinear

    out = []
    for i in range(0, len(images), 8):
        x = np.stack([preprocess_image(rgb, seg.input_size) for rgb in images[i:i + 8]])
        p = seg.probabilities(x)
        if seg.input_size != GRID:
            p = np.stack([resize_bilinear(q[..., None], (GRID, GRID))[..., 0] for q in p])
        out.append(p)
    return np.concatenate(out)


def score_combos(probs: np.ndarray, masks: np.ndarray, threshold: float) -> Dict[str, float]:
    """Pooled DSC of every step combination on the same probability maps."""
    from core.metrics import PooledMetrics
    from core.postprocess import apply

    out = {}
    raw = probs > threshold
    for steps in combos():
        pm = PooledMetrics()
        pm.update(np.stack([apply(m, steps) for m in raw]) if steps else raw, masks)
        out[label(steps)] = pm.result()["dsc"]
    return out


SETS = {"val": ("isic2018", "val"), "test": ("isic2018", "test"), "ph2": ("ph2", "all")}


def _split(samples):
    from core.preprocess import preprocess_mask
    from model.data import load_sample

    pairs = [load_sample(s) for s in samples]
    return [rgb for rgb, _ in pairs], np.stack([preprocess_mask(m, GRID) for _, m in pairs])


def measure(files: Sequence[Path], data_root: Path, count: int = 0, progress: bool = True, verbose: bool = False) -> Dict:
    from tqdm import tqdm

    import runtimes
    from model.data import open_dataset
    from model.data.corruptions import CORRUPTIONS, corrupt, torch_threads
    from model.evaluation.provenance import refuse_training_images

    samples = {k: open_dataset(data_root / ds).subset(split)[: count or None] for k, (ds, split) in SETS.items()}
    for f in files:  # an ISIC 2017 model would be scored on images it trained on: refused
        for k, (_, split) in SETS.items():
            refuse_training_images(f, samples[k], split)
    sets = {k: _split(v) for k, v in samples.items()}
    test_images, test_masks = sets["test"]
    with quiet(verbose):
        segs = {f.name: runtimes.load(f, threads=1) for f in files}
        for seg in segs.values():  # first-run chatter hidden
            seg.probabilities(np.zeros((1, 3, seg.input_size, seg.input_size), np.float32))
        # a runtime meeting a new batch size sets itself up again, and says so: hidden as well
        rows = {name: {k: score_combos(_probs(seg, imgs), masks, seg.threshold) for k, (imgs, masks) in sets.items()}
                for name, seg in segs.items()}
    per: Dict[str, List[Dict[str, float]]] = {name: [] for name in segs}
    for c in tqdm(CORRUPTIONS, desc="corruptions", disable=not progress, leave=False):
        with torch_threads(1):  # the runtimes' one thread
            shifted = [corrupt(rgb, c, MIDDLE, seed=i) for i, rgb in enumerate(test_images)]  # once for every model
        with quiet(verbose):
            for name, seg in segs.items():
                per[name].append(score_combos(_probs(seg, shifted), test_masks, seg.threshold))
    for name, row in rows.items():
        row["corrupted_test"] = {k: float(np.mean([p[k] for p in per[name]])) for k in per[name][0]}
        row["recommended"] = recommend(row["val"])
    return {"grid": GRID, "severity": MIDDLE, "n_images": {k: len(v[0]) for k, v in sets.items()}, "models": rows}


def recommend(val: Dict[str, float]) -> str:
    """The steps with the highest val DSC if they beat no clean-up by MIN_GAIN, else 'none'."""
    best = max(val, key=val.get)
    return best if val[best] >= val["none"] + MIN_GAIN else "none"


def markdown(res: Dict) -> str:
    lines = [f"Pooled DSC at {res['grid']}x{res['grid']}; corrupted test: mean over the 15 corruptions at severity "
             f"{res['severity']}. Chosen on val only.", "",
             "| model | clean-up | ISIC 2018 val | ISIC 2018 test | PH2 (all) | corrupted test |",
             "|---|---|---:|---:|---:|---:|"]
    for name, r in res["models"].items():
        for steps in r["val"]:
            mark = " (recommended)" if steps == r["recommended"] and steps != "none" else ""
            lines.append(f"| {name} | {steps}{mark} | " + " | ".join(f"{r[k][steps]:.4f}" for k in
                                                                   ("val", "test", "ph2", "corrupted_test")) + " |")
    lines.append("")
    for name, r in res["models"].items():
        gain = 100 * (max(r["val"].values()) - r["val"]["none"])
        lines.append(f"- {name}: " + (f"export it with `--postprocess {r['recommended']}`" if r["recommended"] != "none" else
                     f"no clean-up by default (the best step gains {gain:.2f} DSC points on val, under the "
                     f"{100 * MIN_GAIN:.1f} that counts)"))
    return "\n".join(lines) + "\n"


@user_errors
def main(argv: Optional[Sequence[str]] = None) -> Dict:
    default = f"{DEFAULT_WEIGHTS},{WEIGHTS_DIR / (EDGE_MODEL + '.pt')}"
    p = ArgumentParser(description=__doc__.splitlines()[0], formatter_class=HelpFormatter)
    p.add_argument("--models", default=default, help="comma-separated model files (default: the default and the edge checkpoints)")
    p.add_argument("--data-root", default=str(SHARED_DATA), help="folder holding isic2018/ and ph2/")
    p.add_argument("--count", type=int, default=0, help="use the first N images of each split (0 = all)")
    p.add_argument("--out", default=None, help=f"folder for {NAME}.json/.md (default: outputs/{NAME}/)")
    p.add_argument("--update-results", action="store_true", help=f"write the committed benchmarks/results/{NAME}.*")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_verbose(p)
    args = p.parse_args(argv)
    check_ranges(args, {"count": 0})
    files = [Path(f.strip()) for f in args.models.split(",") if f.strip()]
    missing = [f for f in files if not f.is_file()]
    if missing or not files:
        raise UserError(f"--models: {missing[0] if missing else '(none)'} not found; give existing model files")
    root = Path(args.data_root)
    for name in ("isic2018", "ph2"):
        if not (root / name).is_dir():
            raise UserError(f"{root / name}: dataset folder not found; pass --data-root with the folder that holds isic2018/ and ph2/")
    out = results_folder(args.update_results, args.out, DEFAULT_OUT, (f"{NAME}.json", f"{NAME}.md"))
    ensure_writable_dir(out, "--out")
    res = measure(files, root, args.count, progress=not args.no_progress, verbose=args.verbose)
    md = markdown(res)
    write_results(out, NAME, res, md)
    print(md, end="")
    return res


if __name__ == "__main__":
    main()
