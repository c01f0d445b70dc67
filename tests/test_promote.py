"""Shipping a finished run (model/promote.py): files, the val re-check, refusals."""
import json

import pytest

from model.checkpoint import load_checkpoint
from model.promote import main as promote_main
from model.train import main as train_main


@pytest.fixture(scope="module")
def run(ph2, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    train_main(["--data", str(ph2), "--out", str(out), "--size", "64", "--limit-train", "4", "--epochs", "2",
                "--threads", "2", "--no-compile", "--no-progress"])
    return out


def test_promote_ships_checkpoint_log_curve_and_val_metrics(run, tmp_path):
    res = promote_main([str(run), "--name", "aulunet_v3_test", "--weights-dir", str(tmp_path)])
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["aulunet_v3_test.curve.png", "aulunet_v3_test.metrics.json", "aulunet_v3_test.pt",
                     "aulunet_v3_test.train_log.json"]
    assert (tmp_path / "aulunet_v3_test.pt").read_bytes() == (run / "best.pt").read_bytes()
    m = json.loads((tmp_path / "aulunet_v3_test.metrics.json").read_text())
    assert m["split"] == "val" and m["n_images"] == 30 and m == {k: v for k, v in res["val"].items()}
    stored = load_checkpoint(run / "best.pt")["metrics"]["val"]["dsc"]
    assert m["dsc"] == pytest.approx(stored, abs=1e-4)  # the full val split, as training scored it
    with pytest.raises(SystemExit, match=r"aulunet_v3_test\.pt: already shipped; pass --force"):
        promote_main([str(run), "--name", "aulunet_v3_test", "--weights-dir", str(tmp_path)])
    assert promote_main([str(run), "--name", "aulunet_v3_test", "--weights-dir", str(tmp_path), "--force"])


def test_promote_refuses_unfinished_and_foreign_folders(ph2, tmp_path):
    out = tmp_path / "half"
    train_main(["--data", str(ph2), "--out", str(out), "--size", "64", "--limit-train", "2", "--limit-val", "2",
                "--epochs", "3", "--stop-after", "1", "--threads", "2", "--no-compile", "--no-progress"])
    with pytest.raises(SystemExit, match=r"half: 1 of 3 epochs done; resume it \(--resume\) or pass --allow-unfinished"):
        promote_main([str(out), "--name", "x", "--weights-dir", str(tmp_path / "w")])
    with pytest.raises(SystemExit, match=r"nope: no best\.pt and log\.json"):
        promote_main([str(tmp_path / "nope"), "--name", "x", "--weights-dir", str(tmp_path / "w")])
    assert promote_main([str(out), "--name", "x", "--weights-dir", str(tmp_path / "w"), "--allow-unfinished",
                         "--remove-run"])
    assert not out.exists()
