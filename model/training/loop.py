"""The trainer: one loop for one seed (--seed) or a fleet of K seeds trained at once as one network (--seeds).

A single seed is the fleet of K=1 (its network is the plain model). Per seed, everything is its own: initial
weights, a CPU generator drawing the data order then each batch's augmentation (model/data/resident.py, with
model/data/augment.py's random numbers in its order), AdamW, the schedule, evaluation on val each epoch (pooled
DSC selects best.pt) and its checkpoints; so seed k of a fleet equals the run of seed k alone up to float
rounding. Data are decoded once and live on the training device. A loss, weights or val metrics that stop
being finite end the run with an error naming the epoch, before anything of that epoch is saved. Several
processes (torchrun): model/training/ddp.py; only rank 0 evaluates and writes.
"""
from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from model.training import ddp
from model.networks.aulunet import get_config, model_name
from model.data import open_dataset
from core.errors import DataError, UserError
from core.metrics import POOLED_KEYS
from core.paths import REPO
from model.data.photometric import draw_photometric
from model.data.resident import DeviceData, draw_aug_params
from core.safeio import ensure_writable_dir
from model.training.engines import Fleet, resolve_engine
from model.training.options import check_batches, check_numbers, check_recipe, lr_at, parse_seeds, pick_device
from model.training.runfolder import RunFolder, check_resume_data, default_out, run_meta



def draw_epoch(gens: Sequence[torch.Generator], n: int, batch: int, p_rotate: float = 0.5, robust: bool = False):
    """One epoch's random numbers for K seeds, each from its own generator in this order: the permutation, then
    each batch's augmentation (geometric, then with `robust` photometric). Returns perms (K, n) int64 and, per
    batch, params (K*b, 8) stacked seed-major (K*b, 8 + N_PHOTO with `robust`)."""
    perms, rows = [], []

    def draw(g, b):
        geo = draw_aug_params(g, b, p_rotate)
        return torch.cat([geo, draw_photometric(g, b)], 1) if robust else geo

    for g in gens:
        perms.append(torch.randperm(n, generator=g))
        rows.append([draw(g, min(batch, n - i)) for i in range(0, n, batch)])
    per_batch = [torch.cat([rows[k][j] for k in range(len(gens))]) for j in range(len(rows[0]))]
    return torch.stack(perms), per_batch


def train(args, defaults: Dict) -> Dict:
    """Train as model/train.py's flags `args` say; `defaults` are those flags' defaults (a flag an older checkpoint
    lacks counts as its default on --resume). Returns the summary it prints; UserError for anything the user can fix."""
    name = model_name(args.variant)
    try:
        cfg = get_config(name)
    except KeyError as e:
        raise UserError(e.args[0]) from None
    if args.size == 0:
        args.size = cfg.input_size
    check_numbers(args, cfg.stem_stride)
    seeds = parse_seeds(args.seeds) if args.seeds is not None else [args.seed]
    dist, dev = ddp.setup(args.device)
    try:
        return _run(args, defaults, name, seeds, dist, dev or pick_device(args.device))
    finally:
        ddp.cleanup(dist)


