import json

import numpy as np
import pytest
import torch

import runtimes
from model.networks.checkpoint import CheckpointError, load_checkpoint
from model.demo import main as demo_main
from model.evaluate import main as evaluate_main
from tests.conftest import REPO, assert_one_line_error, cli, foreign_onnx

KEYS = {"miou", "dsc", "accuracy", "specificity", "sensitivity", "n_images", "jaccard_mean", "thresholded_jaccard"}


@pytest.mark.slow
def test_shipped_checkpoint_reaches_ph2_val_figure(shipped, ph2, tmp_path):
    out = tmp_path / "m.json"
    res = evaluate_main(["--weights", str(shipped), "--data", str(ph2), "--split", "val", "--json", str(out), "--no-progress"])
    data = json.loads(out.read_text())
    assert KEYS <= set(data) and data["n_images"] == 30
    assert all(0.0 <= data[k] <= 1.0 for k in KEYS - {"n_images"})
    assert data["dsc"] >= 0.945 and data["miou"] >= 0.895, data
    # the standalone evaluation (files -> runtimes -> metrics) repeats what training measured
    # (other kernels than training's evaluation: float32 logits ~3e-5 relative apart, so only pixels with |logit| <
    # ~1e-4 can flip, a handful of the 2e6; one flip moves the pooled DSC by ~1e-6: abs 1e-4 is ~100 flips)
    stored = load_checkpoint(shipped)["metrics"]["val"]
    assert res["dsc"] == pytest.approx(stored["dsc"], abs=1e-4)
    assert res["miou"] == pytest.approx(stored["miou"], abs=1e-4)


def test_shipped_checkpoint_metadata(shipped):
    ck = load_checkpoint(shipped)
    assert ck["model"] == "aulunet_v3" and ck["data"]["split_hash"]
    assert ck["train_args"]["epochs"] == 400 and ck["data"]["n_train"] == 120 and ck["data"]["n_val"] == 30
    assert "optimizer" not in ck and shipped.stat().st_size < 400_000


def test_predict_returns_image_sized_maps(shipped):
    seg = runtimes.load(shipped, threads=1)
    rgb = np.random.default_rng(0).integers(0, 255, (97, 133, 3), dtype=np.uint8)
    prob, mask = seg.predict(rgb)
    assert prob.shape == mask.shape == (97, 133) and mask.dtype == bool
    assert 0 <= prob.min() <= prob.max() <= 1
    np.testing.assert_array_equal(mask, prob > 0.5)


def test_bad_weights_are_clear_errors(tmp_path, shipped, ph2):
    with pytest.raises(SystemExit, match=r"nope\.pt: model file not found"):
        evaluate_main(["--weights", str(tmp_path / "nope.pt"), "--data", str(ph2)])
    trunc = tmp_path / "trunc.pt"
    trunc.write_bytes(shipped.read_bytes()[:5000])
    with pytest.raises(SystemExit, match=r"trunc\.pt: not a readable PyTorch checkpoint"):
        evaluate_main(["--weights", str(trunc), "--data", str(ph2)])
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(SystemExit, match=r"foreign\.pt: not an AULUNet checkpoint"):
        evaluate_main(["--weights", str(foreign), "--data", str(ph2)])
    odd = tmp_path / "model.h5"
    odd.write_bytes(b"x")
    with pytest.raises(SystemExit, match=r"model\.h5: unknown model suffix '\.h5'"):
        evaluate_main(["--weights", str(odd), "--data", str(ph2)])


class Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_unsafe_pickle_is_refused(tmp_path):
    p = tmp_path / "evil.pt"
    torch.save({"format": "aulunet-checkpoint/1", "state_dict": {}, "x": Evil()}, p)
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        load_checkpoint(p)


def test_wrong_state_dict_is_a_clear_error(tmp_path, shipped):
    ck = load_checkpoint(shipped)
    ck["config"]["channels"] = [4, 8, 16, 24, 36, 60]
    p = tmp_path / "mismatch.pt"
    torch.save(ck, p)
    with pytest.raises(runtimes.ModelFileError, match=r"mismatch\.pt: weights do not fit the config"):
        runtimes.load(p)


