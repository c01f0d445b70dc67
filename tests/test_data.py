import json
import warnings

import numpy as np
import pytest

from model.data import DataError, deterministic_split, detect_layout, load_arrays, load_mask, load_rgb, open_dataset
from tests.conftest import lesion_pair, save_png


def make_generic(root, ids=("a1", "b2", "c3", "d4", "e5"), suffix="_segmentation", ext=".png"):
    rng = np.random.default_rng(0)
    for i in ids:
        img, mask = lesion_pair(rng)
        save_png(root / "images" / f"{i}{ext}", img)
        save_png(root / "masks" / f"{i}{suffix}.png", mask)
    return root


def test_generic_layout_all_mask_suffixes(tmp_path):
    rng = np.random.default_rng(0)
    for i, suffix in enumerate(["", "_segmentation", "_lesion", "_mask"]):
        img, mask = lesion_pair(rng)
        save_png(tmp_path / "images" / f"x{i}.png", img)
        save_png(tmp_path / "masks" / f"x{i}{suffix}.png", mask)
    from PIL import Image
    img, mask = lesion_pair(rng)
    Image.fromarray(img).save(tmp_path / "images" / "x9.jpg")
    Image.fromarray(mask).save(tmp_path / "masks" / "x9.bmp")
    ds = open_dataset(tmp_path)
    assert ds.layout == "generic"
    assert [s.id for s in ds.samples] == ["x0", "x1", "x2", "x3", "x9"]
    assert all(s.mask is not None for s in ds.samples)
    x, y = load_arrays(ds.samples, 64)
    assert x.shape == (5, 3, 64, 64) and y.shape == (5, 64, 64) and y.max() == 1


def isic_tree(root, year):
    rng = np.random.default_rng(1)
    if year == 2018:
        dirs = {"train": ("ISIC2018_Task1-2_Training_Input", "ISIC2018_Task1_Training_GroundTruth"),
                "val": ("ISIC2018_Task1-2_Validation_Input", "ISIC2018_Task1_Validation_GroundTruth"),
                "test": ("ISIC2018_Task1-2_Test_Input", "ISIC2018_Task1_Test_GroundTruth")}
    else:
        dirs = {"train": ("ISIC-2017_Training_Data", "ISIC-2017_Training_Part1_GroundTruth"),
                "val": ("ISIC-2017_Validation_Data", "ISIC-2017_Validation_Part1_GroundTruth"),
                "test": ("ISIC-2017_Test_v2_Data", "ISIC-2017_Test_v2_Part1_GroundTruth")}
    n = 0
    from PIL import Image
    for split, (inp, gt) in dirs.items():
        for _ in range(2 if split == "train" else 1):
            img, mask = lesion_pair(rng)
            sid = f"ISIC_{n:07d}"
            (root / inp).mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(root / inp / f"{sid}.jpg")
            if year == 2017:  # the 2017 archives also hold superpixel maps beside the images
                save_png(root / inp / f"{sid}_superpixels.png", img)
            save_png(root / gt / f"{sid}_segmentation.png", mask)
            n += 1
    return root


@pytest.mark.parametrize("year", [2017, 2018])
def test_isic_official_layout(tmp_path, year):
    ds = open_dataset(isic_tree(tmp_path, year))
    assert ds.layout == "isic" and ds.split_source == "official ISIC folders"
    assert {k: len(v) for k, v in ds.splits.items()} == {"train": 2, "val": 1, "test": 1}
    assert not any("superpixels" in s.id for s in ds.samples)
    x, y = load_arrays(ds.subset("test"), 32)
    assert y.sum() > 0


def test_ph2_as_distributed(tmp_path):
    from PIL import Image
    rng = np.random.default_rng(2)
    base = tmp_path / "PH2 Dataset images"
    for i in (3, 7, 12):
        c = f"IMD{i:03d}"
        img, mask = lesion_pair(rng)
        (base / c / f"{c}_Dermoscopic_Image").mkdir(parents=True)
        (base / c / f"{c}_lesion").mkdir(parents=True)
        Image.fromarray(img).save(base / c / f"{c}_Dermoscopic_Image" / f"{c}.bmp")
        Image.fromarray(mask).save(base / c / f"{c}_lesion" / f"{c}_lesion.bmp")
    ds = open_dataset(tmp_path)
    assert ds.layout == "ph2" and [s.id for s in ds.samples] == ["IMD003", "IMD007", "IMD012"]
    assert load_arrays(ds.samples, 32)[1].sum() > 0


