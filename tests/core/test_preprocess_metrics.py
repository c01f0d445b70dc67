import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core.metrics import PooledMetrics, confusion, scores, thresholded_jaccard
from core.preprocess import PREPROCESSING, minmax_scale, preprocess_image, preprocess_mask, resize_bilinear, resize_nearest


@pytest.mark.parametrize("shape,size", [((572, 765), (256, 256)), ((40, 30), (256, 256)), ((256, 256), (256, 256)), ((97, 211), (64, 80))])
def test_bilinear_matches_torch_interpolate(shape, size):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    ref = F.interpolate(torch.from_numpy(img).permute(2, 0, 1)[None].float(), size=size, mode="bilinear",
                        align_corners=False, antialias=False)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(resize_bilinear(img, size), ref, rtol=2e-5, atol=2e-3)  # float32 rounding on 0..255


def test_nearest_matches_torch_nearest_exact():
    rng = np.random.default_rng(1)
    m = rng.integers(0, 2, (123, 77), dtype=np.uint8)
    ref = F.interpolate(torch.from_numpy(m)[None, None].float(), size=(256, 256), mode="nearest-exact")[0, 0].numpy()
    np.testing.assert_array_equal(resize_nearest(m, (256, 256)), ref)


def test_minmax_and_constant_image():
    x = np.array([[2.0, 4.0], [6.0, 10.0]], np.float32)
    np.testing.assert_allclose(minmax_scale(x), [[0, 0.25], [0.5, 1.0]])
    assert not minmax_scale(np.full((3, 3), 7.0)).any()


def test_preprocess_image_and_mask():
    rng = np.random.default_rng(2)
    img = rng.integers(10, 200, (50, 70, 3), dtype=np.uint8)
    x = preprocess_image(img)
    assert x.shape == (3, 256, 256) and x.dtype == np.float32
    assert x.min() == 0.0 and x.max() == pytest.approx(1.0)
    m = preprocess_mask(np.eye(50, 70, dtype=bool) * 255)
    assert m.shape == (256, 256) and set(np.unique(m)) <= {0, 1}
    with pytest.raises(ValueError, match="RGB"):
        preprocess_image(img[..., 0])
    assert PREPROCESSING["input_size"] == [256, 256] and PREPROCESSING["output"]["threshold"] == 0.5


def test_confusion_and_scores_by_hand():
    pred = np.array([[1, 1, 0, 0], [1, 0, 0, 0]], bool)
    gt = np.array([[1, 0, 0, 0], [1, 1, 1, 0]], bool)
    # tp=2 (0,0),(1,0); fp=1 (0,1); fn=2 (1,1),(1,2); tn=3
    np.testing.assert_array_equal(confusion(pred, gt), [3, 1, 2, 2])
    s = scores(confusion(pred, gt))
    assert s["miou"] == pytest.approx(2 / 5)
    assert s["dsc"] == pytest.approx(4 / 7)
    assert s["accuracy"] == pytest.approx(5 / 8)
    assert s["specificity"] == pytest.approx(3 / 4)
    assert s["sensitivity"] == pytest.approx(2 / 4)


def test_pooled_differs_from_per_image_mean():
    pm = PooledMetrics()
    big = np.zeros((1, 10, 10), bool); big[0, :8] = True      # perfect on a large lesion
    small_gt = np.zeros((1, 10, 10), bool); small_gt[0, 0, 0] = True
    pm.update(big, big)
    pm.update(np.zeros((1, 10, 10), bool), small_gt)           # misses a one-pixel lesion
    r = pm.result()
    assert r["n_images"] == 2
    assert r["dsc"] == pytest.approx(160 / 161)
    assert r["mean_image_dsc"] == pytest.approx(0.5)
    assert r["confusion"] == {"tn": 119, "fp": 0, "fn": 1, "tp": 80}


def test_isic_jaccard_figures_by_hand():
    # Three 2x5 images: Jaccard 1/1, 3/4 = 0.75 (kept), 1/2 = 0.5 (below 0.65: counts as 0).
    t = np.zeros((3, 2, 5), bool)
    p = np.zeros((3, 2, 5), bool)
    t[0, 0, 0] = p[0, 0, 0] = True                      # TP 1               -> J = 1
    t[1, 0, :3] = True; p[1, 0, :4] = True              # TP 3, FP 1         -> J = 0.75
    t[2, 1, :2] = True; p[2, 1, 0] = True               # TP 1, FN 1         -> J = 0.5
    pm = PooledMetrics()
    pm.update(p, t)
    r = pm.result()
    assert r["jaccard_mean"] == pytest.approx((1 + 0.75 + 0.5) / 3)
    assert r["thresholded_jaccard"] == pytest.approx((1 + 0.75 + 0) / 3)
    assert r["miou"] == pytest.approx(5 / 7)            # pooled: TP 5, FP 1, FN 1
    assert thresholded_jaccard([0.65, 0.6499]) == pytest.approx(0.65 / 2)  # the bound itself is kept
    empty = PooledMetrics()
    empty.update(np.zeros((1, 4, 4), bool), np.zeros((1, 4, 4), bool))  # nothing to find, nothing found
    assert empty.result()["jaccard_mean"] == 1.0 and empty.result()["thresholded_jaccard"] == 1.0


def test_no_images_is_no_score():
    with pytest.raises(ValueError, match="no images were scored"):
        PooledMetrics().result()


def test_high_depth_to_uint8_rules():
    """Grey images of more than 8 bits: the smallest common depth holding the brightest value (issue 18)."""
    from core.preprocess import high_depth_to_uint8
    assert high_depth_to_uint8(np.array([[0, 1023]], np.uint16))[1] == 10
    assert high_depth_to_uint8(np.array([[0, 4000]], np.uint16))[1] == 12
    assert high_depth_to_uint8(np.array([[0, 65535]], np.uint16))[0].tolist() == [[0, 255]]
    assert high_depth_to_uint8(np.array([[0, 200]], np.int32))[0].tolist() == [[0, 200]]  # 8-bit values in a wide mode
    assert high_depth_to_uint8(np.array([[0.0, 0.5, 1.0]], np.float32))[0].tolist() == [[0, 128, 255]]
    assert high_depth_to_uint8(np.array([[-5, 100]], np.int32))[0].tolist() == [[0, 100]]