@pytest.mark.slow
def test_demo_on_synthetic_images(shipped, tmp_path):
    res = demo_main(["--weights", str(shipped), "--synthetic", "--out", str(tmp_path), "--no-progress"])
    data = json.loads((tmp_path / "metrics.json").read_text())
    assert data["synthetic"] is True and data["n_images"] == 6 and res["dsc"] == data["dsc"]
    assert (tmp_path / "overlays.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "SYNTHETIC" in (tmp_path / "metrics.md").read_text()
    assert (tmp_path / "synthetic_data" / "SYNTHETIC.txt").is_file()


@pytest.mark.slow
def test_demo_on_real_data(shipped, ph2, tmp_path):
    demo_main(["--weights", str(shipped), "--data", str(ph2), "--out", str(tmp_path), "--figures", "2", "--no-progress"])
    data = json.loads((tmp_path / "metrics.json").read_text())
    assert data["synthetic"] is False and data["split"] == "val" and data["n_images"] == 30  # PH2 has no test split


def test_demo_scores_the_test_split_when_the_data_has_one(shipped, tmp_path):
    from tests.conftest import lesion_pair, save_png

    rng = np.random.default_rng(0)
    ids = [f"case{i}" for i in range(7)]
    for i in ids:
        img, mask = lesion_pair(rng, 64, 80)
        save_png(tmp_path / "d" / "images" / f"{i}.png", img)
        save_png(tmp_path / "d" / "masks" / f"{i}.png", mask)
    (tmp_path / "d" / "split.json").write_text(json.dumps({"train": ids[:2], "val": ids[2:4], "test": ids[4:]}))
    demo_main(["--weights", str(shipped), "--data", str(tmp_path / "d"), "--out", str(tmp_path / "o"), "--no-progress"])
    data = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert data["split"] == "test" and data["n_images"] == 3


def test_demo_refuses_the_models_training_images(shipped, ph2, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        demo_main(["--weights", str(shipped), "--data", str(ph2), "--split", "train", "--out", str(tmp_path)])
    assert "are in this model's training set" in str(e.value) and "--allow-train-overlap" in str(e.value)
    assert not (tmp_path / "metrics.json").exists()


EXPORTS = REPO / "exports"


@pytest.mark.parametrize("name", ["aulunet_v3_ph2.onnx", "aulunet_v3_ph2_int8.onnx", "aulunet_v3_ph2.xml",
                                  "aulunet_v3_ph2_int8.tflite"])
def test_exports_are_refused_on_their_source_checkpoints_training_images(ph2, tmp_path, name):
    """An export is traced to its source checkpoint through its metadata (file name + sha256): scoring the PH2
    export on PH2 train (DSC 0.964 before) is refused by evaluate and demo like the .pt, and allowed with the flag."""
    msg = (rf"{name}: 120 of the 120 'train' images \(e\.g\. IMD\d+\) are in this model's training set \(its source "
           rf"checkpoint aulunet_v3_ph2\.pt\), so the scores would be inflated; .* --allow-train-overlap")
    with pytest.raises(SystemExit, match=msg):
        evaluate_main(["--weights", str(EXPORTS / name), "--data", str(ph2), "--split", "train", "--no-progress",
                       "--json", str(tmp_path / "m.json")])
    with pytest.raises(SystemExit, match=msg):
        demo_main(["--weights", str(EXPORTS / name), "--data", str(ph2), "--split", "train", "--out", str(tmp_path / "d"),
                   "--no-progress"])
    assert not (tmp_path / "m.json").exists() and not (tmp_path / "d" / "metrics.json").exists()


@pytest.mark.slow
def test_export_overlap_is_allowed_with_the_flag_and_val_is_not_refused(ph2):
    res = evaluate_main(["--weights", str(EXPORTS / "aulunet_v3_ph2.onnx"), "--data", str(ph2), "--split", "train",
                         "--no-progress", "--allow-train-overlap"])
    assert res["n_images"] == 120 and res["dsc"] > 0.95
    assert evaluate_main(["--weights", str(EXPORTS / "aulunet_v3_ph2.onnx"), "--data", str(ph2), "--no-progress"])["n_images"] == 30


def test_export_without_its_checkpoint_is_traced_by_the_data_in_its_metadata(ph2, tmp_path):
    """An export copied away from model/weights/ whose metadata records the training data (new exports) is
    refused too; an old export whose checkpoint is nowhere cannot be traced and is scored."""
    import onnx

    from model.evaluation.provenance import overlap_error
    from model.data import open_dataset

    train = open_dataset(ph2).subset("train")
    m = onnx.load(str(EXPORTS / "aulunet_v3_ph2.onnx"))
    meta = json.loads(m.metadata_props[0].value)
    ck = load_checkpoint(EXPORTS.parent / "model" / "weights" / "aulunet_v3_ph2.pt")
    orphan = {**meta, "source_checkpoint": {**meta["source_checkpoint"], "file": "elsewhere.pt"}}
    assert overlap_error(tmp_path / "x.onnx", train, "train", orphan) is None
    traced = {**meta, "source_checkpoint": {**orphan["source_checkpoint"], "data": ck["data"],
                                            "train_split": {"seed": ck["train_args"]["seed"]}}}
    m.metadata_props[0].value = json.dumps(traced)
    onnx.save(m, str(tmp_path / "copy.onnx"))
    err = overlap_error(tmp_path / "copy.onnx", train, "train")  # metadata read from the file
    assert "120 of the 120 'train' images" in err and "its source checkpoint elsewhere.pt" in err


# ------------------------------------------------------------------ the CLI on foreign or broken model files, bad arguments (issue 11)

@pytest.mark.slow
def test_evaluate_cli_foreign_model(tmp_path, ph2):
    f = foreign_onnx(tmp_path / "foreign.onnx")
    rc, _, err = cli("model/evaluate.py", "--weights", f, "--data", ph2, "--no-progress")
    assert_one_line_error(rc, err, r"foreign\.onnx: no AULUNet metadata")
    rc, out, err = cli("model/evaluate.py", "--weights", f, "--data", ph2, "--no-progress", "--allow-foreign")
    assert rc == 0 and "note: " in err and "assuming RGB resized to 256x256" in err
    assert json.loads(out)["dsc"] > 0.94  # it is the shipped model after all


@pytest.mark.slow
def test_cli_on_checkpoint_without_config_exits_with_one_line(tmp_path, shipped, ph2):
    ck = {k: v for k, v in load_checkpoint(shipped).items() if k != "config"}
    torch.save(ck, tmp_path / "noconfig.pt")
    rc, _, err = cli("model/evaluate.py", "--weights", tmp_path / "noconfig.pt", "--data", ph2, "--no-progress")
    assert_one_line_error(rc, err, r"noconfig\.pt: checkpoint lacks 'config'")


@pytest.mark.slow
def test_evaluate_bad_arguments(tmp_path, ph2):
    from model.evaluate import main as evaluate_main

    with pytest.raises(SystemExit, match=r"--threads must be at least 0 \(got -1\)"):
        evaluate_main(["--threads", "-1", "--data", str(ph2)])
    with pytest.raises(SystemExit, match=r"no 'test' split \(have train, val\); add it to split\.json"):
        evaluate_main(["--split", "test", "--data", str(ph2), "--no-progress"])
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SystemExit, match=r"m\.json: cannot (create its folder|write it)"):
        evaluate_main(["--data", str(ph2), "--no-progress", "--json", str(blocker / "m.json")])


# ------------------------------------------------------------------ mask post-processing before scoring

@pytest.fixture(scope="module")
def two_lesion_data(tmp_path_factory):
    """Four photos of two dark discs each (the larger with a light centre), masks = the larger disc filled:
    largest-component and fill-holes both change the PH2 model's masks on them."""
    from tests.conftest import save_png

    root = tmp_path_factory.mktemp("two_lesions")
    yy, xx = np.mgrid[0:120, 0:160]
    for i, (cy, cx) in enumerate([(60, 50), (55, 60), (65, 45), (60, 55)]):
        big = (yy - cy) ** 2 + (xx - cx) ** 2 < 35 ** 2
        img = np.full((120, 160, 3), 200, np.uint8)
        img[big | ((yy - 30) ** 2 + (xx - 130) ** 2 < (10 + i) ** 2)] = 60
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < 10 ** 2] = 200
        save_png(root / "images" / f"p{i}.png", img)
        save_png(root / "masks" / f"p{i}_segmentation.png", (big * 255).astype(np.uint8))
    return root


