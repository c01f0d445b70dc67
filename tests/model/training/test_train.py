import json

import pytest
import torch

from model.data.augment import augment
from model.networks.checkpoint import FORMAT, load_checkpoint
from model.train import main as train_main, parse_args
from model.training.options import lr_at


def test_augment_keeps_image_and_mask_aligned():
    torch.manual_seed(0)
    y = torch.zeros(8, 1, 64, 64)
    y[:, :, 10:30, 20:50] = 1
    x = torch.cat([y, torch.rand(8, 2, 64, 64)], 1)  # channel 0 *is* the mask
    xa, ya = augment(x, y, torch.Generator().manual_seed(1), p_rotate=1.0)
    agree = ((xa[:, 0] > 0.5) == (ya[:, 0] > 0.5)).float().mean()
    assert agree > 0.99
    assert not torch.equal(ya, y)  # something moved
    xb, yb = augment(x, y, torch.Generator().manual_seed(1), p_rotate=1.0)
    assert torch.equal(xa, xb) and torch.equal(ya, yb)  # same generator state, same draw
    assert set(torch.unique(ya).tolist()) <= {0.0, 1.0}


def test_schedules():
    a = parse_args(["--epochs", "400"])
    assert lr_at(0, a) == pytest.approx(1e-3) and lr_at(400, a) == pytest.approx(1e-5)
    assert lr_at(200, a) == pytest.approx((1e-3 + 1e-5) / 2)
    r = parse_args(["--epochs", "400", "--schedule", "restart"])
    assert lr_at(50, r) == pytest.approx(1e-5) and lr_at(100, r) == pytest.approx(1e-3)  # T_max=50: back up at 100


def _args(out, *extra):
    """Small real runs; eager unless a test asks for --compile (compiling costs ~20 s a shape)."""
    compile_flag = [] if "--compile" in extra else ["--no-compile"]
    return ["--out", str(out), "--size", "64", "--limit-train", "8", "--limit-val", "4", "--threads", "2",
            "--no-progress", *compile_flag, *extra]


def _lowers_loss(losses):
    """Training lowers the loss: a clear drop from the first epoch, not a wiggle. (Margins are wide:
    the same run gives a last/first ratio of 0.80-0.86 across CPUs' instruction sets.)"""
    return losses[-1] < 0.95 * losses[0] and max(losses[-3:]) < min(losses[:2])


@pytest.mark.slow
@pytest.mark.training
def test_short_real_training_lowers_loss(ph2, tmp_path):
    res = train_main(_args(tmp_path, "--data", str(ph2), "--epochs", "8", "--lr", "1e-2", "--limit-train", "16"))
    log = json.loads((tmp_path / "log.json").read_text())
    losses = [e["loss"] for e in log["epochs"]]
    assert len(losses) == 8 and _lowers_loss(losses), losses
    ck = load_checkpoint(tmp_path / "best.pt")
    assert ck["format"] == FORMAT and ck["model"] == "aulunet_v3"
    assert ck["config"]["channels"] == [5, 10, 15, 25, 35, 60] or tuple(ck["config"]["channels"]) == (5, 10, 15, 25, 35, 60)
    assert ck["preprocessing"]["input_size"] == [64, 64] and ck["threshold"] == 0.5  # the size it trained at
    assert ck["data"]["split_hash"] and ck["data"]["n_train"] == 16
    assert ck["train_args"]["epochs"] == 8 and ck["metrics"]["val"]["epoch"] == res["best"]["epoch"]
    assert "optimizer" not in ck  # best.pt is slim; last.pt carries the resume state
    assert "optimizer" in load_checkpoint(tmp_path / "last.pt")


