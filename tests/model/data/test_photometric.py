"""model/data/photometric.py: the robust recipe's photometric augmentation draws from the seed's generator
only, leaves an image whose draws apply nothing as it was, and gives what inference preprocessing gives."""
import torch

from model.data.photometric import HEAD, N_PHOTO, STROKE_COLS, apply_photometric, draw_photometric


def _images(n=6, s=32):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(n, 3, s, s, generator=g)
    lo, hi = x.amin((1, 2, 3), keepdim=True), x.amax((1, 2, 3), keepdim=True)
    return (x - lo) / (hi - lo)  # min-max scaled, as the training data is


def test_draws_are_the_generators_and_a_fixed_count():
    a = draw_photometric(torch.Generator().manual_seed(3), 16)
    g = torch.Generator().manual_seed(3)
    b = draw_photometric(g, 16)
    assert a.shape == (16, N_PHOTO) and torch.equal(a, b)
    after = torch.rand(1, generator=g)  # the stream stays aligned whatever was drawn to apply
    g2 = torch.Generator().manual_seed(3)
    torch.rand(16, 16, generator=g2), torch.rand(16, 8, 5, generator=g2), torch.randint(0, 2 ** 24, (16,), generator=g2)
    assert torch.equal(after, torch.rand(1, generator=g2))


def test_identity_draw_changes_nothing():
    x = _images()
    p = torch.zeros(len(x), N_PHOTO)
    p[:, 0:4] = 1.0  # gains 1, gamma 1, no blur, no noise, no vignette, no stroke
    y = apply_photometric(x, p)
    # min-max of an already min-max scaled image: (x - 0) / (1 - 0), exact; x ** 1.0 is exact
    assert torch.equal(y, x)


def test_output_is_min_max_scaled_and_deterministic():
    x = _images(8)
    p = draw_photometric(torch.Generator().manual_seed(5), 8)
    p[:, 5] = 0.05  # noise on every image: each from its own seeded stream
    y1, y2 = apply_photometric(x, p), apply_photometric(x, p)
    assert torch.equal(y1, y2)
    assert torch.allclose(y1.amin((1, 2, 3)), torch.zeros(8)) and torch.allclose(y1.amax((1, 2, 3)), torch.ones(8))
    assert not torch.equal(y1, x)


def test_a_stroke_darkens_only_near_its_line():
    x = torch.ones(1, 3, 64, 64) * 0.8
    x[0, :, 0, 0] = 0.0  # a dark corner keeps the min-max scale fixed
    p = torch.zeros(1, N_PHOTO)
    p[:, 0:4] = 1.0
    p[0, HEAD:HEAD + STROKE_COLS] = torch.tensor([0.1, 0.5, 0.9, 0.5, 16.0, 1.0])  # a horizontal ink stroke, 16 px at 256 = 4 px here
    y = apply_photometric(x, p)
    # min-max maps the skin (0.8) to 1; on the line the purple ink is blended in at alpha 0.7
    assert (y[0, :, 32, 32] < 0.9).all()
    assert torch.allclose(y[0, :, 5, 32], torch.ones(3))  # far from it: the skin, unchanged
