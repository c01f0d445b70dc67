"""The trainer behind model/train.py: one loop for one seed or a fleet of K seeds trained at once.

    options.py    the flags' meaning and checks: schedule (lr_at), --seeds, --device, numbers, run-defining flags
    network.py    a fleet's network: K AULUNets stacked as one module (grouped convolutions), and back
    scoring.py    each seed's loss (model/training/losses.py's) and pooled val metrics (core/metrics.py's)
    engines.py    Fleet: the stacked model + AdamW and its step per engine (eager, compile, cudagraph, capture)
    runfolder.py  a run folder's layout, the resume check and the checkpoint writer
    loop.py       train(args, defaults): data, the epoch loop, divergence checks, save points
    losses.py     BCE + Dice, the one loss
    ddp.py        torchrun: each process a slice of every batch, one all-reduce
    promotion.py  shipping a finished run to model/weights/ (model/promote.py is its command line)
"""
from model.training.loop import train  # noqa: F401
