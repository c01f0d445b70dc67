"""Shipping a finished run (model/promote.py is its command line): reading and cross-checking the run's log
and best.pt, finding its data, re-scoring the val figure it was selected on, and writing the shipped files
all or none; removing only what model/train.py wrote in the run folder."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Optional

from core.clitools import quiet
from core.errors import UserError
from core.paths import SHARED_DATA
from model.training.runfolder import WRITTEN_FILES  # and the temporaries of their atomic writes: all remove_run deletes




def read_log(path: Path) -> Dict:
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


def read_best(path: Path, log: Dict, run: Path) -> Dict:
    from model.networks.checkpoint import load_checkpoint
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


def find_data(ck: Dict, given: Optional[str], run: Path) -> Path:
    """The dataset the run selected its epoch on (model/data/locate.py): --data, else the recorded folder, else
    ../shared/data/<its name>; only one whose splits hash as the run's did."""
    from model.data.locate import candidates, recorded_root, training_dataset

    if given and not Path(given).is_dir():
        raise UserError(f"--data {given}: not a folder; pass --data with the dataset {run} was trained on ({recorded_root(ck).name})")
    ds = training_dataset(ck, given)
    if ds is not None:
        return ds.root
    here = [str(c) for c in candidates(ck, given) if c.is_dir()]
    if here:
        raise UserError(f"{here[0]}: its split is not the one {run} was trained on (hash {ck['data'].get('split_hash')}); "
                        f"pass --data with the dataset it was trained on")
    raise UserError(f"{run}: its data {recorded_root(ck)} is not here (nor {SHARED_DATA / recorded_root(ck).name}); "
                    f"pass --data with the dataset it was trained on")


def val_metrics(weights: Path, data: Path, ck: Dict, threads: int, verbose: bool) -> Dict:
    import runtimes
    from model.data import open_dataset
    from model.evaluation.pooled import evaluate_samples

    samples = open_dataset(data, seed=ck["train_args"].get("seed", 0)).subset("val")
    with quiet(verbose):
        seg = runtimes.load(weights, threads=threads)
        res = evaluate_samples(seg, samples, grid=None)  # at the training's own size: what chose the epoch
    res.update({"data": str(data), "split": "val", "backend": seg.name, "grid": seg.input_size})
    return res


def curve_png(log: Dict) -> bytes:
    import tempfile

    from model.evaluation.figures import plot_training

    with tempfile.TemporaryDirectory() as tmp:
        return plot_training(log, Path(tmp) / "curve.png").read_bytes()


def write_all(files: Dict[Path, bytes]) -> None:
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


def remove_run(run: Path) -> str:
    """Delete what model/train.py wrote in `run` (and the folder once empty); anything else stays."""
    from core.safeio import temp_prefix

    for p in list(run.iterdir()):
        if p.is_file() and (p.name in WRITTEN_FILES or any(p.name.startswith(temp_prefix(n)) for n in WRITTEN_FILES)):
            p.unlink()
    rest = sorted(p.name for p in run.iterdir())
    if rest:
        return f"; kept {run}: it holds files model/train.py did not write ({', '.join(rest[:3])})"
    run.rmdir()
    return f"; removed {run}"
