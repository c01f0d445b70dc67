"""The paper's protocol as data and one row of it: which splits each shipped checkpoint is scored on
(EVALUATIONS: its own val and test, and the dermoscopy sets it never saw), the paper's Table 1 figures it is
compared with (PAPER), one row's scoring (evaluate_row) and the table (markdown). model/protocol.py runs it."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence

from core.metrics import RESULT_KEYS
from core.paths import SHIPPED, WEIGHTS_DIR as WEIGHTS

COMMITTED = WEIGHTS / "protocol_results.json"  # what `python model/protocol.py --save` updates


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
    from model.evaluation.pooled import evaluate_samples
    from model.evaluation.provenance import refuse_training_images

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
    from model.networks.checkpoint import load_checkpoint

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
