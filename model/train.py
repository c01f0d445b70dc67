"""Train AULUNet: `python model/train.py [--data DIR] [--variant v3] [--epochs 400] [--out runs/NAME]`.

The paper's recipe: BCE + Dice, AdamW (lr 1e-3, weight decay 1e-2), batch 8, 400 epochs, flips and
rotations, 256x256 inputs. `--schedule cosine` anneals once from lr to 1e-5 over all epochs (the
paper's text); `--schedule restart` is the public reference code's CosineAnnealingLR(T_max=50),
which climbs back up and so restarts every 100 epochs. The best checkpoint (by pooled val DSC) and
the last one (with optimizer and RNG state, for `--resume`) are written atomically after each
epoch, with a JSON log of every epoch.

A run folder holds one run: training into one that has best.pt, last.pt or log.json is refused unless
`--resume`, and a resume continues the same run or is refused: every flag that defines the run must be
the one it was started with (how it is driven may change: --stop-after, --threads, --device, --compile,
--no-progress ...), and the data must have the same split (its hash is in the checkpoint). A loss,
weights or val metrics that stop being finite end the run with an error naming the epoch, before
anything of that epoch is saved.

Fast path (default; `--no-compile` turns it off): the training forward and loss run through
`torch.compile` on channels_last tensors, which fuses the BatchNorm forward/backward that dominate
the eager step (~1.5x on 2 CPU cores). Evaluation and `state_dict` stay on the plain module, so
checkpoints carry no `_orig_mod.` keys. The first step compiles (~1 min cold, seconds with the
inductor cache warm); an odd-sized last batch compiles once more.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

from model.aulunet import build_model, get_config
from model.augment import augment
from model.checkpoint import FORMAT, TOOLKIT_VERSION, atomic_write_text, load_checkpoint, save_atomic
from model.clitools import ArgumentParser, HelpFormatter, check_ranges, check_threads, user_errors
from model.data import DataError, load_arrays, open_dataset
from model.errors import CheckpointError, UserError
from model.preprocess import SIZE_MULTIPLE
from model.safeio import ensure_writable_dir
from model.losses import bce_dice_loss
from model.metrics import PooledMetrics
from model.preprocess import PREPROCESSING, THRESHOLD

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "ph2"  # training's default data stays the small PH2 set


def lr_at(epoch: int, args) -> float:
    """Learning rate for a 0-based epoch."""
    period = args.epochs if args.schedule == "cosine" else args.restart_tmax
    return args.min_lr + (args.lr - args.min_lr) * (1 + math.cos(math.pi * epoch / period)) / 2


# flags that say how a run is driven, not what it trains: left out of the checkpoint's train_args
RUN_CONTROL_ARGS = ("resume", "stop_after", "no_progress", "time_limit", "save_every")
# flags a resume may change: how and where the run is driven, not what it trains (--data is compared by its
# split instead: the same dataset may sit elsewhere on another machine; --seeds is compared by the K-seed trainer)
RESUME_MAY_CHANGE = (*RUN_CONTROL_ARGS, "threads", "device", "compile", "engine", "out", "data", "seeds")
# what a single-seed run folder holds; one of them present means the folder holds a run
RUN_FILES = ("best.pt", "last.pt", "log.json")


def model_name(variant: str) -> str:
    return variant if variant.startswith("aulunet_") else f"aulunet_{variant}"


def _flag_text(key: str, value) -> str:
    return f"--{key.replace('_', '-')} {value}"


def check_resume(path, recorded: dict, args, skip=(), extra=()) -> None:
    """The one resume check of both trainers: a resume continues the run `path` recorded or is refused.

    Every flag that defines the run (all of train.py's but RESUME_MAY_CHANGE and `skip`) must equal the value in
    the checkpoint's `train_args` (a flag the recording version did not have counts as its default; the variant
    by its full registry name); `extra` adds (flag, now, then) triples the caller compares itself (--seeds).
    CheckpointError naming every flag that differs and its recorded value."""
    defaults = vars(parse_args([]))
    diffs = [(k, now, then) for k, now, then in extra if now != then]
    for key, now in vars(args).items():
        if key in RESUME_MAY_CHANGE or key in skip:
            continue
        then = recorded.get(key, defaults.get(key))
        if key == "variant":
            now, then = model_name(str(now)), model_name(str(then))
        if now != then:
            diffs.append((key, now, then))
    if diffs:
        said = "; ".join(f"{_flag_text(k, now)} but the run was started with {_flag_text(k, then)}" for k, now, then in diffs)
        raise CheckpointError(f"{path}: {said}; resume with the same values (or start a new run with another --out)")


def check_resume_data(path, recorded: dict, ds, data_flag) -> None:
    """The data of a resume: its split (ids of train/val/test) must be the one the run started on."""
    if not isinstance(recorded, dict) or "split_hash" not in recorded:
        return
    now = ds.split_hash()
    if now != recorded["split_hash"]:
        raise DataError(f"{path}: --data {data_flag} has another split (hash {now}) than the run was started on "
                        f"({recorded.get('root')}, hash {recorded['split_hash']}); resume with the same data "
                        f"(or start a new run with another --out)")


def refuse_existing_run(out: Path, files) -> None:
    """A run folder that already holds a run is continued with --resume or left alone: never overwritten."""
    found = [str(f.relative_to(out)) for f in files if f.exists()]
    if found:
        raise UserError(f"{out}: already holds a run ({', '.join(found)}); pass --resume to continue it, "
                        f"or another --out for a new run (nothing was changed)")


def check_batches(n: int, batch_size: int) -> None:
    """BatchNorm cannot train on a batch of one image (a 1x1 feature map has one value per channel)."""
    if n % batch_size == 1:
        fix = f"a --batch-size that leaves a larger last batch, or --limit-train {n - 1}" if n > 1 else "more training images"
        raise UserError(f"--batch-size {batch_size}: {n} training images leave a last batch of 1 image, which "
                        f"BatchNorm cannot train on; use {fix}")


def diverged(out: Path, epoch: int, what: str, saved_epoch: int, resume_file=None) -> UserError:
    """The error that stops a run whose loss, weights or val metrics stopped being finite (nothing of the epoch saved)."""
    kept = (f"{resume_file or out / 'last.pt'} keeps epoch {saved_epoch}" if saved_epoch else "no checkpoint was written")
    return UserError(f"{out}: epoch {epoch}: {what} (training diverged); nothing of this epoch was saved and {kept}; "
                     f"train again with a lower --lr and another --out")


def remove_if_empty(out: Path) -> None:
    """Remove a run folder this process created when it failed before writing anything (empty subfolders only)."""
    try:
        for d in sorted(out.iterdir()) if out.is_dir() else []:
            if d.is_dir() and not d.is_symlink() and not any(d.iterdir()):
                d.rmdir()
        if out.is_dir() and not any(out.iterdir()):
            out.rmdir()
    except OSError:
        pass


def check_numbers(args, stem_stride: int = 1) -> None:
    """The flags' values both trainers share (after --size is resolved)."""
    check_ranges(args, {"epochs": 1, "batch_size": 1, "min_lr": 0.0, "weight_decay": 0.0, "restart_tmax": 1,
                        "size": SIZE_MULTIPLE, "limit_train": 0, "limit_val": 0, "threads": 0, "stop_after": 0,
                        "seed": 0})
    for flag in ("lr", "min_lr", "weight_decay", "time_limit"):
        if not math.isfinite(getattr(args, flag)):
            raise UserError(f"--{flag.replace('_', '-')} {getattr(args, flag)}: give a finite number")
    if not args.lr > 0:
        raise UserError(f"--lr must be positive (got {args.lr})")
    if args.min_lr > args.lr:
        raise UserError(f"--min-lr {args.min_lr:g} is above --lr {args.lr:g}; the schedule anneals from --lr down to --min-lr")
    if args.batch_size == 1:
        raise UserError("--batch-size 1: BatchNorm needs more than one image per batch to train; use --batch-size 2 or more")
    multiple = SIZE_MULTIPLE * stem_stride
    if args.size % multiple:
        halvings = "five times" if stem_stride == 1 else "six times (a stride-2 stem, then five stages)"
        raise UserError(f"--size {args.size}: give a multiple of {multiple} (the model halves the resolution {halvings})")
    if args.threads:
        check_threads(args.threads)


