"""Latency and accuracy of every exported format: `python benchmarks/run.py [--device host] [--threads 1,2]`.

Host side. It writes a compact eval set (preprocessed PH2 val images, masks and the PyTorch fp32
probabilities), runs benchmarks/runner.py (numpy + runtimes only) on the chosen device, and writes
`<out>/<device>.json` (schema aulunet-benchmark/1), a Markdown table and two plots (accuracy vs latency,
latency distribution). Targets (benchmarks/targets.py) are checked and reported, never asserted.

  --device host        this machine
  --device rpi|rpi4|rpi5  on a Raspberry Pi itself: runs locally (the board is detected)
  --device arm-emu     aarch64 Python and runtimes under qemu-user (benchmarks/emulated_arm.py): checks the
                       ARM builds' numerics against this host and PyTorch; its latency means nothing
  --device rpi --host pi@raspberrypi.local   from a workstation: pushes the runner, the models and the
                       eval set over SSH (benchmarks/remote.py), runs there, pulls the JSON back
"""
from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path
from typing import Dict, Optional, Sequence

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from benchmarks import runner
from core.machine import board_model
from core.clitools import ArgumentParser, check_ranges, user_errors
from core.errors import UserError
from core.safeio import ensure_writable_dir, guard_committed
from benchmarks.targets import check_targets
from core.formats import FORMATS

from core.paths import (BENCHMARK_RESULTS, DEFAULT_DATA as DATA, DEFAULT_WEIGHTS as WEIGHTS, EXPORTS_DIR as EXPORTS,  # noqa: E402,F401
                        REPO, repo_relative)
RESULTS = BENCHMARK_RESULTS
DEFAULT_OUT = REPO / "outputs" / "benchmarks"  # git-ignored

# Device profiles: default thread sweep and the board the results claim to come from.
PROFILES = {
    "host": {"threads": "1,2", "board": None},
    "rpi": {"threads": "1,2,4", "board": "Raspberry Pi"},
    "rpi4": {"threads": "1,2,4", "board": "Raspberry Pi 4"},
    "rpi5": {"threads": "1,2,4", "board": "Raspberry Pi 5"},
    "arm-emu": {"threads": "1", "board": None},  # aarch64 under qemu-user: numerics, not speed
}


def format_names(weights: Path = WEIGHTS, exports: Path = EXPORTS) -> Dict[str, Path]:
    """Benchmark name -> file, from the format table: 'torch', 'onnx', 'onnx-int8', 'tflite-int8', ..."""
    out = {}
    for fmt in FORMATS.values():
        for q in fmt.quantize:
            name = fmt.key if q == "none" else f"{fmt.key}-{q}"
            out[name] = weights if fmt.key == "torch" else exports / fmt.filename(weights.stem, q)
    return out


def write_eval_set(path: Path, data: Path, split: str, count: int, weights: Path,
                   photo: Optional[Path] = None) -> Dict:
    """Preprocessed images, masks and PyTorch fp32 probabilities of the reference checkpoint, as one .npz;
    `photo` (default: the first eval image) is the uint8 image the end-to-end predict() latency runs on."""
    from export.cli import torch_probabilities
    from model.networks.checkpoint import model_from_checkpoint
    from model.data import load_arrays, load_rgb, open_dataset

    from core.safeio import atomic_write_bytes

    model, _ = model_from_checkpoint(weights)  # first: a bad --weights is reported before any image is read
    samples = open_dataset(data).subset(split)
    if count:
        samples = samples[:count]
    x, y = load_arrays(samples, model.cfg.input_size)  # at the checkpoint's own input size (128 for aulunet_v3_in128)
    ref = torch_probabilities(model, x)
    from core.metrics import PooledMetrics

    pm = PooledMetrics()
    pm.update(ref > 0.5, y.astype(bool))  # PyTorch fp32's own DSC on these images: the recommendation's gate
    raw = load_rgb(photo or samples[0].image)  # one image at its own size: end-to-end predict() latency
    buf = io.BytesIO()
    np.savez_compressed(buf, x=x, y=y.astype(bool), ref=ref.astype(np.float16), raw=raw)
    atomic_write_bytes(path, buf.getvalue())
    return {"data": data.name, "split": split, "n_images": len(samples), "reference_dsc": pm.result()["dsc"]}


def note(r: Dict) -> str:
    parts = [r["warning"]] if r.get("warning") else []
    if len(r.get("round_p50s_ms", [])) > 1:
        parts.append("p50 per round " + " / ".join(f"{v:.1f}" for v in r["round_p50s_ms"]) + " ms")
    if "x86_parity" in r:
        x = r["x86_parity"]
        parts.append(f"vs x86 host: max diff {x['max_abs_diff']:.1e}, mask IoU {x['mask_iou']:.4f}")
    return "; ".join(parts)


