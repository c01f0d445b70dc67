import json
import warnings

import numpy as np
import pytest
from PIL import Image

from model.data import DataError, deterministic_split, detect_layout, load_arrays, load_mask, load_rgb, open_dataset
from core.preprocess import MIN_CONTRAST, MIN_IMAGE_SIDE
from tests.conftest import lesion_pair, make_generic, save_png


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
    root = isic_tree(tmp_path, year)
    if year == 2017:  # skipped deliberately, but said
        with pytest.warns(UserWarning, match=r"skipped 4 ISIC superpixel maps \(\*_superpixels\.png, not lesion photos\)"):
            ds = open_dataset(root)
    else:
        ds = open_dataset(root)
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


# ------------------------------------------------------------------ bit depth, size limit, file types (issue 18)

def _grey_versions(tmp_path):
    """An 8-bit RGB photo-like image, its 8-bit grey version, and the same grey as 10-bit values in a 16-bit
    PNG (max 1023, as camera pipelines write them) and as full-range 16-bit (x257)."""
    from PIL import Image
    img, _ = lesion_pair(np.random.default_rng(5), 64, 80)
    grey8 = np.asarray(Image.fromarray(img).convert("L"))
    files = {"8": save_png(tmp_path / "g8.png", grey8)}
    for name, values in [("10", np.rint(grey8 * (1023 / 255))), ("16", grey8.astype(np.float64) * 257)]:
        files[name] = tmp_path / f"g{name}.png"
        Image.fromarray(values.astype(np.uint16)).save(files[name])
        assert Image.open(files[name]).mode == "I;16"
    return grey8, files


def test_sixteen_bit_grey_is_scaled_by_its_bit_depth_not_clipped(tmp_path):
    """10-bit grey in a 16-bit PNG clipped 97% of its pixels to 255 (Dice 0.43 against 0.91), and full-range
    16-bit grey was refused for 'no contrast (255..255)'. Both now read as the 8-bit grey they hold."""
    from core.preprocess import preprocess_image
    grey8, files = _grey_versions(tmp_path)
    with pytest.warns(UserWarning, match=r"g8\.png: L image converted to RGB"):
        want = load_rgb(files["8"])
    np.testing.assert_array_equal(want[..., 0], grey8)
    for bits in ("10", "16"):
        with pytest.warns(UserWarning, match=rf"g{bits}\.png: I;16 grey image \({bits}-bit values\) scaled to 8-bit"):
            got = load_rgb(files[bits])
        np.testing.assert_array_equal(got, want)  # 255/1023 and 1/257 give the 8-bit values back exactly
        np.testing.assert_array_equal(preprocess_image(got), preprocess_image(want))


def test_predict_on_a_sixteen_bit_pil_image(tmp_path):
    from PIL import Image
    import runtimes
    from tests.conftest import REPO
    grey8, files = _grey_versions(tmp_path)
    seg = runtimes.load(REPO / "exports" / "aulunet_v3_ph2.onnx", threads=1)
    want_prob, want = seg.predict(np.repeat(grey8[..., None], 3, axis=2))
    for bits in ("10", "16"):
        im = Image.open(files[bits])
        assert im.mode == "I;16"
        prob, got = seg.predict(im)
        np.testing.assert_array_equal(prob, want_prob)  # the same uint8 pixels through the same kernels
        np.testing.assert_array_equal(got, want)


