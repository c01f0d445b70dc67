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

from core.clitools import ArgumentParser, HelpFormatter, add_verbose, check_ranges, quiet, user_errors
from core.errors import UserError
from core.paths import SHARED_DATA, WEIGHTS_DIR


# what model/train.py writes in a run folder (and the temporaries of its atomic writes): all --remove-run deletes
RUN_FILES = ("best.pt", "last.pt", "log.json", "curve.png")


def _read_log(path: Path) -> Dict:
    try:
        log = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise UserError(f"{path}: cannot read it as a training log ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                        f"the run folder is damaged: restore log.json or train the run again") from None
    epochs = log.get("epochs") if isinstance(log, dict) else None
    ok = (isinstance(epochs, list) and epochs and all(isinstance(e, dict) and {"epoch", "loss", "val_dsc"} <= set(e) for e in epochs)
          and isinstance(log.get("best"), dict) and {"dsc", "epoch"} <= set(log["best"]))
    if not ok:
        raise UserError(f"{path}: not a log written by model/train.py (no 'epochs' list with loss and val_dsc, or no 'best'); "
                        f"pass a run folder written by model/train.py")
    return log


def _read_best(path: Path, log: Dict, run: Path) -> Dict:
    from model.checkpoint import load_checkpoint
    from core.errors import CheckpointError

    ck = load_checkpoint(path)
    ta, val, data = ck.get("train_args"), (ck.get("metrics") or {}).get("val"), ck.get("data")
    if "optimizer" in ck:
        raise CheckpointError(f"{path}: holds optimizer state, so it is a last.pt, not the run's selected best.pt; "
                              f"put the best.pt that model/train.py wrote back in {run}")
    if (not isinstance(ta, dict) or not isinstance(ta.get("epochs"), int) or not isinstance(val, dict)
            or not {"dsc", "epoch"} <= set(val) or not isinstance(data, dict) or "root" not in data):
        raise CheckpointError(f"{path}: not a run's best.pt (no train_args, metrics.val or data header); "
                              f"pass a run folder written by model/train.py")
    best = log["best"]
    same_split = (log.get("run") or {}).get("data", {}).get("split_hash", data.get("split_hash")) == data.get("split_hash")
    if best["epoch"] != val["epoch"] or abs(float(best["dsc"]) - float(val["dsc"])) > 1e-9 or not same_split:
        raise CheckpointError(f"{path}: epoch {val['epoch']} (val DSC {float(val['dsc']):.4f}) is not the best epoch its "
                              f"log.json records (epoch {best['epoch']}, val DSC {float(best['dsc']):.4f}); best.pt and "
                              f"log.json come from different runs: pass one run's folder")
    return ck


def _find_data(ck: Dict, given: Optional[str], run: Path) -> Path:
    """The dataset the run selected its epoch on: --data, else the recorded root, else ../shared/data/<its name>."""
    from model.data import open_dataset

    recorded = Path(ck["data"]["root"])
    if given:
        data = Path(given)
        if not data.is_dir():
            raise UserError(f"--data {given}: not a folder; pass --data with the dataset {run} was trained on ({recorded.name})")
    else:
        data = next((d for d in (recorded, SHARED_DATA / recorded.name) if d.is_dir()), None)
        if data is None:
            raise UserError(f"{run}: its data {recorded} is not here (nor {SHARED_DATA / recorded.name}); "
                            f"pass --data with the dataset it was trained on")
    ds = open_dataset(data, seed=ck["train_args"].get("seed", 0))
    want = ck["data"].get("split_hash")
    if want and ds.split_hash() != want:
        raise UserError(f"{data}: its split (hash {ds.split_hash()}) is not the one {run} was trained on (hash {want}); "
                        f"pass --data with the dataset it was trained on")
    return data


def _val_metrics(weights: Path, data: Path, ck: Dict, threads: int, verbose: bool) -> Dict:
    import runtimes
    from model.data import open_dataset
    from model.evaluate import evaluate_samples

    samples = open_dataset(data, seed=ck["train_args"].get("seed", 0)).subset("val")
    with quiet(verbose):
        seg = runtimes.load(weights, threads=threads)
        res = evaluate_samples(seg, samples, grid=None)  # at the training's own size: what chose the epoch
    res.update({"data": str(data), "split": "val", "backend": seg.name, "grid": seg.input_size})
    return res


def _curve_png(log: Dict) -> bytes:
    import tempfile

    from model.visualize import plot_training

    with tempfile.TemporaryDirectory() as tmp:
        return plot_training(log, Path(tmp) / "curve.png").read_bytes()


def _write_all(files: Dict[Path, bytes]) -> None:
    """Every file atomically; when one cannot be written, the ones written before it are put back as they were."""
    from core.safeio import atomic_write_bytes

    old = {t: (t.read_bytes() if t.is_file() else None) for t in files}
    done = []
    try:
        for target, data in files.items():
            atomic_write_bytes(target, data)
            done.append(target)
    except BaseException:
        for t in done:
            try:
                atomic_write_bytes(t, old[t]) if old[t] is not None else t.unlink()
            except OSError:
                pass
        raise


def _remove_run(run: Path) -> str:
    """Delete what model/train.py wrote in `run` (and the folder once empty); anything else stays."""
    from core.safeio import temp_prefix

    for p in list(run.iterdir()):
        if p.is_file() and (p.name in RUN_FILES or any(p.name.startswith(temp_prefix(n)) for n in RUN_FILES)):
            p.unlink()
    rest = sorted(p.name for p in run.iterdir())
    if rest:
        return f"; kept {run}: it holds files model/train.py did not write ({', '.join(rest[:3])})"
    run.rmdir()
    return f"; removed {run}"


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
    log = _read_log(run / "log.json")
    ck = _read_best(run / "best.pt", log, run)
    planned, done = ck["train_args"]["epochs"], len(log["epochs"])
    if done < planned and not args.allow_unfinished:
        raise UserError(f"{run}: {done} of {planned} epochs done; resume it (--resume) or pass --allow-unfinished")
    targets = {k: dest / f"{args.name}{k}" for k in (".pt", ".train_log.json", ".curve.png", ".metrics.json")}
    present = [t for t in targets.values() if t.exists()]
    if present and not args.force:
        raise UserError(f"{present[0]}: already shipped; pass --force to replace it")
    data = _find_data(ck, args.data, run)
    metrics = _val_metrics(run / "best.pt", data, ck, args.threads, args.verbose)
    stored = ck["metrics"]["val"]["dsc"]
    if not ck["train_args"].get("limit_val") and abs(metrics["dsc"] - stored) > 1e-4:
        raise UserError(f"{run / 'best.pt'}: val DSC {metrics['dsc']:.4f} now, {stored:.4f} when trained; the data under "
                        f"{data} changed since training: pass --data with the dataset it was trained on (nothing was written)")
    metrics = {**{k: v for k, v in metrics.items() if k not in ("data", "split", "backend")},
               "weights": str(targets[".pt"]), "data": metrics["data"], "split": "val", "backend": metrics["backend"]}
    _write_all({targets[".pt"]: (run / "best.pt").read_bytes(),
                targets[".train_log.json"]: json.dumps(log, indent=1).encode(),
                targets[".curve.png"]: _curve_png(log),
                targets[".metrics.json"]: (json.dumps(metrics, indent=1) + "\n").encode()})
    removed = _remove_run(run) if args.remove_run else ""
    print(f"shipped {args.name}: epoch {ck['metrics']['val']['epoch']} of {done}, val DSC {metrics['dsc']:.4f}{removed}; "
          f"next: python model/protocol.py --models {args.name} --save && python docs/generate.py")
    return {"name": args.name, "files": [str(t) for t in targets.values()], "val": metrics}


if __name__ == "__main__":
    main()
