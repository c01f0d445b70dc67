"""Training speed: `python benchmarks/train_speed.py [--paths eager,fast] [--json F]`.

Measures the full training step (augmentation + forward + loss + backward + AdamW) of each path
in one process, interleaved in rounds so that both see the same machine load, and projects the
time of one epoch and of the paper's 400 epochs for a training set of `--train-size` images.

Paths, each the trainer's step (model/training/: data resident on the device, batched augmentation):
`eager` and `fast` are one seed's (`--engine eager`, and `compile`, the CPU default), `fast-k<K>[-<engine>]`
a fleet's (K seeds as one grouped network; engine as `--engine`, e.g. fast-k5-capture): its `img_per_s`
counts the images of all K seeds, `img_per_s_per_seed` one seed's. On a GPU: `--paths eager,fast,fast-k1,fast-k5`.
Batches come from real images when `--data` has them, else from synthetic lesions (said in the
JSON). The first step (compile, graph capture) is reported on its own, not counted in the
throughput. `protocol_h` projects the paper's protocol (5 seeds x 400 epochs, training only). A
path that fails (e.g. an engine on a new machine) is listed under `failed`; the others still run.
"""
from __future__ import annotations

import json
import platform
import re
import statistics
import time
from pathlib import Path


import numpy as np
import torch

from core.clitools import ArgumentParser, check_ranges, check_threads, user_errors
from core.errors import UserError

from core.paths import SHARED_DATA
DEFAULT_DATA = SHARED_DATA / "isic2018"
PATHS = {"eager": "eager", "fast": "compile"}  # one seed's paths: name -> its engine
FLEET_PATH = re.compile(r"^fast-k(\d+)(?:-(eager|compile|cudagraph|capture|capture-eager))?$")
GPU_PATHS = "eager,fast,fast-k1,fast-k5"


def parse_path(name: str):
    """('fleet', 1, engine) for eager/fast; ('fleet', K, engine or None) for fast-k<K>[-<engine>]."""
    if name in PATHS:
        return ("fleet", 1, PATHS[name])
    m = FLEET_PATH.match(name)
    if m and int(m.group(1)) >= 1:
        return ("fleet", int(m.group(1)), m.group(2))
    raise UserError(f"--paths: unknown path '{name}'; choose from {', '.join(PATHS)} or fast-k<K>[-<engine>] "
                     f"(e.g. fast-k5, fast-k5-capture; engines: eager, compile, cudagraph, capture, capture-eager)")


def _batches(data: str, n: int, size: int, seed: int):
    from model.data import DataError, load_arrays, open_dataset

    try:
        samples = open_dataset(data).subset("train")[:n]
        x, y = load_arrays(samples, size)
        return x, y, f"{data} (first {len(samples)} train images)"
    except DataError as e:
        from core.preprocess import preprocess_image, preprocess_mask
        from model.data.synthetic import make_lesion

        rng = np.random.default_rng(seed)
        pairs = [make_lesion(rng) for _ in range(n)]
        x = np.stack([preprocess_image(img, size) for img, _ in pairs])
        y = np.stack([preprocess_mask(m, size) for _, m in pairs])
        return x, y, f"synthetic lesions ({e})"


def _fleet_run(k, engine, device, xt, yt, batch, variant, seed, compile_flag=True):
    from model.data.resident import DeviceData, draw_aug_params
    from model.training.engines import Fleet, resolve_engine

    engine = resolve_engine(engine or "auto", device, compile_flag)
    data = DeviceData(xt, yt.to(torch.uint8), [str(i) for i in range(len(xt))])
    fleet = Fleet(variant, range(seed, seed + k), device, engine)
    gens = [torch.Generator().manual_seed(seed + j) for j in range(k)]
    n = len(xt)

    def run(first: int, steps: int):  # the trainer's loop: one draw + transfer per round, then steps
        idx = [((torch.arange(batch) + (i * batch + j * 7)) % n) for i in range(first, first + steps) for j in range(k)]
        idx = torch.stack(idx).view(steps, k, batch).to(device)
        params = torch.cat([draw_aug_params(g, batch) for _ in range(steps) for g in gens]).to(device)
        rows = k * batch
        for s in range(steps):
            loss = fleet.step(data, idx[s], params[s * rows:(s + 1) * rows])
        return loss

    return {"run": run, "seeds": k, "engine": engine, "cudnn_benchmark": True}  # as the trainer sets it


