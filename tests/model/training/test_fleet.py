"""Fleets (K seeds trained as one network by model/training/), their device data and batched augmentation, torchrun (gloo), and the GPU scripts' CPU rows.

Equality of a fleet's seeds with single-seed runs: in float32 against model/train.py itself, within bounds
that hold whatever the CPU's kernels round (grouped and plain convolutions round differently, and training
amplifies it); and in float64 (--precision fp64) against K=1 runs of the same trainer, grouped against
plain convolutions, where rounding is ~1e-15 and cannot hide a wrong seed mapping or BatchNorm update.
torchrun against one process in float64 too.
"""
import json
import math
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from model.data.augment import augment
from model.networks.aulunet import build_model
from model.networks.checkpoint import load_checkpoint, model_from_checkpoint
from model.data import load_arrays, open_dataset
from model.data.resident import DeviceData, apply_aug, draw_aug_params
from model.training.losses import bce_dice_loss
from core.errors import UserError
from core.metrics import REPORTED_KEYS, PooledMetrics
from model.train import main as train_main
from model.training.network import stack_models, unstack_state
from model.training.options import parse_seeds
from model.training.scoring import evaluate_models, seed_losses
from tests.conftest import REPO, lesion_pair, save_png


def test_batched_augmentation_draws_and_applies_what_augment_does():
    for trial in range(4):
        x = torch.rand(8, 3, 32, 32)
        y = (torch.rand(8, 1, 32, 32) > 0.5).float()
        g1, g2 = torch.Generator().manual_seed(trial), torch.Generator().manual_seed(trial)
        xa, ya = augment(x.clone(), y.clone(), g1)
        p = draw_aug_params(g2, 8)
        xb, yb = apply_aug(x, y, p)
        assert torch.equal(g1.get_state(), g2.get_state())  # same draws, same order: the generators agree
        kept = p[:, 1] < 0.5  # flips and quarter turns only: pure data movement, exact on any CPU
        assert torch.equal(xa[kept], xb[kept]) and torch.equal(ya[kept], yb[kept])
        # Rotated: affine_grid over a different batch (augment: the rotated images; apply_aug: all), whose
        # 3-term dot products may round differently: <= 2 ulp of |coord| <= 1.5, ~3e-7, i.e. 5e-6 px at 32 px.
        # Bilinear values in [0, 1] move by at most that shift: atol 1e-5. A nearest pick changes only where a
        # source coordinate lies within that shift of a pixel edge (~2e-5 of pixels): at most 0.1%.
        torch.testing.assert_close(xa, xb, rtol=0, atol=1e-5)
        assert (ya != yb).float().mean().item() <= 1e-3
        assert 0 < int(p[:, 1].sum()) < 8 or trial  # some rotated, some not (seed 0)
    with pytest.raises(ValueError, match="square"):
        apply_aug(torch.rand(2, 3, 32, 48), torch.rand(2, 1, 32, 48), draw_aug_params(torch.Generator(), 2))


def test_device_data_equals_load_arrays(ph2):
    samples = open_dataset(ph2).subset("train")[:5]  # 768x560 photos: the resize matters
    x, y = load_arrays(samples, 64)
    d = DeviceData.load(samples, 64, "cpu", chunk=2, workers=2)
    assert torch.equal(d.x, torch.from_numpy(x))  # bit for bit
    assert torch.equal(d.y[:, 0], torch.from_numpy(y)) and d.y.dtype == torch.uint8
    assert d.ids == [s.id for s in samples]


