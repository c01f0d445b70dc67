"""The ISIC 2018 / 2017 folders in ../shared, and the committed state of the ISIC training runs."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from model.data import load_arrays, open_dataset
from tests.conftest import REPO

IN_PROGRESS = REPO / "model" / "weights" / "in_progress"

COUNTS = {"isic2018": (2594, {"train": 1815, "val": 259, "test": 520}, (192, 256)),
          "isic2017": (2000, {"train": 1250, "val": 150, "test": 600}, (256, 256))}


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_isic_folders_load_with_their_splits(name, request):
    root = request.getfixturevalue(name)
    n, counts, (h, w) = COUNTS[name]
    ds = open_dataset(root)
    assert ds.layout == "generic" and ds.split_source == "split.json" and len(ds.samples) == n
    assert {k: len(v) for k, v in ds.splits.items()} == counts
    ids = [set(v) for v in ds.splits.values()]
    assert sum(map(len, ids)) == len(set().union(*ids)) == n  # disjoint and complete
    x, y = load_arrays(ds.subset("test")[:3], 256)
    assert x.shape == (3, 3, 256, 256) and 0.0 <= x.min() and x.max() == 1.0
    assert set(np.unique(y).tolist()) == {0, 1}
    from PIL import Image

    with Image.open(ds.subset("val")[0].image) as im:
        assert im.size == (w, h)


def test_isic_2017_and_2018_share_cases(isic2018, isic2017):
    """Why a model trained on one must never be tested on the other (the folders' READMEs say so)."""
    a = {s.id for s in open_dataset(isic2018).samples}
    b = {s.id for s in open_dataset(isic2017).samples}
    assert len(a & b) == 1800


def _states():
    return sorted(IN_PROGRESS.glob("*/last.pt")) if IN_PROGRESS.is_dir() else []


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory):
    """A run that stopped after its first of two epochs, as a session that ends mid-run leaves it (its data beside it)."""
    from model.data.synthetic import write_synthetic_dataset
    from model.train import main as train_main

    root = tmp_path_factory.mktemp("stopped_run")
    data = write_synthetic_dataset(root / "data", n=6, shape=(64, 64))
    train_main(["--data", str(data), "--out", str(root / "run"), "--size", "32", "--epochs", "2", "--stop-after", "1",
                "--threads", "1", "--no-compile", "--no-progress"])
    return root / "run" / "last.pt", data


# every committed run state, and always one made here: the check runs even while model/weights/in_progress/ is empty
@pytest.mark.parametrize("last", [pytest.param(None, marks=[pytest.mark.slow, pytest.mark.training]), *_states()],
                         ids=lambda p: p.parent.name if p else "stopped_here")
def test_committed_run_state_resumes(last, request):
    """A run committed mid-way (see model/weights/in_progress/README.md) loads into the model, the
    optimizer and the generator exactly as `--resume` does, and its data are the split it started on."""
    from model.networks.aulunet import build_model
    from model.networks.checkpoint import load_checkpoint

    if last is None:
        last, root = request.getfixturevalue("stopped_run")
    else:
        root = None
    ck = load_checkpoint(last)
    log = json.loads((last.parent / "log.json").read_text())
    assert ck["epoch"] == len(ck["history"]) == len(log["epochs"]) >= 1
    assert 0 < ck["epoch"] < ck["train_args"]["epochs"]  # a finished run is moved to model/weights, not left here
    model = build_model(ck["model"])
    model.load_state_dict(ck["state_dict"])
    opt = torch.optim.AdamW(model.parameters())
    opt.load_state_dict(ck["optimizer"])
    torch.Generator().set_state(ck["rng"])
    if ck["train_args"].get("ema"):  # an averaged run carries its average and how many steps went into it
        build_model(ck["model"]).load_state_dict(ck["ema_state_dict"])
        assert ck["ema_updates"] >= ck["epoch"]
    root = root or REPO.parent / "shared" / "data" / Path(ck["data"]["root"]).name
    if not (root / "images").is_dir():
        pytest.skip(f"{root} absent: cannot check the run's split (CI always has it)")
    assert open_dataset(root).split_hash() == ck["data"]["split_hash"]
    assert (last.parent / "best.pt").is_file()


WEIGHTS = REPO / "model" / "weights"
SHIPPED_ISIC = {"aulunet_v3_isic2018": "isic2018", "aulunet_v3_isic2017": "isic2017"}


@pytest.mark.slow
@pytest.mark.parametrize("model", sorted(SHIPPED_ISIC))
def test_shipped_isic_checkpoint_repeats_its_committed_figures(model, request):
    """The committed ISIC checkpoint gives its committed val metrics again (files -> runtimes -> metrics), and the
    protocol's committed rows (test scored once, PH2 unseen) come from this run and these splits."""
    from model.networks.checkpoint import load_checkpoint
    from model.evaluate import main as evaluate_main

    weights = WEIGHTS / f"{model}.pt"
    assert weights.is_file(), f"{weights} missing: promote the finished run (model/promote.py)"
    dataset = SHIPPED_ISIC[model]
    root = request.getfixturevalue(dataset)
    counts = COUNTS[dataset][1]
    ck = load_checkpoint(weights)
    assert ck["train_args"]["epochs"] == 100 and ck["data"]["n_train"] == counts["train"]
    assert ck["data"]["n_val"] == counts["val"]
    assert ck["data"]["split_hash"] == open_dataset(root).split_hash() and "optimizer" not in ck
    committed = json.loads((WEIGHTS / f"{model}.metrics.json").read_text())
    res = evaluate_main(["--weights", str(weights), "--data", str(root), "--split", "val", "--no-progress"])
    assert res["n_images"] == committed["n_images"] == counts["val"]
    # committed on another CPU: float32 logits ~3e-5 relative apart, so only pixels with |logit| < ~1e-4 can flip;
    # one flip moves a pooled or per-image-mean score by < 1e-5 here (thresholded_jaccard could also jump by 0.65 / N
    # for an image whose Jaccard lay within ~1e-5 of the 0.65 threshold; a failure here would show it as a jump).
    for k in ("dsc", "miou", "jaccard_mean", "thresholded_jaccard"):
        assert res[k] == pytest.approx(committed[k], abs=1e-4), k
    rows = {(r["dataset"], r["split"]): r for r in json.loads((WEIGHTS / "protocol_results.json").read_text())["rows"]
            if r["model"] == model}
    assert set(rows) == {(dataset, "val"), (dataset, "test"), ("ph2", "all")}
    assert rows[(dataset, "val")]["dsc"] == pytest.approx(committed["dsc"], abs=1e-4)
    assert rows[(dataset, "test")]["n_images"] == counts["test"] and rows[("ph2", "all")]["n_images"] == 150
    assert rows[(dataset, "test")]["epoch"] == ck["metrics"]["val"]["epoch"] and rows[(dataset, "test")]["epochs_run"] == 100
