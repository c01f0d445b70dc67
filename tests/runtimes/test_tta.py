"""Flip test-time augmentation (Segmenter.probabilities_tta, predict(tta=True), evaluate --tta)."""
import numpy as np

import runtimes
from core.preprocess import preprocess_image
from tests.conftest import REPO

ONNX = REPO / "exports" / "aulunet_v3_ph2.onnx"


def test_tta_is_flip_equivariant_and_differs_from_one_run(ph2):
    from model.data import load_rgb, open_dataset

    seg = runtimes.load(ONNX, threads=1)
    x = preprocess_image(load_rgb(open_dataset(ph2).subset("val")[0].image))[None]
    tta, plain = seg.probabilities_tta(x), seg.probabilities(x)
    # flipping the input permutes the four views, so the mean of the same four maps comes back flipped; the order
    # of the float32 sum changes, so equal to a few ulps of a probability (<= 1)
    assert np.abs(seg.probabilities_tta(np.ascontiguousarray(x[..., ::-1])) - tta[..., ::-1]).max() <= 1e-6
    assert np.abs(seg.probabilities_tta(np.ascontiguousarray(x[:, :, ::-1])) - tta[:, ::-1]).max() <= 1e-6
    assert tta.shape == plain.shape and 1e-4 < np.abs(tta - plain).max() < 0.5  # a real average, not a copy


def test_predict_with_tta_keeps_the_photo_size(ph2):
    from model.data import load_rgb, open_dataset

    rgb = load_rgb(open_dataset(ph2).subset("val")[0].image)
    seg = runtimes.load(ONNX, threads=1)
    prob, mask = seg.predict(rgb, tta=True)
    assert prob.shape == mask.shape == rgb.shape[:2] and mask.dtype == bool
    assert (mask == (prob > seg.threshold)).all()
    assert not np.array_equal(prob, seg.predict(rgb)[0])
