"""Train AULUNet: `python model/train.py [--data DIR] [--variant v3] [--epochs 400] [--out runs/NAME]`.

The paper's recipe: BCE + Dice, AdamW (lr 1e-3, weight decay 1e-2), batch 8, 400 epochs, flips and
rotations, 256x256 inputs. `--schedule cosine` anneals once from lr to 1e-5 over all epochs (the
paper's text); `--schedule restart` is the public reference code's CosineAnnealingLR(T_max=50),
which climbs back up and so restarts every 100 epochs. The best checkpoint (by pooled val DSC) and
the last one (with optimizer and RNG state, for `--resume`) are written atomically after each
epoch, with a JSON log of every epoch.

`--seeds 0-4` trains a fleet: several seeds at once in one process, as one network (docs/gpu.md), one
folder per seed plus fleet_last.pt; each seed equals its run alone up to float rounding. `torchrun
--nproc-per-node N model/train.py ...` spreads each batch over N processes (model/training/ddp.py).

A run folder holds one run: training into one that has a run's files is refused unless `--resume`, and
a resume continues the same run or is refused: every flag that defines the run must be the one it was
started with (how it is driven may change: --stop-after, --threads, --device, --compile, --engine,
--no-progress ...), and the data must have the same split (its hash is in the checkpoint). A loss,
weights or val metrics that stop being finite end the run with an error naming the epoch, before
anything of that epoch is saved. The trainer lives in model/training/.

Engines (`--engine`; default: `compile` on the CPU, `cudagraph` on CUDA, `eager` with --no-compile):
`torch.compile` of the forward + loss on channels_last tensors fuses the BatchNorm forward/backward that
dominate the eager step (~1.5x on 2 CPU cores); the first step compiles (~1 min cold, seconds with the
inductor cache warm), an odd-sized last batch once more. `capture` replays the whole step as a CUDA graph.
Checkpoints carry no `_orig_mod.` keys.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.clitools import ArgumentParser, HelpFormatter, user_errors
from core.paths import SHARED_DATA

DEFAULT_DATA = SHARED_DATA / "ph2"  # training's default: the small PH2 set


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
    p.add_argument("--seeds", default=None, help="train these seeds at once as a fleet, e.g. 0,1,2,3,4 or 0-4 (one folder per seed under --out)")
    p.add_argument("--augment", choices=["paper", "robust"], default="paper",
                   help="training augmentation: the paper's flips and rotations, or those plus the robust recipe's "
                        "photometric changes and drawn hair and ink (model/data/photometric.py)")
    p.add_argument("--ema", type=float, default=0.0, help="decay of an exponential moving average of the weights, "
                                                           "evaluated and shipped instead of them, e.g. 0.999 (0 = off)")
    p.add_argument("--size", type=int, default=0, help="input size (0 = the variant's own: 256 for the paper's, 128 for aulunet_v3_in128; smaller for quick tests)")
    p.add_argument("--limit-train", type=int, default=0, help="use only the first N training images (0 = all)")
    p.add_argument("--limit-val", type=int, default=0, help="use only the first N validation images (0 = all)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch default)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True,
                   help="--engine auto compiles the training forward + loss (--no-compile: plain eager)")
    p.add_argument("--engine", default="auto", help="training step: auto, eager, compile, cudagraph, capture or capture-eager")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp64"], default="fp32",
                   help="fp32; bf16 = bfloat16 autocast of the forward; fp64 = all in float64 (slow; for exactness checks)")
    p.add_argument("--out", default=None, help="run folder (default runs/<variant>_<schedule>_s<seed>, or _seeds<list>)")
    p.add_argument("--resume", action="store_true", help="continue from <out>/last.pt (a fleet: <out>/fleet_last.pt)")
    p.add_argument("--stop-after", type=int, default=0, help="stop after this many epochs in total (simulates a kill)")
    p.add_argument("--time-limit", type=float, default=0, help="stop resumably at the last epoch that fits in this many seconds (0: no limit)")
    p.add_argument("--save-every", type=int, default=1, help="write checkpoints every N epochs (and at the end or a stop)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p.parse_args(argv)


@user_errors
def main(argv=None) -> dict:
    from model.training import train

    return train(parse_args(argv), defaults=vars(parse_args([])))


if __name__ == "__main__":
    main()
