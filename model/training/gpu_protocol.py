"""The paper's protocol on one GPU, in chunks: `python model/gpu_protocol.py [--budget 540] [--out DIR]`.

One call does as much as fits in `--budget` seconds and can be repeated until everything is done;
its state lives in `--state` (default runs/gpu_protocol, git-ignored), so a later call on the same
machine, or on a fresh one after `tar xzf state.tar.gz -C runs/gpu_protocol`, goes on where it stopped.
In order:

1. once: `benchmarks/train_speed.py` for `--speed-paths` (eager, fast, fast-k1, fast-k5 with the
   cudagraph and capture engines), measured in one process -> train_speed.json. The fastest fleet
   engine that ran becomes the training engine (unless `--engine` names one).
2. for each `variant:dataset` of `--plan` (v3 on ISIC 2018 and 2017, then v1 and v2 on ISIC 2018):
   a fleet of the seeds (`model/train.py --seeds 0-4`, 400 epochs, cosine, batch 8, 256x256, best epoch
   by pooled val DSC), stopped at an epoch boundary before the budget ends and resumed by the next
   call; when a run finishes: every seed's best.pt evaluated once on the test split (seed<k>/test.json),
   the mean +- std over seeds (summary.json), and the seed with the best *val* DSC copied to
   weights/aulunet_<variant>_<dataset>.pt with its .train_log.json and .curve.png (model/weights/'s
   names; never chosen by test).
3. summary.md (a README-ready table naming the card), progress.json, protocol.log, and everything
   packed into at most 8 files under `--out` ($OUT by default): state.tar.gz holds the state folder
   without the seeds' last.pt (fleet_last.pt is the resume state) and without compile caches.

Datasets are read from `--data-root`/<name> (default data/, git-ignored: copy ../shared/data/isic2018
and isic2017 there, since ../shared does not travel to the GPU machine); a missing one is skipped and
said so. The inductor cache goes to .cache/inductor (git-ignored), so a second call on a warm machine
does not compile again. CPU dry run (tests): tiny data, `--epochs 2 --size 32 --seeds 0,1`.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import tarfile
import time
from pathlib import Path


from core.clitools import user_errors
from core.errors import UserError
from core.metrics import ISIC_KEYS, POOLED_KEYS

from core.paths import REPO
DEFAULT_PLAN = "v3:isic2018,v3:isic2017,v1:isic2018,v2:isic2018"
DEFAULT_SPEED = "eager,fast,fast-k1,fast-k5-cudagraph,fast-k5-capture"
FALLBACK = ("cudagraph", "compile", "eager")  # engines tried in turn when the chosen one fails


def _terminated(signum, frame):
    raise SystemExit("error: stopped by SIGTERM (a time limit?); the runs keep their last checkpoint: call again to resume")


def parse_plan(text: str):
    plan = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        variant, sep, dataset = part.partition(":")
        if not sep or not variant or not dataset or "/" in dataset:
            raise UserError(f"--plan: cannot read '{part}'; give variant:dataset pairs like {DEFAULT_PLAN}")
        plan.append((variant, dataset))
    if not plan:
        raise UserError(f"--plan: empty; give variant:dataset pairs like {DEFAULT_PLAN}")
    return plan


class Log:
    def __init__(self, path: Path):
        self.path = path

    def __call__(self, msg: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        print(line, flush=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(line + "\n")


def _json(path: Path, obj) -> None:
    from core.safeio import atomic_write_text

    atomic_write_text(path, json.dumps(obj, indent=1) + "\n")


def pick_engine(speed: dict, k: int) -> str:
    """The fastest engine measured for the fleet path with this K; 'auto' (the trainer's default) when
    none was measured, 'eager' when every one measured failed."""
    rows = [r for r in (speed or {}).get("results", []) if r.get("seeds") == k and r["path"].startswith("fast-k")]
    if rows:
        return max(rows, key=lambda r: r["img_per_s"])["engine"]
    failed = [f for f in (speed or {}).get("failed", []) if f["path"].startswith(f"fast-k{k}")]
    return "eager" if failed else "auto"


def evaluate_test(run_dir: Path, seeds, data_dir: Path, size: int, device, log) -> list:
    """Each seed's best.pt on the dataset's test split (once, after training), in one stacked pass."""
    from model.networks.checkpoint import model_from_checkpoint
    from model.data import open_dataset
    from model.data.resident import DeviceData
    from model.training.scoring import evaluate_models

    ds = open_dataset(data_dir)
    split = "test" if "test" in ds.splits else None
    if split is None:
        log(f"{data_dir}: no test split; test metrics skipped")
        return [None] * len(seeds)
    data = DeviceData.load(ds.subset(split), size, device)
    models = [model_from_checkpoint(run_dir / f"seed{s}" / "best.pt")[0] for s in seeds]
    res = evaluate_models(models, data, batch=64 if device.type == "cuda" else 16)
    for s, r in zip(seeds, res):
        r.update({"split": split, "data": str(data_dir), "weights": f"seed{s}/best.pt"})
        _json(run_dir / f"seed{s}" / "test.json", r)
    return res


def summarize(name: str, dataset: str, run_dir: Path, seeds, tests, state: Path, device_name: str) -> dict:
    from model.networks.checkpoint import load_checkpoint

    fleet = json.loads((run_dir / "fleet.json").read_text())
    per_seed = []
    for s, t in zip(seeds, tests):
        best = load_checkpoint(run_dir / f"seed{s}" / "best.pt")["metrics"]["val"]
        per_seed.append({"seed": s, "best_epoch": best["epoch"], "val": best, "test": t})

    def stats(key: str, split: str):
        vals = [p[split][key] for p in per_seed if p[split] is not None and key in p[split]]
        if not vals:
            return None
        return {"mean": statistics.fmean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else 0.0, "n": len(vals)}

    chosen = max(per_seed, key=lambda p: p["val"]["dsc"])  # selection by val, never by test
    weights = state / "weights" / f"{name}_{dataset}.pt"
    weights.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run_dir / f"seed{chosen['seed']}" / "best.pt", weights)
    src = run_dir / f"seed{chosen['seed']}"
    shutil.copyfile(src / "log.json", weights.with_suffix(".train_log.json"))  # the file names of model/weights/
    if (src / "curve.png").is_file():
        shutil.copyfile(src / "curve.png", weights.with_suffix(".curve.png"))
    timing = fleet.get("timing", [])
    out = {"model": name, "dataset": dataset, "seeds": list(seeds), "epochs": fleet["epochs"], "engine": fleet["engine"],
           "device": device_name, "train_seconds": round(sum(t["seconds"] for t in timing), 1),
           "img_per_s_median": statistics.median([t["img_per_s"] for t in timing]) if timing else None,
           "test": {k: stats(k, "test") for k in POOLED_KEYS + ISIC_KEYS}, "val": {k: stats(k, "val") for k in ("dsc", "miou")},
           "selected_seed": chosen["seed"], "selected_by": "best val DSC", "selected_weights": str(weights.relative_to(state)),
           "per_seed": per_seed,
           "std": "sample standard deviation over seeds (n-1)"}
    _json(run_dir / "summary.json", out)
    return out


def summary_table(state: Path, plan) -> str:
    lines = ["| model | dataset | seeds x epochs | test DSC | test mIoU | accuracy | specificity | sensitivity | "
             "selected seed (val DSC) | card |", "|---|---|---|---|---|---|---|---|---|---|"]
    for variant, dataset in plan:
        p = state / f"aulunet_{variant}_{dataset}" / "summary.json"
        if not p.is_file():
            continue
        s = json.loads(p.read_text())

        def ms(k):
            v = s["test"].get(k)
            return f"{v['mean']:.4f} +- {v['std']:.4f}" if v else "n/a"
        sel = next(x for x in s["per_seed"] if x["seed"] == s["selected_seed"])
        lines.append(f"| {s['model']} | {dataset} | {len(s['seeds'])} x {s['epochs']} | {ms('dsc')} | {ms('miou')} | "
                     f"{ms('accuracy')} | {ms('specificity')} | {ms('sensitivity')} | "
                     f"{s['selected_seed']} ({sel['val']['dsc']:.4f}) | {s['device']} |")
    return "\n".join(lines) + "\n"


def pack(state: Path, out: Path, log) -> list:
    """At most 8 files, none deeper than $OUT/name: the small results and one tarball of the state."""
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for name in ("progress.json", "train_speed.json", "summary.md", "protocol.log"):
        if (state / name).is_file():
            shutil.copyfile(state / name, out / name)
            files.append(out / name)

    def keep(info: tarfile.TarInfo):
        parts = Path(info.name).parts
        if any(p in (".cache", "__pycache__") for p in parts) or (len(parts) >= 2 and parts[-1] == "last.pt" and parts[-2].startswith("seed")):
            return None
        return info
    tar = out / "state.tar.gz"
    with tarfile.open(tar, "w:gz") as t:
        for p in sorted(state.iterdir()):
            t.add(p, arcname=p.name, filter=keep)
    files.append(tar)
    mb = tar.stat().st_size / 2 ** 20
    log(f"packed {len(files)} files into {out} (state.tar.gz {mb:.1f} MiB{'; OVER the 16 MiB limit of a returned file' if mb > 16 else ''})")
    return files


def read_progress(path: Path) -> dict:
    """The state's progress.json ({"runs": {...}, "calls": [...]}), or a fresh one; UserError when it is damaged."""
    from core.errors import UserError

    if not path.is_file():
        return {"runs": {}, "calls": []}
    try:
        progress = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        progress, why = None, f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]}"
    else:
        why = "expected {\"runs\": {...}, \"calls\": [...]}"
    ok = (isinstance(progress, dict) and isinstance(progress.get("runs"), dict) and isinstance(progress.get("calls"), list)
          and all(isinstance(r, dict) for r in progress["runs"].values()))
    if not ok:
        raise UserError(f"{path}: cannot read the protocol's progress ({why}); restore it from the last state.tar.gz, or "
                        f"delete it: the runs resume from their fleet_last.pt and finished ones are evaluated again")
    return progress


