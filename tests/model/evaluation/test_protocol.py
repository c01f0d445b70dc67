"""The protocol report (model/protocol.py) and the guard against scoring a model on its training images."""
import json
import os

import pytest

from model.evaluate import main as evaluate_main
from model.protocol import COMMITTED, main as protocol_main


@pytest.mark.slow
def test_evaluating_on_training_images_is_refused(shipped, ph2, tmp_path):
    """The shipped PH2 model trained on PH2's train split: scoring any of those images, under any folder
    name, is refused unless asked for (ids are matched, so copies in another folder are caught too)."""
    with pytest.raises(SystemExit, match=r"of the 150 'all' images .* are in this model's training set.*--allow-train-overlap"):
        evaluate_main(["--weights", str(shipped), "--data", str(ph2), "--split", "all", "--no-progress"])
    ids = json.loads((ph2 / "split.json").read_text())["train"][:3]
    copy = tmp_path / "copy"
    for sub, suffix in (("images", ".jpg"), ("masks", "_lesion.png")):
        (copy / sub).mkdir(parents=True)
        for i in ids:
            os.symlink(ph2 / sub / f"{i}{suffix}", copy / sub / f"{i}{suffix}")
    (copy / "split.json").write_text(json.dumps({"test": ids}))
    with pytest.raises(SystemExit, match=rf"3 of the 3 'test' images \(e.g. {ids[0]}\)"):
        evaluate_main(["--weights", str(shipped), "--data", str(copy), "--split", "test", "--no-progress"])
    res = evaluate_main(["--weights", str(shipped), "--data", str(copy), "--split", "test", "--allow-train-overlap",
                         "--no-progress"])
    assert res["n_images"] == 3  # said on purpose: scored


def _mini_root(tmp_path, ph2, isic2018, isic2017, n=4):
    """ph2 as it is; each ISIC folder cut to n test images (links, no copies)."""
    root = tmp_path / "data"
    root.mkdir()
    os.symlink(ph2, root / "ph2")
    for src in (isic2018, isic2017):
        dst = root / src.name
        (dst / "images").mkdir(parents=True)
        (dst / "masks").mkdir()
        ids = json.loads((src / "split.json").read_text())["test"][:n]
        for i in ids:
            os.symlink(src / "images" / f"{i}.jpg", dst / "images" / f"{i}.jpg")
            os.symlink(src / "masks" / f"{i}_segmentation.png", dst / "masks" / f"{i}_segmentation.png")
        (dst / "split.json").write_text(json.dumps({"test": ids}))
    return root


@pytest.mark.slow
def test_protocol_rows_for_the_ph2_model(shipped, ph2, isic2018, isic2017, tmp_path):
    before = COMMITTED.read_bytes() if COMMITTED.is_file() else None
    root = _mini_root(tmp_path, ph2, isic2018, isic2017)
    res = protocol_main(["--models", "aulunet_v3_ph2", "--data-root", str(root), "--out", str(tmp_path / "out"),
                         "--no-progress", "--threads", "1"])
    rows = {(r["dataset"], r["split"]): r for r in res["rows"]}
    assert set(rows) == {("ph2", "val"), ("isic2018", "test"), ("isic2017", "test")}
    assert rows[("ph2", "val")]["n_images"] == 30 and rows[("ph2", "val")]["dsc"] == pytest.approx(0.9529, abs=1e-4)
    assert rows[("isic2018", "test")]["n_images"] == 4 and rows[("isic2018", "test")]["role"] == "cross"
    assert json.loads((tmp_path / "out" / "results.json").read_text())["rows"] == res["rows"]
    assert "| aulunet_v3_ph2 | isic2017 | test | cross | 4 |" in (tmp_path / "out" / "results.md").read_text()
    assert (COMMITTED.read_bytes() if COMMITTED.is_file() else None) == before  # committed results untouched without --save


def test_protocol_argument_errors(tmp_path, monkeypatch):
    import model.protocol as protocol

    with pytest.raises(SystemExit, match="--models: unknown checkpoint 'v9'"):
        protocol_main(["--models", "v9"])
    monkeypatch.setattr(protocol, "WEIGHTS", tmp_path)  # a checkout where the ISIC 2017 run was never shipped
    with pytest.raises(SystemExit, match=r"--models: .*aulunet_v3_isic2017\.pt not found; train it first"):
        protocol_main(["--models", "aulunet_v3_isic2017"])


@pytest.mark.slow
def test_protocol_keeps_finished_rows_and_names_the_missing_dataset(shipped, ph2, tmp_path):
    """Only ph2/ under --data-root: the PH2 row is written, the two ISIC rows fail with protocol's own flag."""
    before = COMMITTED.read_bytes() if COMMITTED.is_file() else None
    root = tmp_path / "data"
    root.mkdir()
    os.symlink(ph2, root / "ph2")
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        protocol_main(["--models", "aulunet_v3_ph2", "--data-root", str(root), "--out", str(out), "--no-progress",
                       "--threads", "1", "--save"])
    msg = str(e.value)
    assert "\n" not in msg and "pass --data " not in msg and "pass --data-root" in msg, msg
    assert msg.startswith(f"error: 2 of 3 rows failed, first aulunet_v3_ph2 on isic2018 test: {root / 'isic2018'}: "
                          f"dataset folder not found; put isic2018/ under --data-root"), msg
    assert "the 1 finished are in" in msg and "the committed results were not updated" in msg
    res = json.loads((out / "results.json").read_text())
    assert [(r["dataset"], r["split"]) for r in res["rows"]] == [("ph2", "val")]
    assert res["rows"][0]["dsc"] == pytest.approx(0.9529, abs=1e-4)
    assert [(f["dataset"], f["split"]) for f in res["failed"]] == [("isic2018", "test"), ("isic2017", "test")]
    assert (COMMITTED.read_bytes() if COMMITTED.is_file() else None) == before  # --save with failures: not merged
