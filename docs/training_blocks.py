"""The generated blocks about training and the paper's protocol: the shipped checkpoints' val metrics, their
runs and schedules, the paper's Table 1 beside the protocol's rows, the training speed (docs/generate.py)."""
from __future__ import annotations

import statistics
from typing import Dict, List

from docs.tables import DATASETS, PENDING, RESULTS, SHIPPED, WEIGHTS, _json


def _log_figures(log: Dict) -> Dict:
    ep = log["epochs"]
    last50 = [e["val_dsc"] for e in ep[-50:]]
    return {"best": log["best"], "last": ep[-1], "mean50": statistics.fmean(last50), "std50": statistics.pstdev(last50),
            "epochs": len(ep), "minutes": sum(e["seconds"] for e in ep) / 60,
            "median_s": statistics.median(e["seconds"] for e in ep)}


def _checkpoint_table(dataset: str, label: str) -> List[str]:
    m = _json(WEIGHTS / f"aulunet_v3_{dataset}.metrics.json")
    log = _json(WEIGHTS / f"aulunet_v3_{dataset}.train_log.json")
    if m is None:
        return [f"| {label} val | {PENDING} | | | | | | | |"]
    best = f" (best epoch {log['best']['epoch']} of {len(log['epochs'])})" if log else ""
    return [f"| {label} val{best} | {m['n_images']} | **{m['dsc']:.4f}** | **{m['miou']:.4f}** | {m['accuracy']:.4f} | "
            f"{m['specificity']:.4f} | {m['sensitivity']:.4f} | {m['mean_image_dsc']:.4f} | "
            f"{'n/a' if m.get('thresholded_jaccard') is None else format(m['thresholded_jaccard'], '.4f')} |"]


