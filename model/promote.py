"""Ship a finished training run: `python model/promote.py RUN_DIR --name aulunet_v3_isic2018 [--remove-run]`.

Copies the run's selected checkpoint (best.pt, chosen by pooled val DSC) to model/weights/NAME.pt, its log
to NAME.train_log.json, its curve to NAME.curve.png, and scores it on the val split it was selected on
(NAME.metrics.json, as `model/evaluate.py --json` writes it). A run that has not reached its last epoch is
refused unless --allow-unfinished; files already shipped under NAME are kept unless --force.
Then `python model/protocol.py --models NAME --save` scores test once and the unseen datasets, and
`python docs/generate.py` refreshes the tables.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Dict, Optional, Sequence

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model.clitools import HelpFormatter, add_verbose, user_errors
from model.errors import UserError
from model.shipped import SHARED_DATA, WEIGHTS_DIR


@user_errors
def main(argv: Optional[Sequence[str]] = None) -> Dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("run", help="run folder written by model/train.py (best.pt, last.pt, log.json)")
    p.add_argument("--name", required=True, help="shipped name, e.g. aulunet_v3_isic2018 (files NAME.pt, NAME.*.json, NAME.curve.png)")
    p.add_argument("--weights-dir", default=str(WEIGHTS_DIR), help="where shipped checkpoints live")
    p.add_argument("--allow-unfinished", action="store_true", help="ship a run that stopped before its last epoch")
    p.add_argument("--force", action="store_true", help="replace files already shipped under NAME")
    p.add_argument("--remove-run", action="store_true", help="delete the run folder once shipped")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for the val evaluation (0 = torch default)")
    add_verbose(p)
    args = p.parse_args(argv)

    from model.checkpoint import load_checkpoint
    from model.safeio import atomic_write_bytes, atomic_write_text
    from model.visualize import plot_training

    run, dest = Path(args.run), Path(args.weights_dir)
    if not (run / "best.pt").is_file() or not (run / "log.json").is_file():
        raise UserError(f"{run}: no best.pt and log.json; pass a run folder written by model/train.py")
    if not args.name.replace("_", "").isalnum():
        raise UserError(f"--name {args.name!r}: use letters, digits and underscores, e.g. aulunet_v3_isic2018")
    log = json.loads((run / "log.json").read_text())
    ck = load_checkpoint(run / "best.pt")
    planned, done = ck["train_args"]["epochs"], len(log["epochs"])
    if done < planned and not args.allow_unfinished:
        raise UserError(f"{run}: {done} of {planned} epochs done; resume it (--resume) or pass --allow-unfinished")
    targets = {k: dest / f"{args.name}{k}" for k in (".pt", ".train_log.json", ".curve.png", ".metrics.json")}
    present = [t for t in targets.values() if t.exists()]
    if present and not args.force:
        raise UserError(f"{present[0]}: already shipped; pass --force to replace it")
    atomic_write_bytes(targets[".pt"], (run / "best.pt").read_bytes())
    atomic_write_text(targets[".train_log.json"], json.dumps(log, indent=1))
    plot_training(log, targets[".curve.png"])
    from model.evaluate import main as evaluate_main

    data = Path(ck["data"]["root"])
    data = data if data.is_dir() else SHARED_DATA / data.name  # trained on another machine: the same folder here
    metrics = evaluate_main(["--weights", str(targets[".pt"]), "--data", str(data), "--split", "val",
                             "--json", str(targets[".metrics.json"]), "--threads", str(args.threads), "--no-progress",
                             *(["--verbose"] if args.verbose else [])])
    stored = ck["metrics"]["val"]["dsc"]
    if not ck["train_args"].get("limit_val") and abs(metrics["dsc"] - stored) > 1e-4:
        raise UserError(f"{targets['.pt']}: val DSC {metrics['dsc']:.4f} now, {stored:.4f} when trained; "
                        f"the data under {data} changed since training")
    if args.remove_run:
        shutil.rmtree(run)
    print(f"shipped {args.name}: epoch {ck['metrics']['val']['epoch']} of {done}, val DSC {metrics['dsc']:.4f}; "
          f"next: python model/protocol.py --models {args.name} --save && python docs/generate.py")
    return {"name": args.name, "files": [str(t) for t in targets.values()], "val": metrics}


if __name__ == "__main__":
    main()