def test_sixteen_bit_colour_png_with_low_bit_values_says_why(tmp_path):
    """Pillow reads a 48-bit RGB PNG's high bytes only: 10-bit colour values come out as 0..3."""
    import struct
    import zlib
    h, w = 40, 48
    rgb10 = (np.random.default_rng(0).integers(0, 1024, (h, w, 3))).astype(">u2")
    raw = b"".join(b"\x00" + rgb10[y].tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    f = tmp_path / "rgb10.png"
    f.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                  + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    with pytest.raises(DataError, match=r"rgb10\.png: 16-bit colour image whose values use only the low bits \(Pillow "
                                        r"reads the high byte of each 16-bit sample, here 0\.\.3\); save it as 8-bit RGB"):
        load_rgb(f)


def _png_header_only(path, w, h):
    """A PNG that claims w x h pixels (header only: PIL checks the size before decoding anything)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))
    return path


def test_huge_image_is_a_one_line_error_naming_the_limit(tmp_path, monkeypatch):
    """14000x14000 gave PIL's DecompressionBombError traceback; 8000x8000 (under PIL's own limit) was decoded."""
    monkeypatch.delenv("AULUNET_MAX_MEGAPIXELS", raising=False)
    bomb = _png_header_only(tmp_path / "bomb.png", 14000, 14000)
    with pytest.raises(DataError, match=r"bomb\.png: image has 196\.0 megapixels, over the 50-megapixel limit; "
                                        r"downscale it, or raise the limit with AULUNET_MAX_MEGAPIXELS=<megapixels>$"):
        load_rgb(bomb)
    big = _png_header_only(tmp_path / "big.png", 8000, 8000)
    with pytest.raises(DataError, match=r"big\.png: image is 8000x8000 \(64\.0 megapixels\), over the 50-megapixel limit"):
        load_rgb(big)
    with pytest.raises(DataError, match=r"big\.png: mask is 8000x8000 \(64\.0 megapixels\), over the 50-megapixel"):
        load_mask(big)
    monkeypatch.setenv("AULUNET_MAX_MEGAPIXELS", "0.001")  # the limit is configurable: 1,000 pixels
    ok = save_png(tmp_path / "ok.png", lesion_pair(np.random.default_rng(0))[0])
    with pytest.raises(DataError, match=r"ok\.png: image is 48x40 \(0\.0 megapixels\), over the 0\.001-megapixel limit"):
        load_rgb(ok)
    monkeypatch.setenv("AULUNET_MAX_MEGAPIXELS", "lots")
    with pytest.raises(DataError, match=r"AULUNET_MAX_MEGAPIXELS=lots: not a positive number of megapixels"):
        load_rgb(ok)
    monkeypatch.setenv("AULUNET_MAX_MEGAPIXELS", "100")
    assert load_rgb(ok).shape == (40, 48, 3)


def test_webp_and_tif_are_read_and_skipped_files_are_counted(tmp_path):
    from PIL import Image
    make_generic(tmp_path, ids=("a1", "b2", "c3"))
    rng = np.random.default_rng(9)
    for i, ext in [("w4", ".webp"), ("t5", ".tif"), ("t6", ".TIFF")]:
        img, mask = lesion_pair(rng)
        Image.fromarray(img).save(tmp_path / "images" / f"{i}{ext}", **({"lossless": True} if ext == ".webp" else {}))
        save_png(tmp_path / "masks" / f"{i}_segmentation.png", mask)
    save_png(tmp_path / "images" / "a1_superpixels.png", np.zeros((40, 48, 3), np.uint8))
    (tmp_path / "images" / "LICENSE.txt").write_text("CC-BY-NC")
    (tmp_path / "images" / ".DS_Store").write_bytes(b"\0")
    with pytest.warns(UserWarning, match=r": skipped 1 ISIC superpixel maps \(\*_superpixels\.png, not lesion photos\), "
                                         r"1 not images \(\.txt\) in its image folders$"):
        ds = open_dataset(tmp_path)
    assert [s.id for s in ds.samples] == ["a1", "b2", "c3", "t5", "t6", "w4"]
    assert ds.skipped == {"ISIC superpixel maps (*_superpixels.png, not lesion photos)": 1, "not images (.txt)": 1}
    x, y = load_arrays(ds.samples, 32)
    assert y[3:].sum() > 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing skipped: no warning
        assert open_dataset(make_generic(tmp_path / "plain")).skipped == {}


@pytest.mark.parametrize("year", [2017, 2018])
def test_isic_layout_uses_its_split_json(tmp_path, year):
    """A split.json beside ISIC's official folders was ignored without a word; it is the user's split."""
    root = isic_tree(tmp_path, year)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 2017's superpixel maps: tested above
        ids = sorted(s.id for s in open_dataset(root).samples)
        (root / "split.json").write_text(json.dumps({"train": ids[:3], "val": ids[3:]}))
        ds = open_dataset(root)
    assert ds.split_source == "split.json" and ds.splits == {"train": ids[:3], "val": ids[3:]}
    with pytest.raises(DataError, match=r"no 'test' split \(have train, val\); add it to split\.json"):
        ds.subset("test")


# ------------------------------------------------------------------ bad or unusual data (issue 11): the right answer
# or a one-line error naming the file and the fix


def _disc(h=40, w=48):
    yy, xx = np.mgrid[0:h, 0:w]
    return (yy - h / 2) ** 2 + (xx - w / 2) ** 2 < (min(h, w) / 3) ** 2


# ------------------------------------------------------------------ masks: read by colour, any binary encoding

def test_palette_mask_is_read_by_colour_not_index(tmp_path):
    """Palette index 0 is white (lesion), index 1 black: read by index it would come out inverted."""
    disc = _disc()
    im = Image.fromarray(np.where(disc, 0, 1).astype(np.uint8), mode="P")
    im.putpalette([255, 255, 255, 0, 0, 0] + [0] * 762)
    im.save(tmp_path / "p.png")
    np.testing.assert_array_equal(load_mask(tmp_path / "p.png"), disc)


def test_palette_mask_with_indices_0_and_2_is_binary(tmp_path):
    disc = _disc()
    im = Image.fromarray(np.where(disc, 2, 0).astype(np.uint8), mode="P")
    im.putpalette([0, 0, 0, 10, 10, 10, 255, 255, 255] + [0] * 759)
    im.save(tmp_path / "p2.png")
    np.testing.assert_array_equal(load_mask(tmp_path / "p2.png"), disc)


def test_sixteen_bit_mask_0_65535(tmp_path):
    disc = _disc()
    Image.fromarray((disc * 65535).astype(np.uint16)).save(tmp_path / "m16.png")
    assert Image.open(tmp_path / "m16.png").mode.startswith("I")
    np.testing.assert_array_equal(load_mask(tmp_path / "m16.png"), disc)


def test_colour_and_alpha_masks(tmp_path):
    disc = _disc()
    rgb = np.zeros((*disc.shape, 3), np.uint8)
    rgb[disc] = (255, 0, 0)  # lesion drawn in red
    Image.fromarray(rgb).save(tmp_path / "red.png")
    np.testing.assert_array_equal(load_mask(tmp_path / "red.png"), disc)
    rgba = np.zeros((*disc.shape, 4), np.uint8)
    rgba[..., 3] = disc * 255  # lesion only in the alpha channel
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    np.testing.assert_array_equal(load_mask(tmp_path / "alpha.png"), disc)


def test_masks_that_are_not_binary_say_why(tmp_path):
    two = save_png(tmp_path / "two.png", np.where(_disc(), 200, 100).astype(np.uint8))
    with pytest.raises(DataError, match=r"two\.png: mask is not binary \(values \[100, 200\], none of them 0\); save it with 0 for background"):
        load_mask(two)
    grey = save_png(tmp_path / "grey.png", np.arange(100, dtype=np.uint8).reshape(10, 10))
    with pytest.raises(DataError, match=r"grey\.png: mask is not binary \(100 distinct values"):
        load_mask(grey)


# ------------------------------------------------------------------ split.json

def test_split_json_leak_is_refused(tmp_path):
    make_generic(tmp_path)
    (tmp_path / "split.json").write_text(json.dumps({"train": ["a1", "b2", "c3"], "val": ["c3", "d4"]}))
    with pytest.raises(DataError, match=r"split\.json: id 'c3' is in both 'train' and 'val' \(1 shared\): a leak; put each image in one split only"):
        open_dataset(tmp_path)


@pytest.mark.parametrize("content,message", [
    ({"train": ["a1", "a1", "b2"], "val": ["c3"]}, r"'train' lists id 'a1' more than once"),
    ({"train": ["a1"], "validation": ["c3"]}, r"unknown split 'validation'; name the splits train, val, test"),
    ({"train": "a1", "val": ["c3"]}, r"'train' must be a list of image ids"),
    (["a1", "b2"], r"expected an object like"),
])
def test_split_json_siblings(tmp_path, content, message):
    make_generic(tmp_path)
    (tmp_path / "split.json").write_text(json.dumps(content))
    with pytest.raises(DataError, match=r"split\.json: " + message):
        open_dataset(tmp_path)


def test_split_json_notes_are_ignored(tmp_path):
    make_generic(tmp_path)
    (tmp_path / "split.json").write_text(json.dumps({"seed": 0, "note": "by hand", "train": ["a1", "b2"], "val": ["c3"]}))
    assert [s.id for s in open_dataset(tmp_path).subset("val")] == ["c3"]


def test_empty_split_is_an_error_not_a_perfect_score(tmp_path):
    make_generic(tmp_path)
    (tmp_path / "split.json").write_text(json.dumps({"train": ["a1", "b2"], "val": []}))
    with pytest.raises(DataError, match=r"the 'val' split is empty \(split\.json\); list image ids under 'val'"):
        open_dataset(tmp_path).subset("val")
    tiny = make_generic(tmp_path / "two", ids=("a1", "b2"))  # an 80/20 split of 2 images leaves val empty
    with pytest.raises(DataError, match=r"the 'val' split is empty \(sorted ids, seed 0, 80/20\); add images \(2 found\)"):
        open_dataset(tiny).subset("val")


def test_missing_split_message_names_no_foreign_flag(tmp_path):
    make_generic(tmp_path)
    (tmp_path / "split.json").write_text(json.dumps({"train": ["a1", "b2"]}))
    with pytest.raises(DataError, match=r"no 'val' split \(have train\); add it to split\.json$") as e:
        open_dataset(tmp_path).subset("val")
    assert "--split" not in str(e.value)


# ------------------------------------------------------------------ tiny and contrast-free images

def test_tiny_image_is_refused(tmp_path):
    p = save_png(tmp_path / "dot.png", np.full((1, 1, 3), 90, np.uint8))
    with pytest.raises(DataError, match=r"dot\.png: image is 1x1 pixels, below the 32x32 minimum"):
        load_rgb(p)
    ok = save_png(tmp_path / "ok.png", lesion_pair(np.random.default_rng(0), MIN_IMAGE_SIDE, MIN_IMAGE_SIDE)[0])
    assert load_rgb(ok).shape == (MIN_IMAGE_SIDE, MIN_IMAGE_SIDE, 3)


def test_flat_image_is_refused(tmp_path):
    p = save_png(tmp_path / "flat.png", np.full((64, 64, 3), 137, np.uint8))
    with pytest.raises(DataError, match=r"flat\.png: image has no contrast \(every value within 137\.\.137"):
        load_rgb(p)
    near = np.full((64, 64, 3), 137, np.uint8)
    near[0, 0] = 137 + MIN_CONTRAST - 1  # one JPEG-noise-sized speck is still no contrast
    with pytest.raises(DataError, match="no contrast"):
        load_rgb(save_png(tmp_path / "near.png", near))


def test_tiny_image_in_a_dataset_is_named(tmp_path):
    make_generic(tmp_path)
    save_png(tmp_path / "images" / "b2.png", np.full((8, 8, 3), 50, np.uint8))
    save_png(tmp_path / "masks" / "b2_segmentation.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(DataError, match=r"b2\.png: image is 8x8 pixels"):
        load_arrays(open_dataset(tmp_path).samples, 32)
