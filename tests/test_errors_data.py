"""Bad or unusual data (issue 11): the right answer or a one-line error naming the file and the fix."""
import json

import numpy as np
import pytest
from PIL import Image

from model.data import DataError, load_arrays, load_mask, load_rgb, open_dataset
from core.preprocess import MIN_CONTRAST, MIN_IMAGE_SIDE
from tests.conftest import lesion_pair, save_png
from tests.test_data import make_generic


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