def _run(args, defaults, name, seeds, dist, device) -> Dict:
    t_start = time.time()
    engine = resolve_engine(args.engine, device, args.compile, dist)
    check_recipe(args, engine)
    if args.threads:
        torch.set_num_threads(args.threads)
    fleet_layout = args.seeds is not None
    folder = RunFolder(Path(args.out or default_out(REPO, name, args.schedule, seeds, fleet_layout)), seeds, fleet_layout)
    ck = folder.load_resume(args, defaults) if args.resume else None
    if ck is None:
        folder.refuse_existing()

    ds = open_dataset(args.data, seed=seeds[0])
    if ck is not None:
        check_resume_data(folder.resume_file, ck["data"], ds, args.data)
    if len(seeds) > 1 and ds.split_source.startswith("sorted ids, seed"):
        if len({open_dataset(args.data, seed=s).split_hash() for s in seeds}) > 1:
            raise DataError(f"--seeds: {args.data} has no fixed split (no split.json), so each seed would get "
                            f"its own split; add a split.json or train the seeds one at a time")
    try:
        train_s, val_s = ds.subset("train"), ds.subset("val")
    except DataError as e:
        raise DataError(f"{e} (model/train.py trains on 'train' and selects on 'val')") from None
    train_s = train_s[: args.limit_train] if args.limit_train else train_s
    val_s = val_s[: args.limit_val] if args.limit_val else val_s
    n, bs = len(train_s), args.batch_size
    check_batches(n, bs)
    smallest = min(b for b in (bs, n % bs or bs, n) if b)
    if dist.active and smallest < dist.world:
        raise UserError(f"--batch-size {bs}: with {n} training images a batch of {smallest} cannot be split over "
                        f"{dist.world} processes; use a --batch-size (and a last batch) of at least {dist.world}")
    # Data first, the run folder after: bad data must not leave an empty run folder behind.
    show = not args.no_progress and dist.main
    train_d = DeviceData.load(train_s, args.size, device, progress=show)
    val_d = DeviceData.load(val_s, args.size, device, progress=show) if dist.main else None
    made = dist.main and not folder.out.exists()
    if dist.main:
        ensure_writable_dir(folder.out, "--out")
    try:
        return _loop(args, name, seeds, dist, device, engine, folder, ck, ds, train_d, val_d, len(val_s), show, t_start)
    except BaseException:
        if made:  # a run that failed before it wrote anything leaves no empty folder
            folder.remove_if_empty()
        raise


def _first_bad(losses: np.ndarray):
    """(batch, seed) of the first loss that is not finite, or None."""
    bad = np.argwhere(~np.isfinite(losses))
    return tuple(bad[0]) if len(bad) else None


