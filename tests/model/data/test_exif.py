"""EXIF orientation (issue 18): images and masks are read as every viewer shows them (PIL's
ImageOps.exif_transpose), by the file loader (model/data/) and by predict() on a PIL image alike. The
browser's decoding is checked in tests/web_demo/test_exif.py, the Android app's in tests/android_demo/test_app.py."""
import warnings

import numpy as np
import pytest
from PIL import Image, ImageOps

import runtimes
from model.data import EXIF_ORIENTATION, ORIENTATIONS, DataError, Sample, load_arrays, load_mask, load_rgb, load_sample
from tests.conftest import REPO, lesion_pair

# What each orientation does to the stored pixels (EXIF 2.32, table "Orientation"), written independently of
# PIL: the photo as displayed.
SHOWN = {1: lambda a: a, 2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
         5: lambda a: a.swapaxes(0, 1), 6: lambda a: np.rot90(a, -1), 7: lambda a: np.rot90(a, 2).swapaxes(0, 1),
         8: lambda a: np.rot90(a, 1)}
# The stored pixels that each orientation shows as `a` (the inverse turn).
STORED = {1: SHOWN[1], 2: SHOWN[2], 3: SHOWN[3], 4: SHOWN[4], 5: SHOWN[5], 6: SHOWN[8], 7: SHOWN[7], 8: SHOWN[6]}


def save_tagged(path, arr, orientation):
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(arr)).save(path, exif=exif)
    return path


@pytest.mark.parametrize("orientation", sorted(ORIENTATIONS))
def test_image_is_read_as_displayed(tmp_path, orientation):
    img, mask = lesion_pair(np.random.default_rng(orientation), 40, 56)
    stored = np.ascontiguousarray(STORED[orientation](img))
    f = save_tagged(tmp_path / "photo.png", stored, orientation)
    assert Image.open(f).getexif()[EXIF_ORIENTATION] == orientation
    np.testing.assert_array_equal(load_rgb(f), SHOWN[orientation](stored))
    np.testing.assert_array_equal(load_rgb(f), img)
    np.testing.assert_array_equal(load_rgb(f), np.asarray(ImageOps.exif_transpose(Image.open(f))))  # what PIL documents
    # a mask carrying its own tag is turned by it, like its image
    m = save_tagged(tmp_path / "mask.png", STORED[orientation](mask), orientation)
    np.testing.assert_array_equal(load_mask(m, img.shape[:2]), mask > 0)


def test_predict_on_a_tagged_photo_equals_the_untagged_photo(tmp_path, ph2):
    """The issue's case: a phone-style JPEG whose pixels are stored turned and whose tag turns them back was
    segmented as stored (Dice 0.565 against 0.836). Now the file, the PIL image and the untagged photo agree."""
    from model.data import open_dataset

    sample = open_dataset(ph2).subset("val")[0]
    photo = load_rgb(sample.image)
    f = save_tagged(tmp_path / "phone.png", np.rot90(photo, 1), 6)  # stored turned left; tag 6: turn right to view
    seg = runtimes.load(REPO / "exports" / "aulunet_v3_ph2.onnx", threads=1)
    want_prob, want = seg.predict(photo)
    np.testing.assert_array_equal(load_rgb(f), photo)
    for image in (Image.open(f), load_rgb(f)):
        prob, got = seg.predict(image)
        assert got.shape == photo.shape[:2]
        np.testing.assert_array_equal(prob, want_prob)  # the same pixels through the same kernels
        np.testing.assert_array_equal(got, want)


def test_untagged_mask_drawn_on_the_stored_pixels_follows_its_image(tmp_path):
    """A non-square photo tagged 6 whose mask (no tag) was made from the stored pixels, as any tool that
    ignores EXIF makes it: the sizes used to disagree ('mask is 40x56 but its image is 56x40'); now the
    mask is turned with its image."""
    img, mask = lesion_pair(np.random.default_rng(0), 40, 56)
    photo = save_tagged(tmp_path / "images" / "a.png", STORED[6](img), 6)
    drawn = tmp_path / "masks" / "a_segmentation.png"
    drawn.parent.mkdir()
    Image.fromarray(np.ascontiguousarray(STORED[6](mask))).save(drawn)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the size tells which way the mask was drawn: no warning
        rgb, m = load_sample(Sample("a", photo, drawn))
    np.testing.assert_array_equal(rgb, img)
    np.testing.assert_array_equal(m, mask > 0)
    x, y = load_arrays([Sample("a", photo, drawn)], 32)
    assert y.sum() > 0
    # the same mask saved as displayed (drawn on the turned photo) is used as it is
    Image.fromarray(mask).save(drawn)
    np.testing.assert_array_equal(load_sample(Sample("a", photo, drawn))[1], mask > 0)


def test_square_untagged_mask_is_assumed_drawn_on_the_stored_pixels_and_says_so(tmp_path):
    img, mask = lesion_pair(np.random.default_rng(1), 48, 48)
    mask[:5, :] = 255  # not symmetric, so a wrong turn would show
    photo = save_tagged(tmp_path / "b.png", STORED[3](img), 3)
    drawn = tmp_path / "b_mask.png"
    Image.fromarray(np.ascontiguousarray(STORED[3](mask))).save(drawn)
    with pytest.warns(UserWarning, match=r"b_mask\.png: no EXIF orientation, but its image has orientation 3 "
                                         r"\(rotated 180\); the mask is taken as drawn on the stored pixels"):
        _, m = load_sample(Sample("b", photo, drawn))
    np.testing.assert_array_equal(m, mask > 0)


def test_turned_mask_says_orientation_is_the_reason(tmp_path):
    """A mask whose own tag turns it away from its image: the message names the orientation, not only sizes."""
    img, mask = lesion_pair(np.random.default_rng(2), 40, 56)
    photo = tmp_path / "c.png"
    Image.fromarray(img).save(photo)
    m = save_tagged(tmp_path / "c_mask.png", mask, 8)
    with pytest.raises(DataError, match=r"c_mask\.png: mask is 40x56 but its image is 56x40 as displayed: the mask is "
                                        r"turned 90 degrees from its image \(EXIF orientation: image 1 \(as stored\), "
                                        r"mask 8 \(rotated 90 counter-clockwise\)\); save the mask the same way up"):
        load_sample(Sample("c", photo, m))


def test_turned_mask_without_its_images_orientation_says_it_was_not_checked(tmp_path):
    """load_mask(path, shape) alone (without load_sample's image orientation) does not claim the image has none."""
    img, mask = lesion_pair(np.random.default_rng(3), 40, 56)
    m = tmp_path / "d_mask.png"
    Image.fromarray(np.ascontiguousarray(mask.T)).save(m)
    with pytest.raises(DataError, match=r"d_mask\.png: mask is 40x56 but its image is 56x40 as displayed: the mask is turned "
                                        r"90 degrees from its image \(EXIF orientation: image not checked, mask 1 \(as stored\)\)"):
        load_mask(m, img.shape[:2])
