"""benchmarks/robust_recipes.py: a real (tiny) training run scored clean and corrupted on its val split; the
recipe comes from the checkpoint, rows accumulate by run name, the committed copy needs --update-results."""
import json

import pytest

from benchmarks.robust_recipes import main as recipes_main
from model.train import main as train_main
from tests.conftest import REPO


@pytest.fixture(scope="module")
def run(isic2018, tmp_path_factory):
    out = tmp_path_factory.mktemp("recipes") / "tiny_robust"
    train_main(["--data", str(isic2018), "--out", str(out), "--size", "32", "--epochs", "1", "--limit-train", "4",
                "--limit-val", "2", "--batch-size", "2", "--threads", "1", "--no-progress", "--no-compile",
                "--augment", "robust", "--ema", "0.5"])
    return out


@pytest.mark.slow
def test_a_run_is_scored_on_val_with_its_recipe(run, tmp_path):
    committed = REPO / "benchmarks" / "results" / "robust_recipes.json"
    before = committed.read_bytes() if committed.is_file() else None
    doc = recipes_main([str(run), "--count", "2", "--out", str(tmp_path), "--no-progress"])
    row = doc["runs"]["tiny_robust"]
    assert doc["split"] == "val" and row["n_images"] == 2
    assert (row["augment"], row["ema"], row["size"], row["epochs"]) == ("robust", 0.5, 32, 1)
    assert len(row["dsc"]) == 1 + 15 * 3  # clean + every corruption at three severities
    drops = [row["dsc"]["clean"] - v for k, v in row["dsc"].items() if k != "clean"]
    assert row["mean_drop"] == pytest.approx(sum(drops) / len(drops))
    assert json.loads((tmp_path / "robust_recipes.json").read_text())["runs"].keys() == {"tiny_robust"}
    assert "| tiny_robust | aulunet_v3 | 32 | 1 | robust | 0.5 |" in (tmp_path / "robust_recipes.md").read_text()
    assert (committed.read_bytes() if committed.is_file() else None) == before


def test_a_folder_without_best_pt_is_one_line(tmp_path):
    with pytest.raises(SystemExit, match=r"nothing: no best\.pt; pass run folders written by model/train\.py"):
        recipes_main([str(tmp_path / "nothing"), "--out", str(tmp_path / "o")])
