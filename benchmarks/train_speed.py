"""Training speed: `python benchmarks/train_speed.py [--paths eager,fast] [--json F]`.

Measures the full training step (augmentation + forward + loss + backward + AdamW) of each path
in one process, interleaved in rounds so that both see the same machine load, and projects the
time of one epoch and of the paper's 400 epochs for a training set of `--train-size` images.

Paths: `eager` is the plain module (channels_last), `fast` is the trainer's default
(`torch.compile` of the forward + loss). Batches come from real images when `--data` has them,
else from synthetic lesions (said in the JSON). The compile time is reported on its own, not
counted in the throughput.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "isic2018"
PATHS = {"eager": False, "fast": True}  # path name -> torch.compile on


def _batches(data: str, n: int, size: int, seed: int):
    from model.data import DataError, load_arrays, open_dataset

    try:
        samples = open_dataset(data).subset("train")[:n]
        x, y = load_arrays(samples, size)
        return x, y, f"{data} (first {len(samples)} train images)"
    except DataError as e:
        from model.preprocess import preprocess_image, preprocess_mask
        from model.synthetic import make_lesion

        rng = np.random.default_rng(seed)
        pairs = [make_lesion(rng) for _ in range(n)]
        x = np.stack([preprocess_image(img, size) for img, _ in pairs])
        y = np.stack([preprocess_mask(m, size) for _, m in pairs])
        return x, y, f"synthetic lesions ({e})"


def measure(paths, device: torch.device, batch: int, steps: int, rounds: int, size: int, data: str,
            variant: str = "v3", seed: int = 0, progress: bool = True):
    from tqdm import tqdm

    from model.aulunet import build_model
    from model.augment import augment
    from model.train import make_loss_fn, train_step

    x, y, source = _batches(data, max(4 * batch, 32), size, seed)
    xt = torch.from_numpy(x).to(device)
    yt = torch.from_numpy(y).float().unsqueeze(1).to(device)
    runs = {}
    for name in paths:
        torch.manual_seed(seed)
        model = build_model(variant).to(device).to(memory_format=torch.channels_last).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
        runs[name] = {"model": model, "opt": opt, "loss_fn": make_loss_fn(model, PATHS[name]),
                      "gen": torch.Generator().manual_seed(seed), "ms": [], "compile_s": None}

    def step(r, i):
        idx = torch.arange(i * batch, (i + 1) * batch) % len(xt)
        xb, yb = augment(xt[idx.to(device)], yt[idx.to(device)], r["gen"])
        return train_step(r["loss_fn"], r["opt"], xb, yb)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for name, r in runs.items():  # warm-up; the first call of the fast path compiles
        t0 = time.perf_counter()
        step(r, 0).item()
        sync()
        r["compile_s"] = round(time.perf_counter() - t0, 2)
        for i in range(2):
            step(r, i).item()
    bar = tqdm(total=rounds * len(runs), desc="train_speed", disable=not progress)
    for _ in range(rounds):
        for name, r in runs.items():
            sync()
            t0 = time.perf_counter()
            for i in range(steps):
                loss = step(r, i)
            loss.item()
            sync()
            r["ms"].append((time.perf_counter() - t0) * 1000 / steps)
            bar.update()
    bar.close()
    out = []
    for name, r in runs.items():
        ms = statistics.median(r["ms"])
        out.append({"path": name, "device": str(device), "batch": batch, "threads": torch.get_num_threads(),
                    "img_per_s": round(batch * 1000 / ms, 2), "ms_per_step": round(ms, 2),
                    "round_ms": [round(v, 2) for v in r["ms"]], "first_step_s": r["compile_s"]})
    return out, source


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--paths", default="eager,fast", help=f"comma-separated, from {', '.join(PATHS)}")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    p.add_argument("--batch", type=int, default=8, help="images per step (the paper's 8)")
    p.add_argument("--steps", type=int, default=10, help="steps per path and round")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds; the median round counts")
    p.add_argument("--size", type=int, default=256, help="input size")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch default)")
    p.add_argument("--data", default=str(DEFAULT_DATA), help="images for the batches (synthetic when absent)")
    p.add_argument("--train-size", type=int, default=1815, help="training-set size for the projections (ISIC 2018: 1815)")
    p.add_argument("--epochs", type=int, default=400, help="epochs for the projection")
    p.add_argument("--json", default=None, help="write the results here as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    paths = [s.strip() for s in args.paths.split(",") if s.strip()]
    bad = [s for s in paths if s not in PATHS]
    if bad or not paths:
        raise SystemExit(f"error: --paths: unknown path '{bad[0] if bad else ''}'; choose from {', '.join(PATHS)}")
    for flag in ("batch", "steps", "rounds", "size", "train_size", "epochs"):
        if getattr(args, flag) < 1:
            raise SystemExit(f"error: --{flag.replace('_', '-')} must be at least 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    from model.train import pick_device

    device = pick_device(args.device)
    results, source = measure(paths, device, args.batch, args.steps, args.rounds, args.size, args.data,
                              progress=not args.no_progress)
    for r in results:
        epoch_s = args.train_size / r["img_per_s"]
        r["epoch_s"] = round(epoch_s, 1)
        r["projected_h"] = round(epoch_s * args.epochs / 3600, 2)
    base = next((r for r in results if r["path"] == "eager"), None)
    if base:
        for r in results:
            r["speedup_vs_eager"] = round(r["img_per_s"] / base["img_per_s"], 3)
    report = {"results": results, "data": source, "size": args.size, "train_size": args.train_size,
              "epochs": args.epochs, "torch": torch.__version__, "machine": platform.machine(),
              "cpu_capability": torch.backends.cpu.get_cpu_capability(),
              "note": "training step incl. augmentation; projections exclude evaluation and compile time"}
    text = json.dumps(report, indent=1)
    if args.json:
        from model.checkpoint import atomic_write_text

        atomic_write_text(args.json, text + "\n")
    print(f"| path | device | threads | img/s | ms/step | epoch ({args.train_size} img) | {args.epochs} epochs |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['path']} | {r['device']} | {r['threads']} | {r['img_per_s']} | {r['ms_per_step']} | "
              f"{r['epoch_s']} s | {r['projected_h']} h |")
    return report


if __name__ == "__main__":
    main()
