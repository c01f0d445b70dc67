"""Ship a finished training run: `python model/promote.py RUN_DIR --name aulunet_v3_isic2018 [--remove-run]`.

Copies the run's selected checkpoint (best.pt, chosen by pooled val DSC) to model/weights/NAME.pt, its log
to NAME.train_log.json, its curve to NAME.curve.png, and scores it on the val split it was selected on
(NAME.metrics.json, as `model/evaluate.py --json` writes it). A run that has not reached its last epoch is
refused unless --allow-unfinished; files already shipped under NAME are kept unless --force. Everything is
checked before anything is written (the run's files, its data, found with --data when it moved, and the val
figure); then the four files are written, and only then is the run removed (--remove-run).
Then `python model/protocol.py --models NAME --save` scores test once and the unseen datasets, and
`python docs/generate.py` refreshes the tables.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Dict, Optional, Sequence

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.clitools import ArgumentParser, HelpFormatter, add_verbose, check_ranges, user_errors
from core.errors import UserError
from core.paths import WEIGHTS_DIR
from model.training.promotion import curve_png, find_data, read_best, read_log, remove_run, val_metrics, write_all


@user_errors
def main(argv: Optional[Sequence[str]] = None) -> Dict:
    p = ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("run", help="run folder written by model/train.py (best.pt, last.pt, log.json)")
    p.add_argument("--name", required=True, help="shipped name, e.g. aulunet_v3_isic2018 (files NAME.pt, NAME.*.json, NAME.curve.png)")
    p.add_argument("--weights-dir", default=str(WEIGHTS_DIR), help="where shipped checkpoints live")
    p.add_argument("--data", default=None, help="the dataset the run was trained on (default: the folder its checkpoint "
                                                "records, else ../shared/data/<that folder's name>)")
    p.add_argument("--allow-unfinished", action="store_true", help="ship a run that stopped before its last epoch")
    p.add_argument("--force", action="store_true", help="replace files already shipped under NAME")
    p.add_argument("--remove-run", action="store_true", help="delete the run folder once shipped")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for the val evaluation (0 = torch default)")
    add_verbose(p)
    args = p.parse_args(argv)
    check_ranges(args, {"threads": 0})

    # Everything is checked first (run folder, log, checkpoint, data, the val figure); then all files are written.
    run, dest = Path(args.run), Path(args.weights_dir)
    if not args.name.replace("_", "").isalnum():
        raise UserError(f"--name {args.name!r}: use letters, digits and underscores, e.g. aulunet_v3_isic2018")
    if not (run / "best.pt").is_file() or not (run / "log.json").is_file():
        raise UserError(f"{run}: no best.pt and log.json; pass a run folder written by model/train.py")
    log = read_log(run / "log.json")
    ck = read_best(run / "best.pt", log, run)
    planned, done = ck["train_args"]["epochs"], len(log["epochs"])
    if done < planned and not args.allow_unfinished:
        raise UserError(f"{run}: {done} of {planned} epochs done; resume it (--resume) or pass --allow-unfinished")
    targets = {k: dest / f"{args.name}{k}" for k in (".pt", ".train_log.json", ".curve.png", ".metrics.json")}
    present = [t for t in targets.values() if t.exists()]
    if present and not args.force:
        raise UserError(f"{present[0]}: already shipped; pass --force to replace it")
    data = find_data(ck, args.data, run)
    metrics = val_metrics(run / "best.pt", data, ck, args.threads, args.verbose)
    stored = ck["metrics"]["val"]["dsc"]
    if not ck["train_args"].get("limit_val") and abs(metrics["dsc"] - stored) > 1e-4:
        raise UserError(f"{run / 'best.pt'}: val DSC {metrics['dsc']:.4f} now, {stored:.4f} when trained; the data under "
                        f"{data} changed since training: pass --data with the dataset it was trained on (nothing was written)")
    metrics = {**{k: v for k, v in metrics.items() if k not in ("data", "split", "backend")},
               "weights": str(targets[".pt"]), "data": metrics["data"], "split": "val", "backend": metrics["backend"]}
    write_all({targets[".pt"]: (run / "best.pt").read_bytes(),
                targets[".train_log.json"]: json.dumps(log, indent=1).encode(),
                targets[".curve.png"]: curve_png(log),
                targets[".metrics.json"]: (json.dumps(metrics, indent=1) + "\n").encode()})
    removed = remove_run(run) if args.remove_run else ""
    print(f"shipped {args.name}: epoch {ck['metrics']['val']['epoch']} of {done}, val DSC {metrics['dsc']:.4f}{removed}; "
          f"next: python model/protocol.py --models {args.name} --save && python docs/generate.py")
    return {"name": args.name, "files": [str(t) for t in targets.values()], "val": metrics}


if __name__ == "__main__":
    main()