def checkpoints() -> str:
    rows = ["| split | images | DSC | mIoU (fg IoU) | accuracy | specificity | sensitivity | mean per-image DSC | "
            "ISIC thresholded Jaccard |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for dataset, label in DATASETS:
        rows += _checkpoint_table(dataset, label)
    return "\n".join(rows)


def ph2_run() -> str:
    f = _log_figures(_json(WEIGHTS / f"{SHIPPED}.train_log.json"))
    return (f"{f['epochs']} epochs, {f['median_s']:.0f} s per epoch (median), {f['minutes']:.0f} min in all. "
            f"Best epoch {f['best']['epoch']}: DSC {f['best']['dsc']:.4f} / mIoU {f['best']['miou']:.4f}; last epoch: "
            f"DSC {f['last']['val_dsc']:.4f} / mIoU {f['last']['val_miou']:.4f}; mean of the last 50 epochs: "
            f"DSC {f['mean50']:.4f} +- {f['std50']:.4f}.")


def isic_runs() -> str:
    """One row per ISIC run: its length, time and the val figures of the selected and the last epoch."""
    rows = ["| run | epochs | s per epoch (median) | hours | best val DSC / mIoU (epoch) | last epoch DSC / mIoU | "
            "last-10 mean val DSC (+- std) |", "|---|---:|---:|---:|---:|---:|---:|"]
    for dataset, label in DATASETS[1:]:
        log = _json(WEIGHTS / f"aulunet_v3_{dataset}.train_log.json")
        if log is None:
            rows.append(f"| {label} | {PENDING} | | | | | |")
            continue
        f, last10 = _log_figures(log), [e["val_dsc"] for e in log["epochs"][-10:]]
        b, last = f["best"], f["last"]
        rows.append(f"| {label} (`aulunet_v3_{dataset}.train_log.json`) | {f['epochs']} | {f['median_s']:.0f} | "
                    f"{f['minutes'] / 60:.1f} | {b['dsc']:.4f} / {b['miou']:.4f} ({b['epoch']}) | "
                    f"{last['val_dsc']:.4f} / {last['val_miou']:.4f} | {statistics.fmean(last10):.4f} +- "
                    f"{statistics.pstdev(last10):.4f} |")
    return "\n".join(rows)


def schedules() -> str:
    rows = ["| `--schedule` | best val DSC / mIoU (epoch) | last epoch DSC / mIoU | last-50 mean DSC (+- std) |",
            "|---|---:|---:|---:|"]
    for label, log in (("**cosine** (paper: once to 1e-5; default)", f"{SHIPPED}.train_log.json"),
                       ("restart (reference code: CosineAnnealingLR T_max=50)", "schedule_restart_s0.train_log.json")):
        f = _log_figures(_json(WEIGHTS / log))
        b, last = f["best"], f["last"]
        rows.append(f"| {label} | {b['dsc']:.4f} / {b['miou']:.4f} ({b['epoch']}) | {last['val_dsc']:.4f} / "
                    f"{last['val_miou']:.4f} | {f['mean50']:.4f} +- {f['std50']:.4f} |")
    return "\n".join(rows)


def _protocol_rows() -> List[Dict]:
    data = _json(WEIGHTS / "protocol_results.json")
    return data["rows"] if data else []


def paper() -> str:
    """ISIC test figures beside the paper's Table 1 (mIoU / DSC in %)."""
    from model.evaluation.protocol import PAPER

    rows = {(r["model"], r["dataset"], r["split"]): r for r in _protocol_rows()}
    out = ["| model | ISIC 2018 mIoU | ISIC 2018 DSC | ISIC 2017 mIoU | ISIC 2017 DSC | epochs | seeds | images |",
           "|---|---:|---:|---:|---:|---:|---:|---|"]
    for name in PAPER["isic2018"]:
        a, b = PAPER["isic2018"][name], PAPER["isic2017"][name]
        out.append(f"| {name} | {a[0]:.2f} | {a[1]:.2f} | {b[0]:.2f} | {b[1]:.2f} | 400 | mean of 5 | official, full size |")
    cells, epochs = [], []
    for ds in ("isic2018", "isic2017"):
        r = rows.get((f"aulunet_v3_{ds}", ds, "test"))
        cells += [PENDING, PENDING] if r is None else [f"{100 * r['miou']:.2f}", f"{100 * r['dsc']:.2f}"]
        epochs.append(PENDING if r is None else f"{r['epochs_run']} (best {r['epoch']})")
    out.append(f"| AULUNet-v3, this toolkit (test split, once) | {' | '.join(cells)} | {' / '.join(epochs)} | 1 (seed 0) | "
               f"reduced (ISIC 2018 at 256x192), ../shared splits |")
    cross = [f"{label} model {100 * r['dsc']:.2f} / {100 * r['miou']:.2f}" for ds, label in DATASETS[1:]
             if (r := rows.get((f"aulunet_v3_{ds}", "ph2", "all")))]
    if cross:
        out += ["", f"On PH2, a dermoscope neither ISIC model saw (all 150 cases), DSC / mIoU: {'; '.join(cross)}."]
    return "\n".join(out)


def protocol() -> str:
    """Every row of model/protocol.py: each checkpoint on its val and test splits and on unseen datasets."""
    from model.evaluation.protocol import markdown

    rows = _protocol_rows()
    return markdown(rows).rstrip() if rows else PENDING


def train_speed() -> str:
    data = _json(RESULTS / "train_speed_cpu.json")
    if not data:
        return PENDING
    out = ["| path | device | threads | img/s | ms/step | vs eager | epoch of ISIC 2018 (1,815 images) | 400 epochs |",
           "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in data["results"]:
        out.append(f"| {r['path']} | {r['device']} ({data.get('cpu_capability', '')}) | {r['threads']} | {r['img_per_s']:.1f} | "
                   f"{r['ms_per_step']:.0f} | {r.get('speedup_vs_eager', 1):.2f}x | {r['epoch_s']:.0f} s | {r['projected_h']:.1f} h |")
    return "\n".join(out)
