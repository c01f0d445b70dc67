"""Shipping a finished run (model/promote.py): files, the val re-check, refusals."""
import json

import pytest

from model.networks.checkpoint import load_checkpoint
from model.promote import main as promote_main
from model.train import main as train_main

pytestmark = [pytest.mark.slow, pytest.mark.training]


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


def _copy(run, tmp_path, name="r"):
    import shutil

    dst = tmp_path / name
    shutil.copytree(run, dst)
    return dst


def _edit_best(folder, edit):
    import torch

    ck = torch.load(folder / "best.pt", weights_only=True)
    edit(ck)
    torch.save(ck, folder / "best.pt")


def _refused(argv, match, weights):
    with pytest.raises(SystemExit, match=match) as e:
        promote_main(argv)
    assert "\n" not in str(e.value)
    assert not weights.exists() or not list(weights.iterdir())  # nothing shipped, not even part of it


def test_promote_checks_everything_before_writing(run, tmp_path, ph2, shipped):
    w = tmp_path / "w"
    args = lambda folder, *extra: [str(folder), "--name", "x", "--weights-dir", str(w), *extra]  # noqa: E731
    bad_log = _copy(run, tmp_path, "bad_log")
    (bad_log / "log.json").write_text('{"epochs": [')
    _refused(args(bad_log), r"^error: .*bad_log/log\.json: cannot read it as a training log \(JSONDecodeError: .*\); the run "
                            r"folder is damaged", w)
    (bad_log / "log.json").write_text('{"epochs": []}')
    _refused(args(bad_log), r"bad_log/log\.json: not a log written by model/train\.py", w)

    foreign = _copy(run, tmp_path, "foreign")  # a shipped checkpoint put in as best.pt: another run's epoch
    (foreign / "best.pt").write_bytes(shipped.read_bytes())
    _refused(args(foreign), r"foreign/best\.pt: epoch 208 \(val DSC 0\.9529\) is not the best epoch its log\.json records "
                            r"\(epoch \d, val DSC [\d.]+\); best\.pt and log\.json come from different runs", w)
    (foreign / "best.pt").write_bytes((run / "last.pt").read_bytes())
    _refused(args(foreign), r"foreign/best\.pt: holds optimizer state, so it is a last\.pt", w)
    (foreign / "best.pt").write_bytes(b"\x00" * 10)
    _refused(args(foreign), r"foreign/best\.pt: not a readable PyTorch checkpoint", w)

    moved = _copy(run, tmp_path, "moved")  # trained on a machine where the data sat elsewhere, under another name
    _edit_best(moved, lambda ck: ck["data"].update(root="/nowhere/mydata"))
    _refused(args(moved), r"moved: its data /nowhere/mydata is not here \(nor .*mydata\); pass --data with the dataset it "
                          r"was trained on", w)
    _refused(args(moved, "--data", str(tmp_path / "none")), r"--data .*none: not a folder; pass --data", w)

    changed = _copy(run, tmp_path, "changed")  # the val figure no longer repeats: refused after the check, before writing
    import json as _json

    log = _json.loads((changed / "log.json").read_text())
    log["best"]["dsc"] = 0.5
    (changed / "log.json").write_text(_json.dumps(log))
    _edit_best(changed, lambda ck: ck["metrics"]["val"].update(dsc=0.5))
    _refused(args(changed), r"changed/best\.pt: val DSC [\d.]+ now, 0\.5000 when trained; the data under .*ph2 changed since "
                            r"training: pass --data with the dataset it was trained on \(nothing was written\)", w)

    res = promote_main(args(moved, "--data", str(ph2), "--remove-run"))  # the right data given: shipped, then removed
    assert sorted(p.name for p in w.iterdir()) == ["x.curve.png", "x.metrics.json", "x.pt", "x.train_log.json"]
    assert res["val"]["data"] == str(ph2) and not moved.exists()


def test_remove_run_deletes_only_what_train_wrote(run, tmp_path):
    folder = _copy(run, tmp_path, "keep")
    (folder / "notes.txt").write_text("mine")
    promote_main([str(folder), "--name", "y", "--weights-dir", str(tmp_path / "w"), "--remove-run"])
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
