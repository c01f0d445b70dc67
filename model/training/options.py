"""The training flags' meaning and checks (model/train.py parses them): the schedule, --seeds, --device, the
numbers, which flags define a run and which only drive it. Every check raises a UserError (one line naming
the flag and the fix); only the command line turns it into `error: ...` and exit code 1."""
from __future__ import annotations

import math
from typing import List

import torch

from core.clitools import check_threads
from core.errors import UserError
from core.preprocess import SIZE_MULTIPLE

# At most this many seeds at once: the stacked network, its optimizer state and the per-seed folders grow with K
# (64 is far above the paper's 5; a range such as 0-1000000000 is a typo, not a plan).
MAX_SEEDS = 64
# flags that say how a run is driven, not what it trains: left out of the checkpoint's train_args
RUN_CONTROL_ARGS = ("resume", "stop_after", "no_progress", "time_limit", "save_every")
# flags a resume may change: how and where the run is driven, not what it trains (--data is compared by its
# split instead: the same dataset may sit elsewhere on another machine; --seeds is compared as the fleet's list)
RESUME_MAY_CHANGE = (*RUN_CONTROL_ARGS, "threads", "device", "compile", "engine", "out", "data", "seeds")
# the least value of each numeric flag
MINIMUM = {"epochs": 1, "batch_size": 1, "min_lr": 0.0, "weight_decay": 0.0, "restart_tmax": 1, "size": SIZE_MULTIPLE,
           "limit_train": 0, "limit_val": 0, "threads": 0, "stop_after": 0, "seed": 0, "save_every": 1, "time_limit": 0.0}


def lr_at(epoch: int, args) -> float:
    """Learning rate for a 0-based epoch: cosine from --lr to --min-lr over all epochs, or restarting every
    2 x --restart-tmax epochs (--schedule restart, the reference code's CosineAnnealingLR(T_max=50))."""
    period = args.epochs if args.schedule == "cosine" else args.restart_tmax
    return args.min_lr + (args.lr - args.min_lr) * (1 + math.cos(math.pi * epoch / period)) / 2


def _seeds_error(text: str, why: str) -> UserError:
    return UserError(f"--seeds {text}: {why}")


def parse_seeds(text: str) -> List[int]:
    """'0,1,2', '0-4' or a mix ('0-2,7') -> [0, 1, 2, ...]; UserError when malformed or too many."""
    seeds: List[int] = []
    too_many = "{n} seeds; a fleet trains at most %d at once (each seed adds a copy of the network); train them in groups" % MAX_SEEDS
    try:
        for part in str(text).split(","):
            part = part.strip()
            if "-" in part:
                a, b = part.split("-", 1)
                lo, hi = int(a), int(b)
                if hi < lo:
                    raise ValueError
                if hi - lo + 1 + len(seeds) > MAX_SEEDS:  # counted before the range is expanded
                    raise _seeds_error(text, too_many.format(n=hi - lo + 1 + len(seeds)))
                seeds += list(range(lo, hi + 1))
            else:
                seeds.append(int(part))
    except ValueError as e:
        if isinstance(e, UserError):
            raise
        raise _seeds_error(text, "cannot read it; give seeds like 0,1,2,3,4 or 0-4") from None
    if not seeds or any(s < 0 for s in seeds):
        raise _seeds_error(text, "cannot read it; give non-negative seeds like 0,1,2,3,4 or 0-4")
    if len(set(seeds)) != len(seeds):
        raise _seeds_error(text, "names a seed twice; list each seed once")
    if len(seeds) > MAX_SEEDS:
        raise _seeds_error(text, too_many.format(n=len(seeds)))
    return seeds


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


def check_numbers(args, stem_stride: int = 1) -> None:
    """Every numeric flag's range (after --size is resolved to the variant's own)."""
    for flag, low in MINIMUM.items():
        value = getattr(args, flag)
        if value < low:
            raise UserError(f"--{flag.replace('_', '-')} must be at least {low:g} (got {value})" if isinstance(low, float)
                            else f"--{flag.replace('_', '-')} must be at least {low} (got {value})")
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


def check_recipe(args, engine: str) -> None:
    """--ema in [0, 1); --augment robust and --ema need a step that runs Python between kernels (not a captured graph)."""
    if not (0.0 <= args.ema < 1.0):
        raise UserError(f"--ema {args.ema:g}: give a decay in [0, 1), e.g. 0.999 (0 = off)")
    extras = [f for f, on in (("--augment robust", args.augment == "robust"), (f"--ema {args.ema:g}", args.ema > 0)) if on]
    if extras and engine.startswith("capture"):
        raise UserError(f"{extras[0]} does not run inside a captured CUDA graph (--engine {engine}); "
                        f"use --engine cudagraph, compile or eager")


def check_batches(n: int, batch_size: int) -> None:
    """BatchNorm cannot train on a batch of one image (a 1x1 feature map has one value per channel)."""
    if n % batch_size == 1:
        fix = f"a --batch-size that leaves a larger last batch, or --limit-train {n - 1}" if n > 1 else "more training images"
        raise UserError(f"--batch-size {batch_size}: {n} training images leave a last batch of 1 image, which "
                        f"BatchNorm cannot train on; use {fix}")
