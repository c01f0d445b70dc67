"""benchmarks/pareto.py: one interleaved run over the default model and the edge variants, ratios and verdicts."""
import json

import pytest

from benchmarks import pareto
from core.paths import WEIGHTS_DIR

REF, EDGE = "aulunet_v3_isic2018", "aulunet_v3_in128_isic2018"


@pytest.mark.slow
def test_small_run_over_two_models_of_different_sizes(isic2018, ph2, tmp_path):
    out = tmp_path / "out"
    committed = sorted(p.name for p in pareto.RESULTS.glob("pareto.*"))
    res = pareto.main(["--models", f"{REF},{EDGE}", "--formats", "torch,onnx", "--threads", "1", "--rounds", "2",
                       "--runs", "3", "--min-seconds", "0", "--warmup", "1", "--eval-count", "2", "--out", str(out),
                       "--no-progress"])
    saved = json.loads((out / "pareto.json").read_text())
    assert saved["schema"] == pareto.SCHEMA and saved["reference"] == REF
    assert {(r["model"], r["format"]) for r in saved["results"]} == {(m, f) for m in (REF, EDGE) for f in ("torch", "onnx")}
    by = {(r["model"], r["format"]): r for r in saved["results"]}
    for r in saved["results"]:
        assert "error" not in r, r
        assert len(r["round_p50s_ms"]) == 2 and r["e2e_image_size"] == [572, 765]  # the PH2 photo, end to end
    assert by[(REF, "onnx")]["ratio_to_reference"] == 1.0
    assert by[(EDGE, "onnx")]["ratio_to_reference"] > 0
    # each model ran on its own eval set: the 128x128 model agrees with its own PyTorch probabilities
    assert by[(EDGE, "onnx")]["mask_iou_vs_torch_fp32"] > 0.99
    rows = {(r["model"], r["split"]): r for r in json.loads((WEIGHTS_DIR / "protocol_results.json").read_text())["rows"]}
    assert saved["models"][EDGE]["accuracy"]["test"]["dsc"] == rows[(EDGE, "test")]["dsc"]
    assert saved["models"][EDGE]["accuracy"]["ph2"]["n_images"] == 150
    assert saved["models"][EDGE]["input_size"] == 128 and saved["models"][REF]["params"] == 28636
    v = saved["verdict"][EDGE]
    assert v["test_dsc_drop_points"] == pytest.approx(100 * (rows[(REF, "test")]["dsc"] - rows[(EDGE, "test")]["dsc"]), abs=1e-3)
    assert v["qualifies"] is False  # only ONNX measured: the other runtimes' ratios are unknown, so it cannot qualify
    assert by[(EDGE, "onnx")]["export_val_dsc"] == pytest.approx(0.9048, abs=5e-4)
    md = (out / "pareto.md").read_text()
    assert f"| {EDGE} | 128 | 28,636 |" in md and (out / "pareto.png").stat().st_size > 1000
    assert res["fastest_within_margin"] in (REF, EDGE)
    assert sorted(p.name for p in pareto.RESULTS.glob("pareto.*")) == committed  # committed results untouched


def _entry(model, fmt, p50):
    return {"model": model, "format": fmt, "threads": 1, "p50_ms": p50, "file": f"{model}.{fmt}"}


def test_verdict_needs_every_runtime_at_or_under_the_ratio():
    models = {REF: {"accuracy": {"test": {"dsc": 0.8990}}}, EDGE: {"accuracy": {"test": {"dsc": 0.8954}}}}
    results = [_entry(REF, f, 4.0) for f in pareto.FP32_RUNTIMES] + [_entry(EDGE, f, 1.6) for f in pareto.FP32_RUNTIMES]
    pareto.ratios(results, REF)
    assert pareto.verdicts(models, results, REF, 0.005, 0.4)[EDGE]["qualifies"] is True
    results[-1]["p50_ms"] = 1.64  # one runtime at 0.41x
    pareto.ratios(results, REF)
    v = pareto.verdicts(models, results, REF, 0.005, 0.4)[EDGE]
    assert v["qualifies"] is False and v["worst_fp32_ratio_1t"] == pytest.approx(0.41)
    models[EDGE]["accuracy"]["test"]["dsc"] = 0.8939  # 0.51 points below
    results[-1]["p50_ms"] = 1.0
    pareto.ratios(results, REF)
    assert pareto.verdicts(models, results, REF, 0.005, 0.4)[EDGE]["within_dsc_margin"] is False
    assert pareto.fastest_within_margin(pareto.verdicts(models, results, REF, 0.005, 0.4)) == REF


@pytest.mark.parametrize("argv,message", [
    (["--models", "v9"], "--models: unknown checkpoint 'v9'"),
    (["--photo", "/nonexistent.jpg"], "--photo /nonexistent.jpg: image not found"),
    (["--update-results", "--out", "x"], "--update-results writes to benchmarks/results/; drop --out"),
    (["--rounds", "0"], "--rounds"),
])
def test_argument_errors_are_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        pareto.main(argv)
    assert e.value.code == 1 or message in str(e.value)
    err = capsys.readouterr().err + str(e.value)
    assert message in err
