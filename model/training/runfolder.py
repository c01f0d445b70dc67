"""A run folder: what it holds, the one resume check, the one checkpoint writer.

Two layouts, the same files per seed. `--seed S` (one seed): the folder is the seed's, `best.pt` (slim: the
model and its val metrics), `last.pt` (plus optimizer, generator, best and history: the resume state),
`log.json` (every epoch) and `curve.png`. `--seeds ...` (a fleet, K >= 1): one such folder per seed,
`<out>/seed<k>/`, plus `fleet_last.pt` (the whole fleet's resume state, written last at each save point;
format "aulunet-fleet/1") and `fleet.json` (timings, per-seed bests). A seed's last.pt from a fleet can be
resumed alone with --seed k --out <out>/seed<k>.

A folder that holds a run is continued with --resume or refused, and a resume continues the same run or is
refused: every flag that defines the run must be the one it was started with (how it is driven may change:
options.RESUME_MAY_CHANGE) and the data must have the same split (its hash is in the checkpoint).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List

import torch

from model.networks.aulunet import model_name
from core.metadata import TOOLKIT_VERSION
from core.safeio import atomic_write_text
from model.networks.checkpoint import FORMAT, load_checkpoint, save_atomic
from core.errors import CheckpointError, DataError, UserError
from core.preprocess import PREPROCESSING, THRESHOLD
from model.training.options import RESUME_MAY_CHANGE, RUN_CONTROL_ARGS

FLEET_FORMAT = "aulunet-fleet/1"
RUN_FILES = ("best.pt", "last.pt", "log.json")  # one of them present: the folder holds a (seed's) run
WRITTEN_FILES = (*RUN_FILES, "curve.png")  # everything a run writes in its folder (what promote --remove-run deletes)
RESUME_KEYS = ("optimizer", "rng", "best", "history", "epoch", "train_args")


def _flag_text(key: str, value) -> str:
    return f"--{key.replace('_', '-')} {value}"


def check_resume(path, recorded: dict, args, defaults: dict, skip=(), extra=()) -> None:
    """A resume continues the run `path` recorded or is refused: every flag that defines the run (all but
    RESUME_MAY_CHANGE and `skip`) must equal the checkpoint's `train_args` (a flag the recording version did not
    have counts as its entry in `defaults`; the variant by its registry name); `extra` adds (flag, now, then)
    triples compared as given. CheckpointError naming every flag that differs and its recorded value."""
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


def check_resume_data(path, recorded, ds, data_flag) -> None:
    """The data of a resume: its split (ids of train/val/test) must be the one the run started on."""
    if not isinstance(recorded, dict) or "split_hash" not in recorded:
        return
    now = ds.split_hash()
    if now != recorded["split_hash"]:
        raise DataError(f"{path}: --data {data_flag} has another split (hash {now}) than the run was started on "
                        f"({recorded.get('root')}, hash {recorded['split_hash']}); resume with the same data "
                        f"(or start a new run with another --out)")


def run_meta(args, name: str, cfg, ds, n_train: int, n_val: int, seed: int) -> dict:
    """The header every checkpoint of a seed's run carries: model, preprocessing at --size, the flags that define
    the run (with this seed), data root, layout and split hash."""
    return {
        "format": FORMAT,
        "toolkit_version": TOOLKIT_VERSION,
        "model": name,
        "config": cfg.to_dict(),
        "preprocessing": {**PREPROCESSING, "input_size": [args.size, args.size]},
        "threshold": THRESHOLD,
        "train_args": {**{k: v for k, v in vars(args).items() if k not in RUN_CONTROL_ARGS}, "seed": seed},
        "data": {"root": str(Path(args.data).resolve()), "layout": ds.layout, "split_source": ds.split_source,
                 "split_hash": ds.split_hash(), "n_train": n_train, "n_val": n_val},
    }


class RunFolder:
    """Where a run of `seeds` lives; `fleet` says the layout (--seeds: per-seed folders + fleet files)."""

    def __init__(self, out: Path, seeds: List[int], fleet: bool):
        self.out, self.seeds, self.fleet = Path(out), list(seeds), fleet
        if self.out.exists() and not self.out.is_dir():
            raise UserError(f"{self.out}: is a file, not a run folder; pass --out with a folder")
        self.seed_dirs = [self.out / f"seed{s}" for s in seeds] if fleet else [self.out]
        self.resume_file = self.out / ("fleet_last.pt" if fleet else "last.pt")

    def refuse_existing(self) -> None:
        """A folder that already holds a run is continued with --resume or left alone: never overwritten."""
        files = [self.resume_file, self.out / "fleet.json"] if self.fleet else []
        files += [d / f for d in self.seed_dirs for f in RUN_FILES]
        found = [str(f.relative_to(self.out)) for f in files if f.exists()]
        if found:
            raise UserError(f"{self.out}: already holds a run ({', '.join(found)}); pass --resume to continue it, "
                            f"or another --out for a new run (nothing was changed)")

    def load_resume(self, args, defaults: dict) -> Dict:
        """The resume state, checked against the flags: {epoch, state_dict, optimizer_state, rng, best, history
        (the last three: one per seed), timing, data}; CheckpointError when there is none or it is another run's."""
        path = self.resume_file
        if not path.is_file():
            raise CheckpointError(f"{path}: nothing to resume; run without --resume first")
        if not self.fleet:
            ck = load_checkpoint(path)
            lacking = [k for k in RESUME_KEYS if k not in ck]
            if lacking:
                raise CheckpointError(f"{path}: has no '{lacking[0]}' (a slim best.pt?), so it cannot be resumed; "
                                      f"resume from the last.pt that model/train.py wrote beside it")
            check_resume(path, ck["train_args"], args, defaults)
            return {"epoch": ck["epoch"], "state_dict": ck["state_dict"], "optimizer_state": ck["optimizer"]["state"],
                    "rng": [ck["rng"]], "best": [ck["best"]], "history": [ck["history"]], "timing": [],
                    "data": ck.get("data"), "ema_state_dict": ck.get("ema_state_dict"), "ema_updates": ck.get("ema_updates", 0)}
        try:
            ck = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise CheckpointError(f"{path}: not a readable fleet checkpoint ({type(e).__name__}); delete it and start "
                                  f"again without --resume") from None
        if not isinstance(ck, dict) or ck.get("format") != FLEET_FORMAT:
            raise CheckpointError(f"{path}: not a fleet checkpoint (no '{FLEET_FORMAT}' header); delete it and start "
                                  f"again without --resume")
        lacking = [k for k in ("train_args", "seeds", "model", "rng", "epoch", "best", "history") if k not in ck]
        if lacking or not isinstance(ck["train_args"], dict) or not isinstance(ck["seeds"], list):
            raise CheckpointError(f"{path}: has no '{lacking[0] if lacking else 'train_args'}' (damaged?), so it cannot "
                                  f"be resumed; delete it and start again without --resume")
        # the fleet's train_args carry seed = its first seed; the seeds are compared as a list
        check_resume(path, {**ck["train_args"], "variant": ck["model"]}, args, defaults, skip=("seed",),
                     extra=[("seeds", ",".join(map(str, self.seeds)), ",".join(map(str, ck["seeds"])))])
        return {**ck, "timing": ck.get("timing", []), "data": ck.get("data") or self._seed_data()}

    def _seed_data(self):
        """The data header of an older fleet_last.pt that lacks one: a seed checkpoint's."""
        for d in self.seed_dirs:
            for f in ("last.pt", "best.pt"):
                if (d / f).is_file():
                    try:
                        return torch.load(d / f, map_location="cpu", weights_only=True).get("data")
                    except Exception:
                        continue
        return None

    def remove_if_empty(self) -> None:
        """Remove the folder this process created when it failed before writing anything (empty subfolders only)."""
        try:
            for d in sorted(self.out.iterdir()) if self.out.is_dir() else []:
                if d.is_dir() and not d.is_symlink() and not any(d.iterdir()):
                    d.rmdir()
            if self.out.is_dir() and not any(self.out.iterdir()):
                self.out.rmdir()
        except OSError:
            pass

    def diverged(self, epoch: int, what: str, saved_epoch: int) -> UserError:
        """The error that stops a run whose loss, weights or val metrics stopped being finite (nothing of the epoch saved)."""
        kept = f"{self.resume_file} keeps epoch {saved_epoch}" if saved_epoch else "no checkpoint was written"
        return UserError(f"{self.out}: epoch {epoch}: {what} (training diverged); nothing of this epoch was saved and "
                         f"{kept}; train again with a lower --lr and another --out")

    def save(self, metas: List[Dict], epoch: int, fleet, vals, rngs, bests, histories, best_states, fleet_info=None) -> None:
        """Write one save point, each file atomically: per seed best.pt (when it improved since the last save
        point; its entry in best_states is then cleared), last.pt and log.json; then the fleet's files."""
        states, opts, emas = fleet.seed_states(), fleet.seed_optimizer_states(), fleet.seed_ema_states()
        for i, d in enumerate(self.seed_dirs):
            d.mkdir(parents=True, exist_ok=True)
            if best_states[i] is not None:
                save_atomic({**metas[i], "state_dict": best_states[i], "epoch": bests[i]["epoch"],
                             "metrics": {"val": bests[i]}}, d / "best.pt")
                best_states[i] = None
            save_atomic({**metas[i], "state_dict": states[i], "epoch": epoch, "metrics": {"val": vals[i]},
                         "optimizer": opts[i], "rng": rngs[i], "best": bests[i], "history": histories[i],
                         **({"ema_state_dict": emas[i], "ema_updates": fleet.ema_updates} if emas is not None else {})},
                        d / "last.pt")
            atomic_write_text(d / "log.json", json.dumps({"run": metas[i], "best": bests[i], "epochs": histories[i]}, indent=1))
        if self.fleet:
            save_atomic({"format": FLEET_FORMAT, "model": metas[0]["model"], "seeds": self.seeds,
                         "train_args": metas[0]["train_args"], "data": metas[0]["data"], "epoch": epoch,
                         **fleet.fleet_state(), "rng": rngs, "best": bests, "history": histories,
                         "timing": fleet_info["timing"]}, self.resume_file)
            atomic_write_text(self.out / "fleet.json", json.dumps(fleet_info, indent=1))

    def plot(self, histories, bests) -> None:
        from model.evaluation.figures import plot_training

        for d, h, b in zip(self.seed_dirs, histories, bests):
            plot_training({"epochs": h, "best": b}, d / "curve.png")


def default_out(repo: Path, name: str, schedule: str, seeds: List[int], fleet: bool) -> Path:
    if not fleet:
        return repo / "runs" / f"{name}_{schedule}_s{seeds[0]}"
    tag = "-".join(map(str, seeds)) if len(seeds) <= 8 else f"{seeds[0]}-{seeds[-1]}x{len(seeds)}"
    return repo / "runs" / f"{name}_{schedule}_seeds{tag}"

