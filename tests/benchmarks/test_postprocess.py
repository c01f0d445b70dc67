"""benchmarks/postprocess.py on a few real images: every step combination scored on the same probabilities,
the recommendation made on val only, the committed copy untouched without --update-results."""
import json

import pytest

from benchmarks.postprocess import combos, main as pp_main, score_combos
from tests.conftest import REPO


def test_recommendation_needs_a_real_gain_on_val():
    from benchmarks.postprocess import recommend

    assert recommend({"none": 0.9055, "largest-component": 0.90551, "fill-holes": 0.9}) == "none"  # a hair: noise
    assert recommend({"none": 0.90, "largest-component": 0.902, "fill-holes": 0.901}) == "largest-component"


def test_combinations_and_scores_on_hand_made_masks():
    import numpy as np

    assert [",".join(c) or "none" for c in combos()] == ["none", "largest-component", "fill-holes",
                                                         "largest-component,fill-holes"]
    truth = np.zeros((1, 16, 16), np.uint8)
    truth[0, 2:10, 2:10] = 1
    probs = truth.astype(np.float32) * 0.9
    probs[0, 5, 5] = 0.1       # a hole inside the lesion
    probs[0, 13:15, 13:15] = 0.9  # a speck of false lesion apart from it
    s = score_combos(probs, truth, 0.5)
    assert s["largest-component,fill-holes"] == 1.0  # both faults mended: the mask equals the truth
    assert s["none"] < s["largest-component"] < 1.0 and s["none"] < s["fill-holes"] < 1.0


@pytest.mark.slow
def test_cli_on_a_few_images(shipped, isic2018, ph2, tmp_path):
    committed = REPO / "benchmarks" / "results" / "postprocess.json"
    before = committed.read_bytes() if committed.is_file() else None
    weights = REPO / "model" / "weights" / "aulunet_v3_in128_isic2018.pt"
    res = pp_main(["--models", str(weights), "--data-root", str(isic2018.parent), "--count", "3", "--out", str(tmp_path),
                   "--no-progress"])
    row = res["models"][weights.name]
    assert res["n_images"] == {"val": 3, "test": 3, "ph2": 3}
    for k in ("val", "test", "ph2", "corrupted_test"):
        assert set(row[k]) == {"none", "largest-component", "fill-holes", "largest-component,fill-holes"}
    best = max(row["val"], key=row["val"].get)
    assert row["recommended"] == (best if row["val"][best] >= row["val"]["none"] + 0.001 else "none")
    assert json.loads((tmp_path / "postprocess.json").read_text()) == res
    assert (committed.read_bytes() if committed.is_file() else None) == before


def test_an_isic2017_model_is_refused_on_isic2018(tmp_path):
    weights = REPO / "model" / "weights" / "aulunet_v3_isic2017.pt"
    if not weights.is_file():
        pytest.skip("the ISIC 2017 checkpoint is not in this checkout")
    with pytest.raises(SystemExit, match=r"images \(e\.g\. ISIC_\d+\) are in this model.s training set"):
        pp_main(["--models", str(weights), "--count", "2", "--out", str(tmp_path), "--no-progress"])
