"""The paper's protocol and cross-dataset checks for the shipped checkpoints:
`python model/protocol.py [--models aulunet_v3_ph2,...] [--save]`.

Each shipped checkpoint is scored on its own dataset's val and test splits (test once, never used to
choose anything) and on the other dermoscopy sets it never saw: the ISIC models on all 150 PH2 cases,
the PH2 model on each ISIC test split. ISIC 2017 and 2018 share 1,800 cases, so neither ISIC model is
scored on the other's data (model/provenance.py refuses it). Pooled metrics at 256x256, threshold 0.5,
plus ISIC's per-image Jaccard figures.

Writes JSON + Markdown to outputs/protocol/ by default; `--save` updates the committed
model/weights/protocol_results.json (the rows of the models evaluated, the others kept).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.clitools import ArgumentParser, HelpFormatter, add_verbose, quiet, user_errors
from core.errors import UserError
from core.metrics import RESULT_KEYS

from core.paths import REPO, SHARED_DATA as DATA, SHIPPED, WEIGHTS_DIR as WEIGHTS  # noqa: E402

COMMITTED = WEIGHTS / "protocol_results.json"

# checkpoint -> (dataset, split, role): "val" selected the epoch, "test" is reported once, "cross" is unseen data.
def _evaluations(dataset: str) -> List[tuple]:
    if dataset == "ph2":  # the PH2 model is scored on the ISIC test splits it never saw
        return [("ph2", "val", "val"), ("isic2018", "test", "cross"), ("isic2017", "test", "cross")]
    return [(dataset, "val", "val"), (dataset, "test", "test"), ("ph2", "all", "cross")]


EVALUATIONS: Dict[str, List[tuple]] = {model: _evaluations(ds) for model, ds in SHIPPED.items()}
# The paper's Table 1 (mean of 5 runs, official ISIC files, 400 epochs): AULUNet-v3 and the U-Net baseline
# it states gains over (mIoU, DSC in %).
PAPER = {"isic2018": {"AULUNet-v3 (paper)": (82.44, 90.37), "U-Net (paper)": (74.64, 85.48)},
         "isic2017": {"AULUNet-v3 (paper)": (85.32, 92.08), "U-Net (paper)": (79.55, 88.61)}}


def evaluate_row(model: str, dataset: str, split: str, role: str, data_root: Path, threads: int,
                 progress: bool) -> Dict:
    import runtimes
    from model.data import DataError, open_dataset
    from model.evaluate import evaluate_samples
    from model.provenance import refuse_training_images

    weights = WEIGHTS / f"{model}.pt"
    folder = data_root / dataset
    if not folder.is_dir():  # protocol has no --data: each dataset is a folder under --data-root
        fetch = f"python model/download.py {dataset} or " if dataset.startswith("isic") else ""
        raise DataError(f"{folder}: dataset folder not found; put {dataset}/ under --data-root ({fetch}a copy of "
                        f"../shared/data/{dataset}), or pass --data-root with the folder that holds it")
    samples = open_dataset(folder).subset(split)
    refuse_training_images(weights, samples, split)
    seg = runtimes.load(weights, threads=threads)
    res = evaluate_samples(seg, samples, progress=progress)
    from model.checkpoint import load_checkpoint

    ck = load_checkpoint(weights)
    row = {"model": model, "dataset": dataset, "split": split, "role": role, **{k: res[k] for k in RESULT_KEYS}}
    row["epoch"] = ck["metrics"]["val"].get("epoch")
    row["epochs_run"] = ck["train_args"]["epochs"]
    return row


def markdown(rows: Sequence[Dict]) -> str:
    lines = ["| model | data | split | role | images | DSC | mIoU (fg IoU) | accuracy | specificity | sensitivity "
             "| Jaccard mean | thresholded Jaccard |", "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['dataset']} | {r['split']} | {r['role']} | {r['n_images']} | "
                     f"{r['dsc']:.4f} | {r['miou']:.4f} | {r['accuracy']:.4f} | {r['specificity']:.4f} | "
                     f"{r['sensitivity']:.4f} | {r['jaccard_mean']:.4f} | {r['thresholded_jaccard']:.4f} |")
    return "\n".join(lines) + "\n"


@user_errors
def main(argv: Optional[Sequence[str]] = None) -> Dict:
    p = ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--models", default=",".join(m for m in EVALUATIONS if (WEIGHTS / f"{m}.pt").is_file()),
                   help=f"comma-separated shipped checkpoints, from {', '.join(EVALUATIONS)} (default: those present)")
    p.add_argument("--data-root", default=str(DATA), help="folder holding isic2018/, isic2017/ and ph2/")
    p.add_argument("--out", default=str(REPO / "outputs" / "protocol"), help="folder for results.json and results.md")
    p.add_argument("--save", action="store_true", help=f"also update the committed {COMMITTED.relative_to(REPO)}")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for PyTorch (0 = its default)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_verbose(p)
    args = p.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    bad = [m for m in models if m not in EVALUATIONS]
    if bad or not models:
        raise UserError(f"--models: unknown checkpoint '{bad[0] if bad else ''}'; choose from {', '.join(EVALUATIONS)}")
    missing = [m for m in models if not (WEIGHTS / f"{m}.pt").is_file()]
    if missing:
        raise UserError(f"--models: {WEIGHTS / (missing[0] + '.pt')} not found; train it first (model/weights/in_progress/README.md)")
    from tqdm import tqdm

    from core.safeio import atomic_write_text

    jobs = [(m, *e) for m in models for e in EVALUATIONS[m]]
    rows, failed = [], []
    for job in tqdm(jobs, desc="protocol", disable=args.no_progress):
        try:
            with quiet(args.verbose):
                rows.append(evaluate_row(*job, Path(args.data_root), args.threads, progress=False))
        except UserError as e:  # one row's data or model is unusable: the others still run, and what finished is kept
            failed.append({"model": job[0], "dataset": job[1], "split": job[2], "error": str(e)})
    out = Path(args.out)
    atomic_write_text(out / "results.json", json.dumps({"rows": rows, **({"failed": failed} if failed else {})}, indent=1) + "\n")
    atomic_write_text(out / "results.md", markdown(rows))
    if failed:
        first = failed[0]
        raise UserError(f"{len(failed)} of {len(jobs)} rows failed, first {first['model']} on {first['dataset']} "
                        f"{first['split']}: {first['error']}; the {len(rows)} finished are in {out / 'results.json'} "
                        f"(with the failures), {'the committed results were not updated; ' if args.save else ''}"
                        f"fix it and run again")
    if args.save:
        kept = json.loads(COMMITTED.read_text())["rows"] if COMMITTED.is_file() else []
        merged = [r for r in kept if r["model"] not in models] + rows
        order = list(EVALUATIONS)
        merged.sort(key=lambda r: (order.index(r["model"]), [e[:2] for e in EVALUATIONS[r["model"]]].index((r["dataset"], r["split"]))))
        atomic_write_text(COMMITTED, json.dumps({"rows": merged}, indent=1) + "\n")
    print(markdown(rows), end="")
    print(f"wrote {out / 'results.json'}, {out / 'results.md'}" + (f" and {COMMITTED}" if args.save else ""))
    return {"rows": rows}


if __name__ == "__main__":
    main()