@user_errors
def main(argv=None) -> dict:
    from core.clitools import ArgumentParser, HelpFormatter

    p = ArgumentParser(description=__doc__.splitlines()[0], formatter_class=HelpFormatter,
                                epilog="\n".join(__doc__.splitlines()[1:]))
    p.add_argument("--state", default=str(REPO / "runs" / "gpu_protocol"), help="state folder, kept between calls (resumable)")
    p.add_argument("--data-root", default=str(REPO / "data"), help="folder holding the datasets named in --plan")
    p.add_argument("--plan", default=DEFAULT_PLAN, help="variant:dataset runs, in order")
    p.add_argument("--seeds", default="0-4", help="seeds, trained at once as one fleet")
    p.add_argument("--epochs", type=int, default=400, help="epochs of every run (the paper's 400)")
    p.add_argument("--size", type=int, default=256, help="input size (256 for the protocol; smaller for dry runs)")
    p.add_argument("--batch-size", type=int, default=8, help="images per step and seed (the paper's 8)")
    p.add_argument("--budget", type=float, default=540, help="wall seconds this call may use (the device allows 600 per command)")
    p.add_argument("--reserve", type=float, default=45, help="seconds kept for the test evaluation and packing")
    p.add_argument("--speed", action=argparse.BooleanOptionalAction, default=True, help="measure train_speed first (once)")
    p.add_argument("--speed-paths", default=DEFAULT_SPEED, help="train_speed paths to measure")
    p.add_argument("--speed-steps", type=int, default=20, help="train_speed steps per path and round")
    p.add_argument("--speed-rounds", type=int, default=5, help="train_speed interleaved rounds")
    p.add_argument("--engine", default="auto", help="training engine; auto = fastest fleet engine measured, else the trainer's default")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch default)")
    p.add_argument("--save-every", type=int, default=10, help="epochs between checkpoints (a stop always saves)")
    p.add_argument("--stop-after", type=int, default=0, help="train at most this many epochs per run in this call (0: as the budget allows)")
    p.add_argument("--out", default=os.environ.get("OUT"), help="pack the results here (default: $OUT; none: no packing)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    t0 = time.time()
    plan = parse_plan(args.plan)
    for flag in ("epochs", "size", "batch_size", "speed_steps", "speed_rounds", "save_every"):
        if getattr(args, flag) < 1:
            raise UserError(f"--{flag.replace('_', '-')} must be at least 1")
    if args.budget <= args.reserve:
        raise UserError(f"--budget {args.budget:g} leaves nothing after --reserve {args.reserve:g}; give a larger --budget")
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(REPO / ".cache" / "inductor"))
    import torch

    from model.train import main as train_main
    from model.training.options import parse_seeds, pick_device

    seeds = parse_seeds(args.seeds)
    state = Path(args.state)
    state.mkdir(parents=True, exist_ok=True)
    log = Log(state / "protocol.log")
    progress_path = state / "progress.json"
    progress = read_progress(progress_path)
    device = pick_device(args.device)
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    call = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "device": device_name, "torch": torch.__version__, "did": []}
    progress["calls"].append(call)
    log(f"call {len(progress['calls'])} on {device_name}, torch {torch.__version__}, budget {args.budget:g} s")
    common = ["--threads", str(args.threads)] if args.threads else []
    left = lambda: args.budget - (time.time() - t0)  # noqa: E731
    try:  # `timeout` ends a call with SIGTERM: still save the progress and pack
        previous = signal.signal(signal.SIGTERM, _terminated)
    except ValueError:  # not the main thread
        previous = None
    try:
        speed_path = state / "train_speed.json"
        if args.speed and not speed_path.is_file():
            from model.training.speed import main as speed_main

            log(f"train_speed: {args.speed_paths}")
            speed_main(["--paths", args.speed_paths, "--device", args.device, "--size", str(args.size),
                        "--batch-size", str(args.batch_size), "--steps", str(args.speed_steps), "--rounds", str(args.speed_rounds),
                        "--data", str(Path(args.data_root) / plan[0][1]), "--epochs", str(args.epochs),
                        "--protocol-seeds", str(len(seeds)), "--json", str(speed_path), "--no-progress", *common])
            call["did"].append("train_speed")
        speed = json.loads(speed_path.read_text()) if speed_path.is_file() else None
        engine = args.engine if args.engine != "auto" else pick_engine(speed, len(seeds))
        log(f"training engine: {engine}")
        for variant, dataset in plan:
            name = f"aulunet_{variant}"
            run_key = f"{name}_{dataset}"
            rec = progress["runs"].setdefault(run_key, {"done": False})
            if rec["done"]:
                continue
            data_dir = Path(args.data_root) / dataset
            if not data_dir.is_dir():
                rec["note"] = f"skipped: {data_dir} absent (copy ../shared/data/{dataset} there)"
                log(f"{run_key}: {rec['note']}")
                continue
            budget = left() - args.reserve
            if budget < 60:
                log(f"{run_key}: {budget:.0f} s left, not enough for a chunk; next call")
                break
            run_dir = state / run_key
            resume = (run_dir / "fleet_last.pt").is_file()
            log(f"{run_key}: {'resuming' if resume else 'starting'} (time limit {budget:.0f} s)")
            argv = ["--data", str(data_dir), "--variant", variant, "--seeds", ",".join(map(str, seeds)),
                    "--epochs", str(args.epochs), "--size", str(args.size), "--batch-size", str(args.batch_size),
                    "--device", args.device, "--engine", engine, "--time-limit", f"{budget:.0f}",
                    "--save-every", str(args.save_every), "--out", str(run_dir), "--no-progress", *common]
            if resume:
                argv.append("--resume")
                if args.stop_after:
                    done = json.loads((run_dir / "fleet.json").read_text())["epochs_done"]
                    argv += ["--stop-after", str(done + args.stop_after)]
            elif args.stop_after:
                argv += ["--stop-after", str(args.stop_after)]
            res = None
            fallback = FALLBACK if device.type == "cuda" else ("compile", "eager")
            for eng in [engine] + [e for e in fallback if e != engine]:
                argv[argv.index("--engine") + 1] = eng
                try:
                    res = train_main(argv)
                    engine = eng  # the later runs use what worked
                    break
                except Exception as e:  # an engine that breaks on this machine: the next one resumes the run
                    msg = f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}"[:300]
                    rec.setdefault("engine_failures", []).append({"engine": eng, "error": msg})
                    log(f"{run_key}: engine {eng} failed ({msg}); trying the next")
                    if "--resume" not in argv and (run_dir / "fleet_last.pt").is_file():
                        argv.append("--resume")
            if res is None:
                raise UserError(f"{run_key}: every engine failed (see protocol.log)")
            rec.update({"epochs_done": res["epochs_done"], "engine": res["engine"]})
            call["did"].append(f"{run_key}: epochs {res['epochs_done']}/{args.epochs}")
            log(f"{run_key}: {res['epochs_done']}/{args.epochs} epochs")
            if not res["finished"]:
                break
            tests = evaluate_test(run_dir, seeds, data_dir, args.size, device, log)
            s = summarize(name, dataset, run_dir, seeds, tests, state, device_name)
            rec.update({"done": True, "test_dsc": s["test"]["dsc"], "selected_seed": s["selected_seed"]})
            log(f"{run_key}: done; test DSC {s['test']['dsc']}")
        (state / "summary.md").write_text(summary_table(state, plan))
        progress["all_done"] = all(progress["runs"].get(f"aulunet_{v}_{d}", {}).get("done") for v, d in plan)
    finally:
        call["seconds"] = round(time.time() - t0, 1)
        _json(progress_path, progress)
        log(f"call done in {call['seconds']} s; all done: {progress.get('all_done', False)}")
        if args.out:
            pack(state, Path(args.out), log)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return progress