def markdown(res: Dict) -> str:
    d = res["device"]
    head = (f"Device: {d.get('board') or d.get('cpu')} ({d['machine']}, {d['cores']} cores"
            f"{', EMULATED: latency means nothing' if d.get('emulated') else ''}), {d['os']}, Python {d['python']}"
            f"{runner.load_note(res)}")
    rows = [head, "", "| format | threads | KB | load ms | first ms | p50 ms | p90 ms | p99 ms | img/s | end-to-end p50 ms | peak RSS MB | val DSC | val mIoU | mask IoU vs PyTorch | note |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in res["results"]:
        if "error" in r:
            rows.append(f"| {r['name']} | {r['threads']} | | | | | | | | | | | | | error: {r['error']} |")
            continue
        a = r["accuracy"]
        rows.append(f"| {r['name']} | {r['threads']} | {r['file_bytes'] / 1024:.0f} | {r['load_ms']:.0f} | {r['first_inference_ms']:.1f} | "
                    f"{r['p50_ms']:.2f} | {r['p90_ms']:.2f} | {r['p99_ms']:.2f} | {r['throughput_ips']:.0f} | "
                    f"{r['e2e_p50_ms'] or float('nan'):.1f} | {r['peak_rss_mb']:.0f} | "
                    f"{a['dsc']:.4f} | {a['miou']:.4f} | {r['mask_iou_vs_torch_fp32']:.4f} | {note(r)} |")
    from benchmarks.recommend import markdown as rec_markdown, recommend

    if not d.get("emulated"):
        rows += ["", rec_markdown(res.get("recommendation") or recommend(res["results"], res.get("eval_set")))]
    if res.get("targets"):
        rows += ["", "| target | value | limit | met |", "|---|---|---|---|"]
        rows += [f"| {t['target']} | {t['value']} | {t['limit']} | {'yes' if t['met'] else 'NO'} |" for t in res["targets"]]
    return "\n".join(rows)


def plot(res: Dict, path: Path) -> None:
    """Accuracy vs p50 latency (best thread count per format) and the latency distribution per entry."""
    from model.evaluation.figures import save_figure
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in res["results"] if "error" not in r]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.8))
    best: Dict[str, Dict] = {}
    for r in ok:
        if r["name"] not in best or r["p50_ms"] < best[r["name"]]["p50_ms"]:
            best[r["name"]] = r
    for name, r in best.items():
        ax1.scatter(r["p50_ms"], 100 * r["accuracy"]["dsc"], s=40)
        ax1.annotate(f"{name} ({r['threads']}t)", (r["p50_ms"], 100 * r["accuracy"]["dsc"]), fontsize=8,
                     xytext=(4, 3), textcoords="offset points")
    ax1.set_xscale("log")
    ax1.set_xlabel("p50 latency per image, ms (log)")
    ax1.set_ylabel("val DSC (%)")
    ax1.set_title("Accuracy vs measured latency" + (" (EMULATED)" if res["device"].get("emulated") else ""))
    ax1.grid(alpha=0.3)
    ax2.boxplot([r["latencies_ms"] for r in ok], showfliers=True)
    ax2.set_xticks(range(1, len(ok) + 1), [f"{r['name']}\n{r['threads']}t" for r in ok], fontsize=7, rotation=60)
    ax2.set_yscale("log")
    ax2.set_ylabel("latency, ms (log)")
    ax2.set_title("Latency distribution after warm-up")
    save_figure(fig, path)


def choose_models(formats: Optional[str], names: Dict[str, Path]) -> Dict[str, Path]:
    if formats:
        chosen = {}
        for n in (f.strip() for f in formats.split(",") if f.strip()):
            if n not in names:
                raise UserError(f"unknown format '{n}'; choose from {', '.join(names)}")
            if not names[n].is_file():
                raise UserError(f"{names[n]}: model file for '{n}' not found; export it with {FORMATS[n.split('-')[0]].script}")
            chosen[n] = names[n]
        return chosen
    return {n: p for n, p in names.items() if p.is_file()}


def check_exports(exports: Path, weights: Path, formats: Optional[str], names: Dict[str, Path]) -> None:
    """A missing --exports folder, or (no --formats) one without any exported file of the checkpoint, is an error:
    a run of PyTorch alone would look like a benchmark of every format."""
    wanted = [f.strip() for f in formats.split(",") if f.strip()] if formats else list(names)
    if all(n == "torch" for n in wanted):
        return
    if not exports.is_dir():
        raise UserError(f"--exports {exports}: folder not found; pass the folder that export/all.py wrote "
                        f"(default: {repo_relative(EXPORTS)}/)")
    if not formats and not any(p.is_file() for n, p in names.items() if n != "torch"):
        example = names.get("onnx", next(p for n, p in names.items() if n != "torch")).name
        raise UserError(f"--exports {exports}: no exported file of {weights.name} (e.g. {example}); run "
                        f"python export/all.py --weights {weights} --out {exports}, or pass --formats torch")


