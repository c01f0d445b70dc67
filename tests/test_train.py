import json

import pytest
import torch

from model.augment import augment
from model.checkpoint import FORMAT, load_checkpoint
from model.train import lr_at, main as train_main, parse_args


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
    return ["--out", str(out), "--size", "64", "--limit-train", "8", "--limit-val", "4", "--threads", "2",
            "--no-progress", *extra]


def test_short_real_training_lowers_loss(ph2, tmp_path):
    res = train_main(_args(tmp_path, "--data", str(ph2), "--epochs", "8", "--lr", "1e-2", "--limit-train", "16"))
    log = json.loads((tmp_path / "log.json").read_text())
    losses = [e["loss"] for e in log["epochs"]]
    assert len(losses) == 8 and losses[-1] < losses[0] * 0.85, losses
    ck = load_checkpoint(tmp_path / "best.pt")
    assert ck["format"] == FORMAT and ck["model"] == "aulunet_v3"
    assert ck["config"]["channels"] == [5, 10, 15, 25, 35, 60] or tuple(ck["config"]["channels"]) == (5, 10, 15, 25, 35, 60)
    assert ck["preprocessing"]["input_size"] == [256, 256] and ck["threshold"] == 0.5
    assert ck["data"]["split_hash"] and ck["data"]["n_train"] == 16
    assert ck["train_args"]["epochs"] == 8 and ck["metrics"]["val"]["epoch"] == res["best"]["epoch"]
    assert "optimizer" not in ck  # best.pt is slim; last.pt carries the resume state
    assert "optimizer" in load_checkpoint(tmp_path / "last.pt")


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