def measure(paths, device: torch.device, batch: int, steps: int, rounds: int, size: int, data: str,
            variant: str = "v3", seed: int = 0, progress: bool = True, compile_flag: bool = True):
    """Interleaved rounds of `steps` training steps per path; returns (results, source, failed)."""
    from tqdm import tqdm

    x, y, source = _batches(data, max(4 * batch, 32), size, seed)
    xt = torch.from_numpy(x).to(device)
    yt = torch.from_numpy(y).float().unsqueeze(1).to(device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    runs, failed = {}, []
    for name in paths:
        kind = parse_path(name)
        t0 = time.perf_counter()
        try:
            r = _fleet_run(kind[1], kind[2], device, xt, yt, batch, variant, seed, compile_flag)
            torch.backends.cudnn.benchmark = r["cudnn_benchmark"]  # each path as its trainer runs it
            r["run"](0, 1).cpu()  # warm-up; the first step compiles (and captures a graph)
            sync()
            r["first_step_s"] = round(time.perf_counter() - t0, 2)
            r["run"](1, 2).cpu()
            r["ms"] = []
            runs[name] = r
        except SystemExit:
            raise
        except Exception as e:  # one path failing on a new machine must not hide the others' numbers
            failed.append({"path": name, "error": f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"[:400]})
    bar = tqdm(total=rounds * len(runs), desc="train_speed", disable=not progress)
    for _ in range(rounds):
        for name, r in list(runs.items()):
            sync()
            torch.backends.cudnn.benchmark = r["cudnn_benchmark"]
            t0 = time.perf_counter()
            try:
                r["run"](3, steps).cpu()
            except Exception as e:
                failed.append({"path": name, "error": f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"[:400]})
                del runs[name]
                continue
            sync()
            r["ms"].append((time.perf_counter() - t0) * 1000 / steps)
            bar.update()
    bar.close()
    out = []
    for name, r in runs.items():
        ms = statistics.median(r["ms"])
        k = r["seeds"]
        out.append({"path": name, "device": str(device), "device_name": _device_name(device), "batch": batch,
                    "seeds": k, "engine": r["engine"], "threads": torch.get_num_threads(),
                    "img_per_s": round(k * batch * 1000 / ms, 2), "img_per_s_per_seed": round(batch * 1000 / ms, 2),
                    "ms_per_step": round(ms, 2), "round_ms": [round(v, 2) for v in r["ms"]],
                    "first_step_s": r["first_step_s"]})
    return out, source, failed


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({platform.machine()})"


DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


@user_errors
def main(argv=None):
    from core.errors import UserError
    from core.safeio import ensure_writable_dir, guard_committed

    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--paths", default="eager,fast",
                   help=f"comma-separated: {', '.join(PATHS)}, fast-k<K>[-<engine>] (on a GPU: {GPU_PATHS})")
    p.add_argument("--engine", default="auto", help="engine of the fast-k<K> paths that name none (auto: compile on the CPU, cudagraph on CUDA)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    p.add_argument("--batch-size", type=int, default=8, help="images per step and seed (the paper's 8)")
    p.add_argument("--steps", type=int, default=10, help="steps per path and round")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds; the median round counts")
    p.add_argument("--size", type=int, default=256, help="input size")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch default)")
    p.add_argument("--data", default=str(DEFAULT_DATA), help="images for the batches (synthetic when absent)")
    p.add_argument("--train-size", type=int, default=1815, help="training-set size for the projections (ISIC 2018: 1815)")
    p.add_argument("--epochs", type=int, default=400, help="epochs for the projection")
    p.add_argument("--protocol-seeds", type=int, default=5, help="seeds of the protocol whose wall time is projected")
    p.add_argument("--json", default=None, help="write the results here as JSON")
    p.add_argument("--update-results", action="store_true",
                   help="allow --json to replace a committed result (benchmarks/results/train_speed_cpu.json, "
                        "which docs/training.md cites)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    paths = [s.strip() for s in args.paths.split(",") if s.strip()]
    if not paths:
        raise UserError(f"--paths: name at least one path, e.g. {GPU_PATHS}")
    kinds = [parse_path(s) for s in paths]
    from core.preprocess import SIZE_MULTIPLE

    check_ranges(args, {"batch_size": 1, "steps": 1, "rounds": 1, "size": SIZE_MULTIPLE, "train_size": 1, "epochs": 1,
                        "protocol_seeds": 1, "threads": 0})
    if args.size % SIZE_MULTIPLE:
        raise UserError(f"--size {args.size}: give a multiple of {SIZE_MULTIPLE} (the model halves the resolution five times)")
    if args.threads:
        check_threads(args.threads)
    if not DEVICE.match(args.device):
        raise UserError(f"--device {args.device}: give auto, cpu or cuda[:N]")
    if args.json:
        guard_committed(args.json, "--update-results", args.update_results, "pass --json with a path under outputs/")
        ensure_writable_dir(Path(args.json).parent, "--json")  # before the measurement, not after it
    if args.threads:
        torch.set_num_threads(args.threads)
    from model.training.engines import resolve_engine
    from model.training.options import pick_device

    device = pick_device(args.device)
    for kind in kinds:  # an engine this device cannot run is a user error, before anything is measured
        resolve_engine(kind[2] or args.engine, device)
    paths = [s if not (kind[2] is None and args.engine != "auto") else f"{s}-{args.engine}"
             for s, kind in zip(paths, kinds)]
    results, source, failed = measure(paths, device, args.batch_size, args.steps, args.rounds, args.size, args.data,
                                      progress=not args.no_progress)
    for r in results:
        epoch_s = args.train_size / r["img_per_s_per_seed"]  # every seed sees the training set once
        r["epoch_s"] = round(epoch_s, 2)
        r["projected_h"] = round(epoch_s * args.epochs / 3600, 3)  # one seed's run (all K at once)
        r["protocol_h"] = round(args.protocol_seeds * args.train_size * args.epochs / r["img_per_s"] / 3600, 3)
    base = next((r for r in results if r["path"] == "eager"), None)
    if base:
        for r in results:
            r["speedup_vs_eager"] = round(r["img_per_s"] / base["img_per_s"], 3)
    report = {"results": results, "failed": failed, "data": source, "size": args.size, "train_size": args.train_size,
              "epochs": args.epochs, "protocol_seeds": args.protocol_seeds, "torch": torch.__version__,
              "cuda": torch.version.cuda, "machine": platform.machine(),
              "cpu_capability": torch.backends.cpu.get_cpu_capability(),
              "note": ("training step incl. augmentation; img_per_s counts all seeds, img_per_s_per_seed one; "
                       "projected_h = one seed's epochs, protocol_h = protocol_seeds x epochs x train_size images; "
                       "projections exclude evaluation and compile time")}
    text = json.dumps(report, indent=1)
    if args.json:
        from core.safeio import atomic_write_text

        atomic_write_text(args.json, text + "\n")
    print(f"| path | device | seeds | img/s (all) | img/s per seed | ms/step | epoch ({args.train_size} img) | "
          f"{args.epochs} epochs | {args.protocol_seeds} seeds x {args.epochs} epochs |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['path']} | {r['device_name']} | {r['seeds']} | {r['img_per_s']} | {r['img_per_s_per_seed']} | "
              f"{r['ms_per_step']} | {r['epoch_s']} s | {r['projected_h']} h | {r['protocol_h']} h |")
    for f in failed:
        print(f"| {f['path']} | failed: {f['error']} |")
    return report