def _with_steps(path, steps):
    import onnx

    m = onnx.load(str(REPO / "exports" / "aulunet_v3_ph2.onnx"))
    meta = json.loads(m.metadata_props[0].value)
    meta["postprocess"] = steps
    m.metadata_props[0].value = json.dumps(meta)
    onnx.save(m, str(path))
    return path


def test_evaluate_samples_applies_postprocess_to_each_mask_at_the_grid(two_lesion_data):
    from core import postprocess as pp
    from core.metrics import PooledMetrics
    from model.data import load_arrays, open_dataset
    from model.evaluation.pooled import evaluate_samples

    seg = runtimes.load(REPO / "exports" / "aulunet_v3_ph2.onnx", threads=1)
    samples = open_dataset(two_lesion_data).samples
    plain = evaluate_samples(seg, samples, keep_probs=True)
    steps = ("largest-component", "fill-holes")
    got = evaluate_samples(seg, samples, keep_probs=True, postprocess=steps[::-1])
    np.testing.assert_array_equal(got["probs"], plain["probs"])  # the maps are the model's
    _, y = load_arrays(samples, 256)
    pm = PooledMetrics()
    pm.update(np.stack([pp.apply(p > seg.threshold, steps) for p in plain["probs"]]), y)
    want = pm.result()
    assert {k: got[k] for k in want} == want
    assert got["dsc"] > plain["dsc"]  # the stray disc removed and the centre filled: closer to the masks


def test_evaluate_cli_uses_the_files_steps_unless_told(two_lesion_data, tmp_path, capsys):
    f = _with_steps(tmp_path / "steps.onnx", ["fill-holes"])
    common = ["--weights", str(f), "--data", str(two_lesion_data), "--split", "all", "--no-progress"]
    default = evaluate_main(common)
    assert default["postprocess"] == ["fill-holes"]
    off = evaluate_main([*common, "--postprocess", "none"])
    plain = evaluate_main(["--weights", str(REPO / "exports" / "aulunet_v3_ph2.onnx"), *common[2:]])
    assert "postprocess" not in off and "postprocess" not in plain
    assert off["dsc"] == plain["dsc"] and default["dsc"] != plain["dsc"]
    both = evaluate_main([*common, "--postprocess", "largest-component,fill-holes"])
    assert both["postprocess"] == ["largest-component", "fill-holes"] and both["dsc"] != default["dsc"]
    capsys.readouterr()
    rc, _, err = cli("model/evaluate.py", *common, "--postprocess", "fill")
    assert_one_line_error(rc, err, r"^error: --postprocess 'fill': unknown post-processing; choose none, "
                                   r"largest-component, fill-holes or largest-component,fill-holes$")
