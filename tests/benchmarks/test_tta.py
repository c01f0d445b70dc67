"""benchmarks/tta.py: accuracy with and without flip TTA beside its latency cost, on a few images."""
import json

import pytest

from benchmarks import tta
from tests.conftest import REPO


def test_small_tta_report(ph2, tmp_path, capfd):
    out = tmp_path / "out"
    res = tta.main(["--weights", str(REPO / "exports" / "aulunet_v3_ph2_int8.tflite"), "--data", str(ph2), "--splits", "val",
                    "--count", "4", "--runs", "2", "--out", str(out), "--no-progress"])
    saved = json.loads((out / "tta.json").read_text())
    assert saved == json.loads(json.dumps(res))
    r = saved["splits"]["val"]
    assert r["plain"]["n_images"] == r["tta"]["n_images"] == 4 and 0.5 < r["tta"]["dsc"] <= 1
    assert saved["latency"]["tta_ms"] > 0 and saved["latency"]["plain_ms"] > 0 and saved["latency"]["runs"] == 2
    assert "| val | 4 |" in (out / "tta.md").read_text()
    assert capfd.readouterr().err == ""  # LiteRT's start-up lines (its delegate, ...) only with --verbose


@pytest.mark.parametrize("argv,message", [
    (["--weights", "/nonexistent.onnx"], "--weights /nonexistent.onnx: file not found"),
    (["--update-results", "--out", "x"], "--update-results writes to benchmarks/results/; drop --out"),
])
def test_argument_errors(argv, message):
    with pytest.raises(SystemExit, match=message.replace(".", r"\.")):
        tta.main(argv)