@pytest.mark.parametrize("variant", ["v3", "aulunet_v3_akf_3branch", "aulunet_v3_baseline"])
def test_stacked_network_computes_each_seed_alone(variant):
    """In float64, where float32's rounding (amplified by BatchNorm over tiny batches) cannot hide a mix-up."""
    models = []
    for s in (3, 4, 5):
        torch.manual_seed(s)
        models.append(build_model(variant).double())
    fleet = stack_models(models)
    assert list(fleet.state_dict()) == list(models[0].state_dict())  # same keys: per-seed checkpoints are plain
    for key, parts in zip(models[0].state_dict(), zip(*[unstack_state(fleet.state_dict(), 3)[i].values() for i in range(3)])):
        for m, t in zip(models, parts):
            assert torch.equal(m.state_dict()[key], t), key
    x = torch.rand(2, 3, 3, 32, 32, dtype=torch.float64)  # (batch, seed, channel, ...)
    y = (torch.rand(2, 3, 32, 32) > 0.5).double()
    losses = seed_losses(fleet(x.flatten(1, 2)), y)
    losses.sum().backward()
    for i, m in enumerate(models):
        loss = bce_dice_loss(m(x[:, i]), y[:, i:i + 1])
        loss.backward()
        torch.testing.assert_close(losses[i], loss, rtol=1e-12, atol=1e-12)
        for (name, pf), pm in zip(fleet.named_parameters(), m.parameters()):
            torch.testing.assert_close(pf.grad.chunk(3)[i], pm.grad, rtol=1e-9, atol=1e-12, msg=name)
    fleet.eval()
    out = fleet(x.flatten(1, 2))
    for i, m in enumerate(models):
        torch.testing.assert_close(out[:, i:i + 1], m.eval()(x[:, i]), rtol=1e-10, atol=1e-12)


@torch.no_grad()
def evaluate_arrays(model, x, y, batch=16):
    """The reference: one plain model, masks compared on the host by PooledMetrics.update."""
    model.eval()
    pm = PooledMetrics()
    for i in range(0, len(x), batch):
        pm.update((model(x[i:i + batch])[:, 0] > 0).numpy(), y[i:i + batch])
    return pm.result()


@pytest.mark.slow
def test_stacked_evaluation_equals_evaluate_arrays(shipped, ph2):
    a, _ = model_from_checkpoint(shipped)
    b, _ = model_from_checkpoint(shipped)
    with torch.no_grad():
        b.head.bias.add_(0.5)  # a second, different model
    samples = open_dataset(ph2).subset("val")[:6]
    x, y = load_arrays(samples, 128)
    data = DeviceData.load(samples, 128, "cpu")
    got = evaluate_models([a, b], data)
    for m, g in zip((a, b), got):
        ref = evaluate_arrays(m.to(memory_format=torch.channels_last), torch.from_numpy(x).contiguous(memory_format=torch.channels_last), y)
        assert ref["dsc"] > 0.8 and g["n_images"] == ref["n_images"] == 6
        # grouped vs plain convolutions: float32 logits ~3e-5 relative apart, so only pixels with |logit| < ~1e-4
        # can flip (expected: < 1 of the 98,304); one flip moves a score by ~1e-5 to 3e-5: abs 1e-4 is >= 3 flips
        for k in REPORTED_KEYS:
            assert g[k] == pytest.approx(ref[k], abs=1e-4), k
    assert got[0]["confusion"] != got[1]["confusion"]


def _run(out, *extra, data=None):
    return ["--data", str(data), "--out", str(out), "--size", "64", "--limit-train", "6", "--limit-val", "3",
            "--batch-size", "4", "--threads", "1", "--no-progress", *extra]


def _weights_close(a, b, atol):
    """Float64 checkpoints compared in float64 (rounding both to float32 could split two values 1e-15
    apart by one float32 ulp, 6e-8 near 1)."""
    for k in a:
        if a[k].dtype.is_floating_point:
            torch.testing.assert_close(a[k].double(), b[k].double(), rtol=0, atol=atol, msg=k)
        else:
            assert torch.equal(a[k], b[k]), k