@user_errors
def main(argv: Optional[Sequence[str]] = None) -> Dict:
    p = ArgumentParser(description=__doc__.splitlines()[0], epilog="\n".join(__doc__.splitlines()[7:]))
    p.add_argument("--device", default="host", help=f"one of {', '.join(PROFILES)}")
    p.add_argument("--formats", default=None, help="comma list (default: every format whose file exists): "
                   + ", ".join(format_names()))
    p.add_argument("--weights", default=str(WEIGHTS), help="checkpoint: the 'torch' entry and the reference")
    p.add_argument("--exports", default=str(EXPORTS), help="folder of exported files")
    p.add_argument("--threads", default=None, help="comma list, e.g. 1,2,4 (default: the device profile's: "
                   + "; ".join(f"{k} {v['threads']}" for k, v in PROFILES.items()) + ")")
    p.add_argument("--data", default=str(DATA), help="dataset for accuracy (its --split)")
    p.add_argument("--split", default="val", help="split of --data whose images measure accuracy")
    p.add_argument("--eval-count", type=int, default=0, help="first N images only (0 = all)")
    p.add_argument("--warmup", type=int, default=10, help="untimed runs before timing, per entry")
    p.add_argument("--runs", type=int, default=50,
                   help="timed single-image runs per entry, at least: timing goes on until --min-seconds have "
                        "passed as well, so there can be more (n_runs in the JSON is the real count)")
    p.add_argument("--min-seconds", type=float, default=1.0,
                   help="time each entry for at least this long (adds runs beyond --runs; 0 = exactly --runs)")
    p.add_argument("--rounds", type=int, default=1,
                   help="repeat the latency sweep N times, interleaved, and pool it (a busy or throttling "
                        "device then slows every format alike; the rounds' p50s are kept and compared)")
    p.add_argument("--out", default=None, help=f"folder for <device>.json/.md/.png (default: {repo_relative(DEFAULT_OUT)}/, "
                                               f"git-ignored; see --update-results)")
    p.add_argument("--allow-system-setup", action="store_true",
                   help="--device arm-emu: let the first run set up its cache (runs dpkg --add-architecture arm64 and "
                        "apt-get update on this host; needs root)")
    p.add_argument("--update-results", action="store_true",
                   help=f"write into {repo_relative(RESULTS)}/, replacing the committed results that docs/benchmarks.md cites "
                        f"(off by default: runs go to {repo_relative(DEFAULT_OUT)}/)")
    p.add_argument("--json", default=None, help="results JSON (default <out>/<device>.json; under benchmarks/results/ "
                                                "only with --update-results, as --markdown and --plot)")
    p.add_argument("--markdown", default=None, help="Markdown table (default <out>/<device>.md)")
    p.add_argument("--plot", default=None, help="PNG (default <out>/<device>.png)")
    p.add_argument("--host", default=None, help="user@address: run on that device over SSH (key auth, known host)")
    p.add_argument("--port", type=int, default=22, help="SSH port of --host")
    p.add_argument("--identity", default=None, help="SSH private key file (default: ssh's own)")
    p.add_argument("--known-hosts", default=None, help="known_hosts file (default: ssh's own)")
    p.add_argument("--remote-python", default="python3", help="Python on the device, with requirements-device.txt")
    p.add_argument("--note", default=None, help="a sentence on the conditions of the run (load, governor, cooling), "
                                               "kept in the JSON and shown under the docs' tables")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    check_ranges(args, {"eval_count": 0, "warmup": 0, "runs": 1, "min_seconds": 0.0, "rounds": 1, "port": 1})
    if args.port > 65535:
        raise UserError(f"--port {args.port}: give a TCP port, 1-65535")
    if args.formats is not None and not [f for f in args.formats.split(",") if f.strip()]:
        raise UserError(f"--formats {args.formats!r}: name at least one format, e.g. onnx,tflite-int8 "
                        "(or leave --formats out for every exported one)")
    for flag, path in (("--identity", args.identity), ("--known-hosts", args.known_hosts)):
        if path and not Path(path).is_file():
            raise UserError(f"{flag} {path}: file not found; pass an existing file or leave {flag} out (ssh's own)")
    if args.update_results and args.out:
        raise UserError("--update-results writes to benchmarks/results/; drop --out (or drop --update-results)")
    if args.device not in PROFILES:
        raise UserError(f"unknown device '{args.device}'; choose from {', '.join(PROFILES)}")
    profile = PROFILES[args.device]
    if profile["board"] and not args.host:
        board = board_model() or ""
        if not board.startswith(profile["board"]):
            raise UserError(f"--device {args.device}: this machine is not a {profile['board']} "
                             f"(board: {board or 'unknown'}); run it on the Pi, or from here with "
                             f"--device {args.device} --host user@raspberrypi.local, or use --device host")
    weights, data = Path(args.weights), Path(args.data)
    if not weights.is_file():
        raise UserError(f"{weights}: checkpoint not found; pass --weights or train one (model/train.py)")
    if not data.is_dir():
        raise UserError(f"{data}: eval data not found; pass --data DIR with images and masks")
    from model.networks.checkpoint import load_checkpoint

    load_checkpoint(weights)  # a file that is not a checkpoint is named before the exports are looked up by its name
    names = format_names(weights, Path(args.exports))
    check_exports(Path(args.exports), weights, args.formats, names)
    models = choose_models(args.formats, names)
    if args.device == "arm-emu" and not args.formats:
        models.pop("torch", None)  # the emulated device side has no torch, by design
    if not models:
        raise UserError(f"no model files in {args.exports}; run python export/all.py first")
    # the runs happen on this machine unless --host: there the device's runner checks its own cores
    threads = runner.parse_threads(args.threads or profile["threads"], this_machine=not args.host)
    out_dir = RESULTS if args.update_results else Path(args.out or DEFAULT_OUT)
    for flag, path in (("--out", out_dir), ("--json", args.json), ("--markdown", args.markdown), ("--plot", args.plot)):
        if path:  # committed results (benchmarks/results/, docs/, ...) only with --update-results
            guard_committed(path, "--update-results", args.update_results, f"pass {flag} with a path under outputs/")
    out = ensure_writable_dir(out_dir, "--out")
    eval_path = out / f"eval_{data.name}_{args.split}.npz"
    t0 = time.time()
    eval_info = write_eval_set(eval_path, data, args.split, args.eval_count, weights)
    names = {str(v): k for k, v in models.items()}
    if args.device == "arm-emu":
        from benchmarks.emulated_arm import EmulationError, run_emulated

        try:
            res = run_emulated(list(models.values()), eval_path, threads, args.warmup, args.runs, args.min_seconds,
                               names, allow_system_setup=args.allow_system_setup)
        except EmulationError as e:
            raise UserError(f"emulated ARM: {e}")
        finally:
            eval_path.unlink(missing_ok=True)
    elif args.host:
        from benchmarks.remote import Remote, RemoteError, run_remote

        try:
            remote = Remote(args.host, args.port, args.identity, args.known_hosts, args.remote_python)
            res = run_remote(remote, list(models.values()), eval_path, threads, args.warmup, args.runs,
                             args.min_seconds, names, args.rounds)
        except RemoteError as e:
            raise UserError(str(e))
        finally:
            eval_path.unlink(missing_ok=True)
        board = res["device"].get("board") or ""
        if profile["board"] and not board.startswith(profile["board"]):
            res.setdefault("warnings", []).append(f"--device {args.device}, but {args.host} reports board '{board or 'unknown'}'")
    else:
        try:
            res = runner.run_all(list(models.values()), threads, eval_path, args.warmup, args.runs, args.min_seconds,
                                 progress=not args.no_progress, names=names, rounds=args.rounds)
        finally:
            eval_path.unlink(missing_ok=True)
    res["profile"] = args.device
    if args.note:
        res["note"] = args.note
    res["eval_set"] = eval_info
    res["wall_seconds"] = round(time.time() - t0, 1)
    emulated = res["device"].get("emulated")
    timed_run = args.device == "host" and not args.host and args.rounds == 1  # the 2-minute target is for one round
    res["targets"] = [] if emulated else check_targets(res["results"], res["wall_seconds"] if timed_run else None)
    if not emulated:  # under qemu the latencies mean nothing, so neither would the fastest file
        from benchmarks.recommend import recommend

        res["recommendation"] = recommend(res["results"], eval_info)
    from core.safeio import atomic_write_text

    json_path = Path(args.json or out / f"{args.device}.json")
    atomic_write_text(json_path, json.dumps(res, indent=1) + "\n")
    md = markdown(res)
    atomic_write_text(Path(args.markdown or out / f"{args.device}.md"), md + "\n")
    plot(res, Path(args.plot or out / f"{args.device}.png"))
    eval_path.unlink(missing_ok=True)
    print(md)
    note = "" if args.update_results else f" (the committed {repo_relative(RESULTS)}/ is unchanged: --update-results replaces it)"
    print(f"\nwrote {json_path} and its .md and .png{note}")
    if res.get("recommendation"):
        print(res["recommendation"]["sentence"])
    return res


if __name__ == "__main__":
    main()
