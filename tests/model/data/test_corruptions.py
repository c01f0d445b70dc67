"""model/data/corruptions.py: deterministic, seeded corruptions of real photos, and the torch thread scope."""
import numpy as np
import pytest

from model.data.corruptions import CORRUPTIONS, SEVERITIES, corrupt


@pytest.fixture(scope="module")
def photo(isic2018):
    from model.data import load_rgb, open_dataset

    return load_rgb(open_dataset(isic2018).subset("test")[0].image)


def test_every_corruption_is_deterministic_changes_the_image_and_keeps_its_shape(photo):
    for name in CORRUPTIONS:
        diffs = []
        for sev in (1, 2, 3):
            a, b = corrupt(photo, name, sev, seed=7), corrupt(photo, name, sev, seed=7)
            assert a.shape == photo.shape and a.dtype == np.uint8, name
            assert np.array_equal(a, b), f"{name}/{sev} is not deterministic"
            diffs.append(np.abs(a.astype(int) - photo).mean())
        assert diffs[0] > 0, f"{name} at severity 1 leaves the image unchanged"
        # the geometry of drawn artefacts varies by severity; the overall change still grows from 1 to 3
        assert diffs[2] > diffs[0], f"{name}: severity 3 changes less than severity 1 ({diffs})"
    assert set(SEVERITIES) == set(CORRUPTIONS) and all(len(v) == 3 for v in SEVERITIES.values())


def test_seed_changes_the_draws_of_random_corruptions(photo):
    assert not np.array_equal(corrupt(photo, "hair", 2, seed=0), corrupt(photo, "hair", 2, seed=1))
    assert not np.array_equal(corrupt(photo, "gaussian_noise", 1, seed=0), corrupt(photo, "gaussian_noise", 1, seed=1))


def test_bad_arguments_are_refused(photo):
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupt(photo, "fog", 1)
    with pytest.raises(ValueError, match="severity"):
        corrupt(photo, "jpeg", 4)
    with pytest.raises(ValueError, match="uint8 HxWx3"):
        corrupt(photo.astype(np.float32), "jpeg", 1)


def test_torch_threads_sets_and_restores_the_count():
    import torch

    from model.data.corruptions import torch_threads

    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), torch_threads(1):
        raise RuntimeError("inside")
    assert torch.get_num_threads() == before