def adamw_drift_bound(lrs, betas=(0.9, 0.999)) -> float:
    """The most two AdamW runs from the same weights can differ in any parameter after steps at `lrs`,
    WHATEVER gradients they see: by Cauchy-Schwarz the bias-corrected |m/sqrt(v)| at step t is at most
    rho_t = sqrt(sum_i w_i^2 / v_i) (w_i, v_i: the EMA weights of the first and second moments), so each
    step moves a parameter at most lr_t * rho_t; weight decay scales both runs' difference by (1 - lr*wd) < 1."""
    b1, b2 = betas
    total = 0.0
    for t, lr in enumerate(lrs, 1):
        rho = math.sqrt(sum(((1 - b1) * b1 ** (t - i) / (1 - b1 ** t)) ** 2 / ((1 - b2) * b2 ** (t - i) / (1 - b2 ** t))
                            for i in range(1, t + 1)))
        total += 2 * lr * rho
    return total


def _fp32_runs_agree(a, b, n_steps):
    """Two float32 runs of one seed by different kernels (grouped vs plain convolution, augment vs apply_aug,
    one call of bce_dice_loss vs one per seed): what holds on any x86-64 or ARM CPU.

    - parameters: within adamw_drift_bound, a guarantee (8e-3 here; measured 8e-4; seeds differ by ~0.9).
    - BatchNorm running statistics (EMAs of batch statistics, not bounded by AdamW): abs 2e-2. Float32 runs
      drift from exact arithmetic by up to 2e-3 here (float32 vs --precision fp64 on this data: BatchNorm over
      batches of 4 amplifies rounding), and two float32 runs are each within that drift: 5x margin. A
      missing running-stats update leaves them at 0 / 1, off by > 0.1.
    - losses: the first epoch (2 steps: the first on the same weights; AdamW's first update is lr * sign(g),
      so only gradients within rounding of 0 differ, and those barely move the loss) only by the rounding of
      the forward and loss: ~20 layers x sqrt(n) * 2^-24 per layer, n <= 540-term sums, pairwise sums over
      16384 pixels: ~3e-5 relative per run; bound 1e-4. Later epochs: float32 vs fp64 drift here is <= 1.3e-3
      relative, so rel 1e-2 (seeds' losses differ by 6-9%).
    - the generator states are integers: the same draws in the same order, exactly."""
    la, lb = [e["loss"] for e in a["history"]], [e["loss"] for e in b["history"]]
    assert lb[0] == pytest.approx(la[0], rel=1e-4, abs=0)
    assert lb == pytest.approx(la, rel=1e-2, abs=0)
    bound = adamw_drift_bound([a["history"][e]["lr"] for e in range(len(la)) for _ in range(n_steps // len(la))])
    for k, t in a["state_dict"].items():
        u = b["state_dict"][k]
        if not t.dtype.is_floating_point:
            assert torch.equal(t, u), k  # num_batches_tracked: one count per step
        elif "running_" in k:
            torch.testing.assert_close(u, t, rtol=0, atol=2e-2, msg=k)
        else:
            torch.testing.assert_close(u, t, rtol=0, atol=bound, msg=k)


@pytest.mark.slow
@pytest.mark.training
def test_two_seeds_in_one_process_equal_two_single_seed_runs(ph2, tmp_path):
    """--seeds 0,1 (eager, stopped after 2 of 3 epochs and resumed) vs model/train.py --seed 0 / --seed 1 in
    float32; a seed's folder from the fleet resumed alone by model/train.py; and --seeds 0,1 vs --seeds 0
    and --seeds 1 (grouped vs plain convolutions) in float64."""
    for s in (0, 1):
        train_main(_run(tmp_path / f"single{s}", "--seed", str(s), "--epochs", "3", "--no-compile", data=ph2))
    fleet = tmp_path / "fleet"
    train_main(_run(fleet, "--seeds", "0,1", "--engine", "eager", "--epochs", "3", "--stop-after", "2", data=ph2))
    shutil.copytree(fleet / "seed1", tmp_path / "alone1")
    res = train_main(_run(fleet, "--seeds", "0,1", "--engine", "eager", "--epochs", "3", "--resume", data=ph2))
    assert res["finished"] and res["epochs_done"] == 3
    train_main(_run(tmp_path / "alone1", "--seed", "1", "--epochs", "3", "--no-compile", "--resume", data=ph2))
    singles = [load_checkpoint(tmp_path / f"single{s}" / "last.pt") for s in (0, 1)]
    for s, a in enumerate(singles):
        b = load_checkpoint(fleet / f"seed{s}" / "last.pt")
        assert b["train_args"]["seed"] == s and b["model"] == a["model"] and b["epoch"] == 3
        for key in ("format", "config", "preprocessing", "threshold", "data"):  # the same header as train.py's
            assert b[key] == a[key], key
        assert b["preprocessing"]["input_size"] == [64, 64]  # --size, which the exporters and runtimes read
        same = lambda ta: {k: v for k, v in ta.items() if k not in ("seeds", "engine", "precision", "out", "compile")}  # noqa: E731
        assert same(b["train_args"]) == same(a["train_args"])
        assert [e["lr"] for e in b["history"]] == [e["lr"] for e in a["history"]]  # the same schedule, same formula
        assert torch.equal(a["rng"], b["rng"])  # the same draws, in the same order
        _fp32_runs_agree(a, b, n_steps=6)  # 3 epochs of 6 images in batches of 4: 2 steps each
        assert b["optimizer"]["param_groups"] == a["optimizer"]["param_groups"]
        assert all(float(v["step"]) == 6 for v in b["optimizer"]["state"].values())
    other = max((singles[0]["state_dict"][k] - singles[1]["state_dict"][k]).abs().max().item()
                for k in singles[0]["state_dict"] if singles[0]["state_dict"][k].dtype.is_floating_point)
    assert other > 10 * adamw_drift_bound([1e-3] * 6)  # seeds differ far more than the bound: no seed was trained as another
    alone = load_checkpoint(tmp_path / "alone1" / "last.pt")  # a fleet's seed state, finished alone
    assert alone["epoch"] == 3 and torch.equal(alone["rng"], singles[1]["rng"])
    _fp32_runs_agree(singles[1], alone, n_steps=6)
    log = json.loads((fleet / "fleet.json").read_text())
    assert log["finished"] and log["engine"] == "eager" and len(log["timing"]) == 3
    for s in (0, 1):
        assert (fleet / f"seed{s}" / "best.pt").is_file() and (fleet / f"seed{s}" / "curve.png").is_file()

    # float64: grouped (K=2) vs plain (K=1) convolutions, the same trainer. Rounding is 2^-53 ~ 1.1e-16 per
    # op; training amplifies it by <= ~2e4 here (float32: 2^-24 ~ 6e-8 grows to 1.3e-3 in the loss), so the
    # runs agree to ~1e-11: rel 1e-10 on losses, abs 1e-9 on every tensor (measured: 1e-14). Any mix-up of
    # seeds, images or BatchNorm channels moves them by > 1e-3. A pixel would flip in the val masks only
    # where a logit is within ~1e-12 of 0: the DSCs agree to 1e-9 (one flipped pixel moves them by > 1e-4).
    fp64 = ["--engine", "eager", "--epochs", "3", "--precision", "fp64"]
    train_main(_run(tmp_path / "f64", "--seeds", "0,1", *fp64, data=ph2))
    for s in (0, 1):
        train_main(_run(tmp_path / f"f64_{s}", "--seeds", str(s), *fp64, data=ph2))
        a = load_checkpoint(tmp_path / f"f64_{s}" / f"seed{s}" / "last.pt")
        b = load_checkpoint(tmp_path / "f64" / f"seed{s}" / "last.pt")
        assert b["train_args"]["precision"] == "fp64" and a["state_dict"]["head.weight"].dtype == torch.float64
        assert [e["loss"] for e in b["history"]] == pytest.approx([e["loss"] for e in a["history"]], rel=1e-10, abs=0)
        assert [e["val_dsc"] for e in b["history"]] == pytest.approx([e["val_dsc"] for e in a["history"]], rel=0, abs=1e-9)
        _weights_close(a["state_dict"], b["state_dict"], atol=1e-9)
        assert torch.equal(a["rng"], b["rng"])


@pytest.mark.slow
@pytest.mark.training
def test_torchrun_two_processes_equal_one_process(ph2, tmp_path):
    """Two gloo processes, each half of every global batch (7 images, batch 4: shards 2+2, then 2+1),
    against one process; float64 so that any wrong gradient would show far above the rounding."""
    args = _run(tmp_path / "X", "--seeds", "0,1", "--engine", "eager", "--epochs", "2", "--precision", "fp64",
                "--device", "cpu", data=ph2)
    args[args.index("--limit-train") + 1] = "7"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    one = [sys.executable, str(REPO / "model" / "train.py"), *args]
    one[one.index(str(tmp_path / "X"))] = str(tmp_path / "one")
    two = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *one[1:]]
    two[two.index(str(tmp_path / "one"))] = str(tmp_path / "two")
    for cmd in (one, two):
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout.strip().splitlines()[-1])["finished"]  # one summary line, from rank 0 only
    for s in (0, 1):
        a = load_checkpoint(tmp_path / "one" / f"seed{s}" / "last.pt")
        b = load_checkpoint(tmp_path / "two" / f"seed{s}" / "last.pt")
        assert [e["loss"] for e in b["history"]] == pytest.approx([e["loss"] for e in a["history"]], rel=1e-10)
        _weights_close(a["state_dict"], b["state_dict"], atol=1e-9)
        assert b["train_args"]["precision"] == "fp64"


def test_k_seed_cli_errors(ph2, tmp_path):
    assert parse_seeds("0-2,7") == [0, 1, 2, 7]
    for bad, msg in (("a,b", "cannot read"), ("3-1", "cannot read"), ("1,1", "twice")):
        with pytest.raises(UserError, match=msg):
            parse_seeds(bad)
    with pytest.raises(SystemExit, match="needs a CUDA GPU"):
        train_main(_run(tmp_path / "a", "--seeds", "0", "--engine", "capture", "--device", "cpu", "--epochs", "1", data=ph2))
    with pytest.raises(SystemExit, match="unknown engine"):
        train_main(_run(tmp_path / "a", "--seeds", "0", "--engine", "turbo", "--epochs", "1", data=ph2))
    with pytest.raises(SystemExit, match="nothing to resume"):
        train_main(_run(tmp_path / "b", "--seeds", "0,1", "--engine", "eager", "--epochs", "1", "--resume", data=ph2))
    from model.training.runfolder import FLEET_FORMAT

    (tmp_path / "c").mkdir()
    torch.save({"format": FLEET_FORMAT, "model": "aulunet_v3"}, tmp_path / "c" / "fleet_last.pt")
    with pytest.raises(SystemExit, match="has no 'train_args' .* cannot be resumed"):
        train_main(_run(tmp_path / "c", "--seeds", "0,1", "--engine", "eager", "--epochs", "1", "--resume", data=ph2))

    import core.safeio  # root ignores chmod: the refusal is simulated where the OS gives it (tests/test_errors_export.py)

    real_access = os.access
    (tmp_path / "ro").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(core.safeio.os, "access", lambda p, m: False if str(p) == str(tmp_path / "ro") else real_access(p, m))
        with pytest.raises(SystemExit, match=r"^error: .*ro: folder is not writable; pass --out with a writable location"):
            train_main(_run(tmp_path / "ro", "--seeds", "0,1", "--engine", "eager", "--epochs", "1", data=ph2))
    assert not list((tmp_path / "ro").iterdir())


def test_train_speed_reports_k_seed_rows_on_the_cpu(tmp_path):
    from benchmarks.train_speed import main as speed_main

    out = tmp_path / "speed.json"
    rep = speed_main(["--paths", "eager,fast-k2-eager", "--device", "cpu", "--size", "32", "--batch", "2", "--steps", "1",
                      "--rounds", "2", "--threads", "1", "--data", str(tmp_path / "none"), "--json", str(out), "--no-progress"])
    assert json.loads(out.read_text()) == rep and rep["failed"] == []
    rows = {r["path"]: r for r in rep["results"]}
    assert set(rows) == {"eager", "fast-k2-eager"}
    for r in rows.values():
        assert {"path", "device", "batch", "img_per_s", "ms_per_step", "img_per_s_per_seed", "seeds", "protocol_h"} <= set(r)
    k2 = rows["fast-k2-eager"]
    assert k2["seeds"] == 2 and k2["engine"] == "eager"
    assert k2["img_per_s"] == pytest.approx(2 * k2["img_per_s_per_seed"], rel=1e-3)
    assert k2["protocol_h"] == pytest.approx(5 * 1815 * 400 / k2["img_per_s"] / 3600, rel=1e-2)
    with pytest.raises(SystemExit, match="unknown path 'fast-k0'"):
        speed_main(["--paths", "fast-k0", "--device", "cpu"])
    with pytest.raises(SystemExit, match="needs a CUDA GPU"):
        speed_main(["--paths", "fast-k5-capture", "--device", "cpu"])


def _tiny_dataset(root: Path) -> Path:
    rng = np.random.default_rng(0)
    ids = [f"t{i}" for i in range(10)]
    for i in ids:
        img, mask = lesion_pair(rng)
        save_png(root / "images" / f"{i}.png", img)
        save_png(root / "masks" / f"{i}_segmentation.png", mask)
    (root / "split.json").write_text(json.dumps({"train": ids[:6], "val": ids[6:8], "test": ids[8:]}))
    return root


@pytest.mark.slow
@pytest.mark.training
def test_gpu_protocol_dry_run_resumes_across_calls(tmp_path):
    from model.gpu_protocol import main as protocol_main

    _tiny_dataset(tmp_path / "data" / "tiny")
    common = ["--state", str(tmp_path / "state"), "--data-root", str(tmp_path / "data"), "--plan", "v3:tiny,v3:absent",
              "--seeds", "0,1", "--epochs", "2", "--size", "32", "--batch-size", "4", "--device", "cpu", "--threads", "1",
              "--speed-paths", "eager,fast-k2-eager", "--speed-steps", "1", "--speed-rounds", "1", "--engine", "eager",
              "--save-every", "1", "--no-progress"]
    p1 = protocol_main(common + ["--stop-after", "1", "--out", str(tmp_path / "out1")])
    assert p1["runs"]["aulunet_v3_tiny"] == {"done": False, "epochs_done": 1, "engine": "eager"}
    assert (tmp_path / "state" / "train_speed.json").is_file()
    p2 = protocol_main(common + ["--out", str(tmp_path / "out2")])
    run = p2["runs"]["aulunet_v3_tiny"]
    assert run["done"] and run["epochs_done"] == 2 and "absent" in p2["runs"]["aulunet_v3_absent"]["note"]
    assert [c["did"] for c in p2["calls"]] == [["train_speed", "aulunet_v3_tiny: epochs 1/2"], ["aulunet_v3_tiny: epochs 2/2"]]
    summary = json.loads((tmp_path / "state" / "aulunet_v3_tiny" / "summary.json").read_text())
    assert summary["seeds"] == [0, 1] and summary["test"]["dsc"]["n"] == 2
    assert summary["selected_by"] == "best val DSC"
    chosen = max(summary["per_seed"], key=lambda p: p["val"]["dsc"])["seed"]
    assert summary["selected_seed"] == chosen
    assert load_checkpoint(tmp_path / "state" / "weights" / "aulunet_v3_tiny.pt")["train_args"]["seed"] == chosen
    assert "| aulunet_v3 | tiny | 2 x 2 |" in (tmp_path / "state" / "summary.md").read_text()
    files = sorted(p.name for p in (tmp_path / "out2").iterdir())
    assert files == ["progress.json", "protocol.log", "state.tar.gz", "summary.md", "train_speed.json"]  # <= 8, flat
    with tarfile.open(tmp_path / "out2" / "state.tar.gz") as t:
        names = t.getnames()
    assert "aulunet_v3_tiny/fleet_last.pt" in names and "aulunet_v3_tiny/seed0/best.pt" in names
    assert not any(n.endswith("seed0/last.pt") for n in names)
