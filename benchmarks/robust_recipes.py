"""Which training recipe holds up: `python benchmarks/robust_recipes.py RUN [RUN ...] [--update-results]`.

Each RUN is a folder that model/train.py wrote (best.pt, log.json). Its best.pt is scored on the **val** split
of the data it was trained on (never test: this table chooses the recipe) clean and under every corruption of
model/data/corruptions.py at severities 1-3, with benchmarks/robustness.py's measurement. The table gives per
run its recipe (variant, input size, epochs, --augment, --ema), clean val DSC at the protocol's 256x256 grid,
and the mean DSC drop over all corruptions, over the families the robust recipe trains on something alike
(model/data/photometric.py TRAINED_FAMILIES) and over the families it holds out. Rows accumulate by run name:
robust_recipes.json / .md in outputs/robust_recipes/, or with --update-results the committed
benchmarks/results/ copies (the rows of other runs there are kept).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Dict, Optional, Sequence

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from core.clitools import ArgumentParser, HelpFormatter, add_verbose, check_ranges, user_errors
from core.errors import UserError
from core.paths import BENCHMARK_RESULTS, REPO
from core.safeio import ensure_writable_dir, results_folder, write_results

RESULTS = BENCHMARK_RESULTS
DEFAULT_OUT = REPO / "outputs" / "robust_recipes"
NAME = "robust_recipes"


def recipe_of(run: Path) -> Dict:
    """The run's recipe from its best.pt header (what defines the run), and its selected epoch."""
    from model.networks.checkpoint import load_checkpoint

    ck = load_checkpoint(run / "best.pt")
    ta = ck.get("train_args") or {}
    return {"variant": ck.get("model"), "size": ta.get("size"), "epochs": ta.get("epochs"), "seed": ta.get("seed"),
            "augment": ta.get("augment", "paper"), "ema": ta.get("ema", 0.0), "best_epoch": ck.get("epoch")}


def summarize(scores: Dict) -> Dict:
    """Clean DSC and the mean drops (all, trained-on families, held-out families) from one file's scores."""
    from model.data.photometric import TRAINED_FAMILIES

    dsc = scores["dsc"]
    drops = {k: dsc["clean"] - v for k, v in dsc.items() if k != "clean"}

    def mean(keys) -> Optional[float]:
        return float(np.mean([drops[k] for k in keys])) if keys else None

    trained = [k for k in drops if k.split("/")[0] in TRAINED_FAMILIES]
    held = [k for k in drops if k.split("/")[0] not in TRAINED_FAMILIES]
    return {"clean_dsc": dsc["clean"], "mean_drop": mean(list(drops)), "mean_drop_trained": mean(trained),
            "mean_drop_held_out": mean(held), "worst": max(drops, key=drops.get) if drops else None, "dsc": dsc}


def markdown(doc: Dict) -> str:
    rows: Dict[str, Dict] = doc["runs"]
    lines = ["| run | variant | size | epochs | --augment | --ema | clean val DSC | mean drop | trained-on families | held-out families | worst |",
             "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---|"]
    for name, r in rows.items():
        pts = [f"{100 * r[k]:.2f}" if r.get(k) is not None else "-" for k in ("mean_drop", "mean_drop_trained", "mean_drop_held_out")]
        lines.append(f"| {name} | {r['variant']} | {r['size']} | {r['epochs']} | {r['augment']} | {r['ema']:g} | "
                     f"{r['clean_dsc']:.4f} | " + " | ".join(pts) + f" | {(r['worst'] or '-').replace('_', ' ')} |")
    from model.data.photometric import TRAINED_FAMILIES

    return ("Val split only (the recipe is chosen here, never on test); DSC drops in points, mean over every "
            "corruption and severity 1-3. Trained-on families (the current robust recipe's, for every row): "
            + ", ".join(f.replace("_", " ") for f in TRAINED_FAMILIES) + ".\n\n" + "\n".join(lines) + "\n")


@user_errors
def main(argv: Optional[Sequence[str]] = None) -> Dict:
    p = ArgumentParser(description=__doc__.splitlines()[0], formatter_class=HelpFormatter)
    p.add_argument("runs", nargs="+", help="run folders written by model/train.py (best.pt, log.json)")
    p.add_argument("--data", default=None, help="the dataset the runs trained on (default: the folder their checkpoints record)")
    p.add_argument("--count", type=int, default=0, help="use the first N val images (0 = all)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads for PyTorch")
    p.add_argument("--out", default=None, help=f"folder for {NAME}.json/.md (default: outputs/{NAME}/)")
    p.add_argument("--update-results", action="store_true", help=f"write the committed benchmarks/results/{NAME}.* (other runs' rows kept)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_verbose(p)
    args = p.parse_args(argv)
    check_ranges(args, {"count": 0, "threads": 1})
    runs = [Path(r) for r in args.runs]
    for r in runs:
        if not (r / "best.pt").is_file():
            raise UserError(f"{r}: no best.pt; pass run folders written by model/train.py")
    out = results_folder(args.update_results, args.out, DEFAULT_OUT, (f"{NAME}.json", f"{NAME}.md"))
    ensure_writable_dir(out, "--out")

    from benchmarks.robustness import measure
    from model.data.corruptions import CORRUPTIONS, SEVERITY_LEVELS
    from model.data.locate import training_dataset
    from model.networks.checkpoint import load_checkpoint

    old = out / f"{NAME}.json"
    rows: Dict[str, Dict] = json.loads(old.read_text())["runs"] if old.is_file() else {}
    for r in runs:
        ck = load_checkpoint(r / "best.pt")
        ds = training_dataset(ck, args.data)
        if ds is None:
            raise UserError(f"{r}: its training data is not here (nor under ../shared/data); pass --data with it")
        samples = ds.subset("val")[: args.count or None]
        res = measure([r / "best.pt"], samples, list(CORRUPTIONS), list(SEVERITY_LEVELS), args.threads,
                      progress=not args.no_progress, verbose=args.verbose)
        rows[r.name] = {**recipe_of(r), "n_images": len(samples), **summarize(res["models"]["PyTorch"])}
    from core.machine import device_facts

    doc = {"split": "val", "runs": rows, "cpu": device_facts()["cpu"]}
    md = markdown(doc)
    write_results(out, NAME, doc, md)
    print(md, end="")
    return doc


if __name__ == "__main__":
    main()