def test_split_json_is_used(tmp_path):
    make_generic(tmp_path)
    (tmp_path / "split.json").write_text(json.dumps({"train": ["a1", "b2", "c3"], "val": ["d4", "e5"]}))
    ds = open_dataset(tmp_path)
    assert ds.split_source == "split.json"
    assert [s.id for s in ds.subset("val")] == ["d4", "e5"]
    with pytest.raises(DataError, match="no 'test' split"):
        ds.subset("test")
    (tmp_path / "split.json").write_text(json.dumps({"train": ["a1", "zz9"], "val": []}))
    with pytest.raises(DataError, match="split.json: lists id 'zz9'"):
        open_dataset(tmp_path)


def test_deterministic_split_ignores_listing_order():
    ids = [f"im{i:03d}" for i in range(50)]
    a = deterministic_split(ids, seed=3)
    b = deterministic_split(list(reversed(ids)), seed=3)
    assert a == b and len(a["val"]) == 10 and not set(a["val"]) & set(a["train"])
    assert deterministic_split(ids, seed=4) != a


def test_real_ph2_split(ph2):
    ds = open_dataset(ph2)
    assert len(ds.samples) == 150 and ds.split_source == "split.json"
    assert len(ds.subset("train")) == 120 and len(ds.subset("val")) == 30
    x, y = load_arrays(ds.subset("val")[:2])
    assert x.shape == (2, 3, 256, 256) and 0.05 < y.mean() < 0.9


# ------------------------------------------------------------------ bad input

def test_missing_mask_names_the_image(tmp_path):
    make_generic(tmp_path)
    (tmp_path / "masks" / "c3_segmentation.png").unlink()
    with pytest.raises(DataError, match=r"c3\.png: no mask found for 'c3'"):
        open_dataset(tmp_path)


def test_size_mismatch(tmp_path):
    make_generic(tmp_path)
    save_png(tmp_path / "masks" / "b2_segmentation.png", np.zeros((10, 10), np.uint8))
    ds = open_dataset(tmp_path)
    with pytest.raises(DataError, match=r"b2_segmentation\.png: mask is 10x10 but its image is 48x40"):
        load_arrays(ds.samples, 32)


def test_corrupt_and_empty_files(tmp_path):
    make_generic(tmp_path)
    (tmp_path / "images" / "a1.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (tmp_path / "images" / "b2.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"a1\.png: cannot decode image"):
        load_rgb(tmp_path / "images" / "a1.png")
    with pytest.raises(DataError, match=r"b2\.png: image file is empty"):
        load_rgb(tmp_path / "images" / "b2.png")
    (tmp_path / "masks" / "c3_segmentation.png").write_bytes(b"nope")
    with pytest.raises(DataError, match=r"c3_segmentation\.png: cannot decode mask"):
        load_mask(tmp_path / "masks" / "c3_segmentation.png")


def test_non_binary_mask(tmp_path):
    p = save_png(tmp_path / "m.png", np.arange(100, dtype=np.uint8).reshape(10, 10))
    with pytest.raises(DataError, match=r"m\.png: mask is not binary"):
        load_mask(p)
    assert load_mask(save_png(tmp_path / "ok.png", np.eye(4, dtype=np.uint8))).sum() == 4  # 0/1 masks are fine


@pytest.mark.parametrize("mode", ["L", "RGBA"])
def test_gray_and_rgba_are_converted_with_a_note(tmp_path, mode):
    from PIL import Image
    p = tmp_path / f"x_{mode}.png"
    ramp = np.tile(np.arange(48, dtype=np.uint8) * 5, (40, 1))  # 48x40 with contrast (tiny or flat images are refused)
    Image.fromarray(ramp if mode == "L" else np.dstack([ramp, ramp, ramp, np.full_like(ramp, 40)]), mode).save(p)
    with pytest.warns(UserWarning, match=f"{mode} image converted to RGB"):
        arr = load_rgb(p)
    assert arr.shape == (40, 48, 3)


def test_empty_unknown_and_missing_folders(tmp_path):
    with pytest.raises(DataError, match="folder is empty"):
        open_dataset(tmp_path)
    (tmp_path / "stuff").mkdir()
    with pytest.raises(DataError, match="unknown layout"):
        detect_layout(tmp_path)
    with pytest.raises(DataError, match="data folder not found"):
        open_dataset(tmp_path / "absent")
    (tmp_path / "images").mkdir()
    with pytest.raises(DataError, match="no images found"):
        open_dataset(tmp_path)