@pytest.mark.slow
@pytest.mark.training
def test_resume_after_kill_gives_identical_weights(ph2, tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    train_main(_args(straight, "--data", str(ph2), "--epochs", "3"))
    train_main(_args(killed, "--data", str(ph2), "--epochs", "3", "--stop-after", "2"))
    assert len(json.loads((killed / "log.json").read_text())["epochs"]) == 2
    train_main(_args(killed, "--data", str(ph2), "--epochs", "3", "--resume"))
    a = load_checkpoint(straight / "last.pt")
    b = load_checkpoint(killed / "last.pt")
    assert a["epoch"] == b["epoch"] == 3
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    assert [e["loss"] for e in a["history"]] == [e["loss"] for e in b["history"]]


@pytest.mark.slow
@pytest.mark.training
def test_resume_refuses_other_schedule(ph2, tmp_path):
    train_main(_args(tmp_path, "--data", str(ph2), "--epochs", "2", "--stop-after", "1", "--limit-train", "2"))
    with pytest.raises(SystemExit, match="resume with the same values"):
        train_main(_args(tmp_path, "--data", str(ph2), "--epochs", "5", "--resume", "--limit-train", "2"))
    with pytest.raises(SystemExit, match="nothing to resume"):
        train_main(_args(tmp_path / "fresh", "--data", str(ph2), "--epochs", "2", "--resume"))


def test_bad_data_and_variant_are_clear_errors(tmp_path):
    with pytest.raises(SystemExit, match="data folder not found"):
        train_main(_args(tmp_path, "--data", str(tmp_path / "nope"), "--epochs", "1"))
    with pytest.raises(SystemExit, match="unknown model"):
        train_main(_args(tmp_path, "--variant", "v42", "--epochs", "1"))


@pytest.mark.slow
@pytest.mark.compile
def test_compiled_steps_match_eager(ph2):
    """The fast path (torch.compile of forward + loss) computes what eager computes, at each of 20 training
    states: eager trains; at every step a second model, given the same weights and BatchNorm statistics,
    runs the compiled forward + loss + backward on the same batch.

    Compiled and eager are different kernels (fused BatchNorm, reordered sums), so two trajectories would
    drift apart (AdamW's first step is lr * sign(g): a gradient within rounding of 0 moves its parameter by
    +-lr; BatchNorm over 8 images amplifies rounding; measured: 2.4e-4 after 3 steps and 1e-2 after 20 on one
    CPU); on the same weights, only the rounding of one pass differs, whatever the CPU:
    - loss: ~20 layers, each a sum of n <= 540 terms with error ~ sqrt(n) * 2^-24 (~1.4e-6) relative, then
      sums over 8*64*64 pixels: ~3e-5 relative; bound 1e-4 (measured 1e-7). A wrong loss or a layer
      computed otherwise moves it by far more.
    - BatchNorm running statistics after the forward: momentum 0.1 times a batch mean / variance over 32768
      values, each carrying that relative error: abs 1e-4 (a missed update leaves them off by > 1e-2).
    - gradients, as one vector: BatchNorm's backward over small batches amplifies rounding (float32 gradients
      at initialisation are up to ~2% off float64 ones, model/training/engines.py), so each kernel's vector is ~1% off
      exact and two kernels up to ~2% apart: bound 5e-2 of its norm (measured <= 7e-3); a wrong gradient is
      off by O(1)."""
    from model.networks.aulunet import build_model
    from model.data import load_arrays, open_dataset
    from model.training.engines import make_loss_fn

    x, y = load_arrays(open_dataset(ph2).subset("train")[:8], 64)
    x, y = torch.from_numpy(x), torch.from_numpy(y).float().unsqueeze(1)
    models = []
    for _ in range(2):
        torch.manual_seed(0)
        models.append(build_model("v3").to(memory_format=torch.channels_last).train())
    eager, comp = models
    opt = torch.optim.AdamW(eager.parameters(), lr=1e-3, weight_decay=1e-2)
    fn_e, fn_c = make_loss_fn(eager, "eager"), make_loss_fn(comp, "compile")
    gen = torch.Generator().manual_seed(0)
    losses = {False: [], True: []}
    for _ in range(20):
        xb, yb = augment(x, y, gen)
        xb = xb.contiguous(memory_format=torch.channels_last)
        comp.load_state_dict(eager.state_dict())  # the same weights and statistics (copied in place: no recompile)
        for compiled, m, fn in ((False, eager, fn_e), (True, comp, fn_c)):
            m.zero_grad(set_to_none=True)
            loss = fn(xb, yb).sum()  # the per-seed losses of a fleet of one: (1,)
            loss.backward()
            losses[compiled].append(loss.item())
        assert losses[True][-1] == pytest.approx(losses[False][-1], rel=1e-4, abs=0)
        for (k, a), b in zip(eager.state_dict().items(), comp.state_dict().values()):
            if "running_" in k:
                torch.testing.assert_close(b, a, rtol=0, atol=1e-4, msg=k)
            elif not a.dtype.is_floating_point:
                assert torch.equal(a, b), k
        ge = torch.cat([p.grad.flatten() for p in eager.parameters()])
        gc = torch.cat([p.grad.flatten() for p in comp.parameters()])
        assert ((gc - ge).norm() / ge.norm()).item() < 5e-2
        opt.step()
    assert not any(k.startswith("_orig_mod") for k in comp.state_dict())
    assert losses[True][-1] < losses[True][0]  # and it trains (1.42 -> 1.29 here; float32 trajectories differ by ~1e-2)


@pytest.mark.slow
@pytest.mark.compile
@pytest.mark.training
def test_compiled_resume_is_bit_identical(ph2, tmp_path):
    """The committed ISIC run states resume on the compiled path: a killed + resumed run equals a straight one."""
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    common = ["--data", str(ph2), "--epochs", "2", "--compile", "--limit-train", "8"]
    train_main(_args(straight, *common))
    train_main(_args(killed, *common, "--stop-after", "1"))
    train_main(_args(killed, *common, "--resume"))
    a, b = load_checkpoint(straight / "last.pt"), load_checkpoint(killed / "last.pt")
    assert a["train_args"]["compile"] is True
    for k in a["state_dict"]:
        assert not k.startswith("_orig_mod") and torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    assert [e["loss"] for e in a["history"]] == [e["loss"] for e in b["history"]]


@pytest.mark.parametrize("flag", ["--epochs", "--batch-size"])
def test_non_positive_sizes_are_one_line_errors(tmp_path, flag):
    with pytest.raises(SystemExit, match=f"{flag} must be at least 1"):
        train_main(_args(tmp_path / "run", flag, "0"))
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
@pytest.mark.training
@pytest.mark.parametrize("name", ["isic2018", "isic2017"])
def test_short_real_isic_training_lowers_loss(name, request, tmp_path):
    data = request.getfixturevalue(name)
    train_main(_args(tmp_path, "--data", str(data), "--epochs", "6", "--lr", "1e-2", "--limit-train", "16"))
    log = json.loads((tmp_path / "log.json").read_text())
    losses = [e["loss"] for e in log["epochs"]]
    assert len(losses) == 6 and _lowers_loss(losses), losses
    assert log["run"]["data"]["split_source"] == "split.json" and log["run"]["data"]["n_train"] == 16


@pytest.mark.slow
@pytest.mark.training
def test_resuming_a_slim_best_checkpoint_is_a_one_line_error(ph2, tmp_path):
    train_main(_args(tmp_path, "--data", str(ph2), "--epochs", "2", "--stop-after", "1", "--limit-train", "2"))
    (tmp_path / "last.pt").write_bytes((tmp_path / "best.pt").read_bytes())
    with pytest.raises(SystemExit, match=r"last\.pt: has no 'optimizer' \(a slim best\.pt\?\)"):
        train_main(_args(tmp_path, "--data", str(ph2), "--epochs", "2", "--resume", "--limit-train", "2"))