def run_meta(args, name: str, cfg, ds, n_train: int, n_val: int, drop=(), **train_args) -> dict:
    """The header every checkpoint of a run carries (model, preprocessing at --size, training flags, data and split
    hash); model/multiseed.py writes the same one per seed, with `seed=` set."""
    skip = (*RUN_CONTROL_ARGS, *drop)
    return {
        "format": FORMAT,
        "toolkit_version": TOOLKIT_VERSION,
        "model": name,
        "config": cfg.to_dict(),
        "preprocessing": {**PREPROCESSING, "input_size": [args.size, args.size]},
        "threshold": THRESHOLD,
        "train_args": {**{k: v for k, v in vars(args).items() if k not in skip}, **train_args},
        "data": {"root": str(Path(args.data).resolve()), "layout": ds.layout, "split_source": ds.split_source,
                 "split_hash": ds.split_hash(), "n_train": n_train, "n_val": n_val},
    }


def pick_device(name: str) -> torch.device:
    """--device auto, cpu or cuda[:N] -> torch.device; UserError for a name that is not one, or a GPU not there."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise UserError(f"--device {name}: not a device; use auto, cpu or cuda[:N]")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {name} requested but no CUDA GPU is visible; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f"--device {name}: only {torch.cuda.device_count()} CUDA GPU(s) are visible; "
                            f"use --device cuda:0 .. cuda:{torch.cuda.device_count() - 1}")
    return device


def make_loss_fn(model: torch.nn.Module, compile: bool):
    """(x, y) -> BCE + Dice loss of `model` on a batch; compiled when asked (the module stays plain)."""
    def loss_of(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return bce_dice_loss(model(x), y)

    return torch.compile(loss_of, dynamic=False) if compile else loss_of


def train_step(loss_fn, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """One optimiser step on an (already augmented) batch; returns the loss tensor (not synced)."""
    loss = loss_fn(x.contiguous(memory_format=torch.channels_last), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach()


@torch.no_grad()
def evaluate_arrays(model, x: torch.Tensor, y: np.ndarray, batch: int = 16) -> dict:
    model.eval()
    pm = PooledMetrics()
    for i in range(0, len(x), batch):
        logits = model(x[i:i + batch])
        pm.update((logits[:, 0] > 0).cpu().numpy(), y[i:i + batch])  # logit > 0 <=> sigmoid > 0.5
    return pm.result()


def parse_args(argv=None):
    p = ArgumentParser(description=__doc__.splitlines()[0], formatter_class=HelpFormatter)
    p.add_argument("--data", default=str(DEFAULT_DATA), help="dataset root (generic, ISIC or PH2 layout)")
    p.add_argument("--variant", default="v3", help="registry name, e.g. v3 or aulunet_v3_baseline")
    p.add_argument("--epochs", type=int, default=400, help="training epochs (the paper's 400)")
    p.add_argument("--batch-size", type=int, default=8, help="images per optimiser step")
    p.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate at the start of the schedule")
    p.add_argument("--min-lr", type=float, default=1e-5, help="learning rate at the bottom of the cosine")
    p.add_argument("--weight-decay", type=float, default=1e-2, help="AdamW weight decay")
    p.add_argument("--schedule", choices=["cosine", "restart"], default="cosine",
                   help="cosine: once to min-lr over all epochs; restart: reference CosineAnnealingLR(T_max=50)")
    p.add_argument("--restart-tmax", type=int, default=50, help="--schedule restart: epochs from the top of the cosine to its bottom")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights, the batch order and augmentation (and of the split when there is no split.json)")
    p.add_argument("--size", type=int, default=0, help="input size (0 = the variant's own: 256 for the paper's, 128 for aulunet_v3_in128; smaller for quick tests)")
    p.add_argument("--limit-train", type=int, default=0, help="use only the first N training images (0 = all)")
    p.add_argument("--limit-val", type=int, default=0, help="use only the first N validation images (0 = all)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch default)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True,
                   help="torch.compile the training forward + loss (--no-compile: plain eager)")
    p.add_argument("--out", default=None, help="run folder (default runs/<variant>_<schedule>_s<seed>)")
    p.add_argument("--resume", action="store_true", help="continue from <out>/last.pt")
    p.add_argument("--stop-after", type=int, default=0, help="stop after this many epochs in total (simulates a kill)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    # The K-seed trainer (model/multiseed.py; also what torchrun runs): --seeds selects it.
    p.add_argument("--seeds", default=None, help="train these seeds at once in one process, e.g. 0,1,2,3,4 or 0-4 (K-seed trainer, model/multiseed.py)")
    p.add_argument("--engine", default="auto", help="K-seed trainer's step: auto, eager, compile, cudagraph, capture or capture-eager (model/multiseed.py)")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp64"], default="fp32",
                   help="K-seed trainer: fp32; bf16 = bfloat16 autocast of the forward; fp64 = all in float64 (slow; for exactness checks)")
    p.add_argument("--time-limit", type=float, default=0, help="K-seed trainer: stop resumably at the last epoch that fits in this many seconds (0: no limit)")
    p.add_argument("--save-every", type=int, default=1, help="K-seed trainer: write checkpoints every N epochs (and at the end or a stop)")
    return p.parse_args(argv)


@user_errors
def main(argv=None) -> dict:
    args = parse_args(argv)
    name = model_name(args.variant)
    try:
        cfg = get_config(name)
    except KeyError as e:
        raise UserError(e.args[0]) from None
    if args.size == 0:
        args.size = cfg.input_size
    check_numbers(args, cfg.stem_stride)
    if args.seeds is not None or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from model.multiseed import main as multiseed_main  # K seeds in one process, or torchrun

        return multiseed_main(args)
    if args.engine != "auto" or args.precision != "fp32" or args.time_limit or args.save_every != 1:
        raise UserError("--engine, --precision, --time-limit and --save-every belong to the K-seed trainer; add --seeds (e.g. --seeds 0)")
    out = Path(args.out or REPO / "runs" / f"{name}_{args.schedule}_s{args.seed}")
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: is a file, not a run folder; pass --out with a folder")
    last_path = out / "last.pt"
    ck = None
    if args.resume:
        if not last_path.is_file():
            raise UserError(f"{last_path}: nothing to resume; run without --resume first")
        ck = load_checkpoint(last_path)
        lacking = [k for k in ("optimizer", "rng", "best", "history", "epoch", "train_args") if k not in ck]
        if lacking:
            raise CheckpointError(f"{last_path}: has no '{lacking[0]}' (a slim best.pt?), so it cannot be resumed; "
                                  f"resume from the last.pt that model/train.py wrote beside it")
        check_resume(last_path, ck["train_args"], args, skip=("seeds", "engine", "precision"))
    else:
        refuse_existing_run(out, [out / f for f in RUN_FILES])
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)

    # Data first, the run folder after: bad data must not leave an empty run folder behind.
    ds = open_dataset(args.data, seed=args.seed)
    if ck is not None:
        check_resume_data(last_path, ck.get("data"), ds, args.data)
    try:
        train_s, val_s = ds.subset("train"), ds.subset("val")
    except DataError as e:
        raise DataError(f"{e} (model/train.py trains on 'train' and selects on 'val')") from None
    if args.limit_train:
        train_s = train_s[: args.limit_train]
    if args.limit_val:
        val_s = val_s[: args.limit_val]
    check_batches(len(train_s), args.batch_size)
    show = not args.no_progress
    xtr, ytr = load_arrays(train_s, args.size, progress=show)
    xva, yva = load_arrays(val_s, args.size, progress=show)
    made = not out.exists()
    ensure_writable_dir(out, "--out")
    try:
        return _train(args, name, out, ck, ds, train_s, val_s, xtr, ytr, xva, yva, device, show)
    except BaseException:
        if made:  # a run that failed before it wrote anything leaves no empty folder
            remove_if_empty(out)
        raise


def _train(args, name, out, ck, ds, train_s, val_s, xtr, ytr, xva, yva, device, show) -> dict:
    mem = torch.channels_last
    xtr_t = torch.from_numpy(xtr).to(device)
    ytr_t = torch.from_numpy(ytr).float().unsqueeze(1).to(device)
    xva_t = torch.from_numpy(xva).to(device).contiguous(memory_format=mem)

    torch.manual_seed(args.seed)
    model = build_model(name).to(device).to(memory_format=mem)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    gen = torch.Generator().manual_seed(args.seed)
    start, best, history = 0, {"dsc": -1.0}, []

    last_path, best_path = out / "last.pt", out / "best.pt"
    if ck is not None:
        model.load_state_dict(ck["state_dict"])
        opt.load_state_dict(ck["optimizer"])
        gen.set_state(ck["rng"])
        start, best, history = ck["epoch"], ck["best"], ck["history"]

    meta = run_meta(args, name, model.cfg, ds, len(train_s), len(val_s), drop=("seeds", "engine", "precision"))
    from tqdm import tqdm

    loss_fn = make_loss_fn(model, args.compile)
    n = len(xtr_t)
    bar = tqdm(range(start, args.epochs), initial=start, total=args.epochs, desc=name, disable=not show)
    for epoch in bar:
        t0 = time.time()
        lr = lr_at(epoch, args)
        for g in opt.param_groups:
            g["lr"] = lr
        model.train()
        perm = torch.randperm(n, generator=gen)
        losses = []
        for i in range(0, n, args.batch_size):
            idx = perm[i:i + args.batch_size].to(device)
            xb, yb = augment(xtr_t[idx], ytr_t[idx], gen)
            loss = train_step(loss_fn, opt, xb, yb).item()
            if not math.isfinite(loss):
                raise diverged(out, epoch + 1, f"the training loss is {loss} at image {i} of {n}", len(history))
            losses.append(loss)
        val = evaluate_arrays(model, xva_t, yva)
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        bad = next((k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()), None)
        if bad is not None:
            raise diverged(out, epoch + 1, f"the weights are not finite ({bad})", len(history))
        if not all(math.isfinite(val[k]) for k in ("dsc", "miou")):
            raise diverged(out, epoch + 1, f"val DSC {val['dsc']}, mIoU {val['miou']}", len(history))
        rec = {"epoch": epoch + 1, "lr": lr, "loss": float(np.mean(losses)), "val_dsc": val["dsc"],
               "val_miou": val["miou"], "seconds": round(time.time() - t0, 3)}
        history.append(rec)
        if val["dsc"] > best["dsc"]:
            best = {**{k: val[k] for k in ("dsc", "miou", "accuracy", "specificity", "sensitivity", "n_images")}, "epoch": epoch + 1}
            save_atomic({**meta, "state_dict": state, "epoch": epoch + 1, "metrics": {"val": best}}, best_path)
        save_atomic({**meta, "state_dict": state, "epoch": epoch + 1, "metrics": {"val": val},
                     "optimizer": opt.state_dict(), "rng": gen.get_state(), "best": best, "history": history}, last_path)
        atomic_write_text(out / "log.json", json.dumps({"run": meta, "best": best, "epochs": history}, indent=1))
        bar.set_postfix(loss=f"{rec['loss']:.4f}", dsc=f"{val['dsc']:.4f}", best=f"{best['dsc']:.4f}")
        if args.stop_after and epoch + 1 >= args.stop_after:
            break
    bar.close()
    from model.visualize import plot_training

    plot_training({"epochs": history, "best": best}, out / "curve.png")
    summary = {"out": str(out), "best": best, "epochs_done": len(history)}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