def _loop(args, name, seeds, dist, device, engine, folder, ck, ds, train, val, n_val, show, t_start) -> Dict:
    from tqdm import tqdm

    t_data = time.time() - t_start
    k, bs, n = len(seeds), args.batch_size, len(train)
    fleet = Fleet(name, seeds, device, engine, args.lr, args.weight_decay, args.precision, dist, ema=args.ema)
    if fleet.dtype != torch.float32:
        for d in (train, val):
            if d is not None:
                d.x = d.x.to(fleet.dtype)
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    start, bests, histories, timing = 0, [{"dsc": -1.0} for _ in seeds], [[] for _ in seeds], []
    if ck is not None:
        fleet.load_fleet_state(ck["state_dict"], ck["optimizer_state"], ck.get("ema_state_dict"), ck.get("ema_updates", 0))
        for g, st in zip(gens, ck["rng"]):
            g.set_state(st)
        start, bests, histories, timing = ck["epoch"], ck["best"], ck["history"], ck["timing"]
    metas = [run_meta(args, name, fleet.cfg, ds, n, n_val, seed=s) for s in seeds]
    who = [f"seed {s}'s " if folder.fleet else "the " for s in seeds]
    best_states: List[Optional[Dict]] = [None] * k
    eval_batch = 64 if device.type == "cuda" else 16
    saved, vals, stopped = start, None, False

    def info() -> Dict:
        done = len(histories[0])
        return {"model": name, "seeds": seeds, "engine": engine, "device": _device_name(device), "world": dist.world,
                "epochs": args.epochs, "epochs_done": done, "finished": done >= args.epochs,
                "images_per_epoch_per_seed": n, "data_seconds": round(t_data, 2),
                "best": [{"seed": s, **b} for s, b in zip(seeds, bests)], "timing": timing}

    bar = tqdm(range(start, args.epochs), initial=start, total=args.epochs, desc=name if k == 1 else f"{name} x{k}",
               disable=not show)
    for epoch in bar:
        t0 = time.time()
        lr = lr_at(epoch, args)
        fleet.set_lr(lr)
        perms, params = draw_epoch(gens, n, bs, robust=args.augment == "robust")
        perms, params = perms.to(device), torch.cat(params).to(device)
        width = params.shape[1]
        losses = torch.empty(len(range(0, n, bs)), k, dtype=torch.float64, device=device)
        row = 0
        for j, i in enumerate(range(0, n, bs)):
            b = min(bs, n - i)
            idx, p = perms[:, i:i + b], params[row:row + k * b].view(k, b, width)
            row += k * b
            w = 1.0
            if dist.active:
                sl = ddp.shard(b, dist)
                idx, p, w = idx[:, sl], p[:, sl], (sl.stop - sl.start) / b
            losses[j] = fleet.step(train, idx, p.reshape(-1, width), w)
        losses = ddp.allreduce_sum(losses, dist).cpu().numpy()
        t_train = time.time() - t0
        bad = _first_bad(losses)  # the same on every process (reduced losses, synchronised gradients)
        if bad is not None:
            j, i = bad
            raise folder.diverged(epoch + 1, f"{who[i]}training loss is {losses[j, i]} at image {j * bs} of {n}", saved)
        for i, key in enumerate(fleet.nonfinite()):
            if key is not None:
                raise folder.diverged(epoch + 1, f"{who[i]}weights are not finite ({key})", saved)
        epoch_loss = losses.mean(0).tolist()
        if dist.main:
            vals = fleet.evaluate(val, eval_batch)
            for i, v in enumerate(vals):
                if not (np.isfinite(v["dsc"]) and np.isfinite(v["miou"])):
                    raise folder.diverged(epoch + 1, f"{who[i]}val DSC {v['dsc']}, mIoU {v['miou']}", saved)
            seconds = round(time.time() - t0, 3)
            timing.append({"epoch": epoch + 1, "train_s": round(t_train, 3), "seconds": seconds,
                           "img_per_s": round(k * n / t_train, 1)})
            states_now = None
            for i, v in enumerate(vals):
                histories[i].append({"epoch": epoch + 1, "lr": lr, "loss": epoch_loss[i], "val_dsc": v["dsc"],
                                     "val_miou": v["miou"], "seconds": seconds})
                if v["dsc"] > bests[i]["dsc"]:
                    bests[i] = {**{key: v[key] for key in POOLED_KEYS + ('n_images',)}, "epoch": epoch + 1}
                    states_now = states_now or fleet.seed_states(evaluated=True)
                    best_states[i] = states_now[i]
        last = epoch + 1 >= args.epochs
        stop = bool(args.stop_after and epoch + 1 >= args.stop_after)
        if args.time_limit and dist.main:
            longest = max(t["seconds"] for t in timing[-5:])
            stop = stop or (time.time() - t_start) + 1.3 * longest > args.time_limit
        stop = ddp.broadcast_flag(stop, dist, device) and not last
        if dist.main:
            if last or stop or (epoch + 1) % args.save_every == 0:
                saved = epoch + 1
                folder.save(metas, saved, fleet, vals, [g.get_state() for g in gens], bests, histories, best_states, info())
            bar.set_postfix(loss=f"{np.mean(epoch_loss):.4f}", dsc=f"{np.mean([v['dsc'] for v in vals]):.4f}",
                            best=f"{np.mean([b['dsc'] for b in bests]):.4f}")
        if stop:
            stopped = True
            break
    bar.close()
    done = len(histories[0])
    summary = {"out": str(folder.out), "seeds": seeds, "engine": engine, "epochs_done": done,
               "finished": done >= args.epochs, "stopped_early": stopped,
               "best": [{"seed": s, **b} for s, b in zip(seeds, bests)] if folder.fleet else bests[0]}
    if dist.main:
        folder.plot(histories, bests)
        print(json.dumps(summary))
    return summary


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)"
