"""export/int8_recipes.py: the recipe table, the shipped recipes against the committed exports, a small real run,
and one-line errors. TFLite conversion is the slow part: the one TFLite test reuses the committed fp32 file
(the converter's output, names already short) instead of converting again."""
import inspect
import json
from pathlib import Path
import subprocess
import sys

import pytest

from export import int8_recipes as ir
from core.formats import FORMATS
from export import exporter
from core.safeio import file_sha256
from tests.conftest import REPO

EXPORTS = REPO / "exports"


def test_recipe_table_agrees_with_the_format_table():
    names = [r.name for r in ir.RECIPES]
    assert len(names) == len(set(names))
    int8_formats = {k for k, f in FORMATS.items() if "int8" in f.quantize}
    assert {r.format for r in ir.RECIPES} == int8_formats == set(ir.INT8_FORMATS)
    for key in int8_formats:
        shipped = [r for r in ir.RECIPES if r.format == key and r.shipped]
        assert len(shipped) == 1, key
        # the shipped recipe is the exporter's defaults: export/to_<format>.py --quantize int8 writes exactly it
        assert shipped[0].params == {}, key
    for r in ir.RECIPES:
        assert r.name.startswith(r.format + "-") and r.description
        quantize = exporter(FORMATS[r.format]).quantize_int8
        inspect.signature(quantize).bind(*[None] * (3 if r.format == "onnx" else 2), **r.params)  # every param is accepted
        assert "recipe" in inspect.signature(exporter(FORMATS[r.format]).build).parameters


def test_bad_recipes_and_formats_are_one_line_errors(tmp_path):
    out = ["--out", str(tmp_path)]
    for argv, msg in [(["--formats", "onnx,caffe"], rf"^error: --formats: unknown format 'caffe'; choose from {', '.join(ir.INT8_FORMATS)}$"),
                      (["--formats", ","], r"^error: --formats ',': name at least one of"),
                      (["--recipes", "onnx-nope"], r"^error: --recipes: unknown recipe 'onnx-nope'; --list shows"),
                      (["--recipes", ","], r"^error: --recipes '': name at least one recipe"),
                      (["--formats", "onnx", "--recipes", "tflite-dynamic-range"],
                       r"^error: --recipes: 'tflite-dynamic-range' is a tflite recipe but --formats is onnx$"),
                      (["--eval-count", "-1"], r"^error: --eval-count must be at least 0 \(got -1\)$")]:
        with pytest.raises(SystemExit, match=msg):
            ir.main(argv + out)
    assert not list(tmp_path.iterdir())
    p = subprocess.run([sys.executable, str(REPO / "export" / "int8_recipes.py"), "--recipes", "x"],
                       capture_output=True, text=True, cwd=REPO)
    assert p.returncode == 1 and p.stdout == "" and p.stderr.count("\n") == 1 and p.stderr.startswith("error: ")
    p = subprocess.run([sys.executable, str(REPO / "export" / "int8_recipes.py"), "--list"], capture_output=True, text=True, cwd=REPO)
    assert p.returncode == 0 and len(p.stdout.splitlines()) == len(ir.RECIPES) and p.stdout.count("SHIPPED") == len(ir.INT8_FORMATS)


def test_retime_refuses_a_missing_or_foreign_run_in_one_line(shipped, tmp_path):
    with pytest.raises(SystemExit, match=r"^error: --retime: no earlier run in .* \(int8_recipes_aulunet_v3_ph2.json is "
                                         r"missing\); run without --retime first$"):
        ir.main(["--weights", str(shipped), "--out", str(tmp_path), "--retime"])
    (tmp_path / "int8_recipes_aulunet_v3_ph2.json").write_text("{not json")
    with pytest.raises(SystemExit, match=r"^error: --retime: .* is not a results JSON"):
        ir.main(["--weights", str(shipped), "--out", str(tmp_path), "--retime"])
    (tmp_path / "int8_recipes_aulunet_v3_ph2.json").write_text("{}")
    with pytest.raises(SystemExit, match=r"^error: --retime: .* is not a results JSON .*lacks checkpoint, eval, results"):
        ir.main(["--weights", str(shipped), "--out", str(tmp_path), "--retime"])
    (tmp_path / "int8_recipes_aulunet_v3_ph2.json").write_text(json.dumps({"checkpoint": {"sha256": "0" * 64}, "results": [],
                                                                     "timing": {}, "eval": {}}))
    with pytest.raises(SystemExit, match=r"^error: --retime: .* was measured on another checkpoint than .*aulunet_v3_ph2.pt"):
        ir.main(["--weights", str(shipped), "--out", str(tmp_path), "--retime"])
    with pytest.raises(SystemExit, match=r"^error: --retime needs --timing-rounds of at least 1$"):
        ir.main(["--weights", str(shipped), "--out", str(tmp_path), "--retime", "--timing-rounds", "0"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["int8_recipes_aulunet_v3_ph2.json"]


@pytest.mark.slow
def test_small_run_writes_json_and_markdown(shipped, ph2, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(ir, "EXPORTS_DIR", tmp_path / "committed")  # where --update-results writes
    argv = ["--weights", str(shipped), "--formats", "onnx", "--recipes", "onnx-1x1-and-stem-no-gates,onnx-per-tensor",
            "--eval-count", "3", "--calib-count", "6", "--timing-rounds", "2", "--out", str(tmp_path / "o"), "--no-progress"]
    res = ir.main(argv)
    out, err = capsys.readouterr()
    assert err == ""  # the quantizer's own output is hidden without --verbose
    assert not (tmp_path / "committed").exists()  # committed results only with --update-results
    data = json.loads((tmp_path / "o" / "int8_recipes_aulunet_v3_ph2.json").read_text())
    assert data == json.loads(json.dumps(res))
    assert data["eval"]["n_images"] == 3 and data["calibration"]["n_images"] == 6 and data["calibration"]["split"] == "train"
    assert data["checkpoint"]["sha256"] == file_sha256(shipped)
    rows = {r["recipe"]: r for r in data["results"]}
    assert list(rows) == ["onnx-1x1-and-stem-no-gates", "onnx-per-tensor"] and rows["onnx-1x1-and-stem-no-gates"]["shipped"]
    assert not rows["onnx-per-tensor"]["shipped"]
    for r in rows.values():
        assert 0 <= r["mask_iou_mean"] <= 1 and isinstance(r["passed"], bool) and r["latency_ms"] > 0
        assert r["passed"] == (r["mask_iou_mean"] >= 0.95 and -r["dsc_change_points"] <= 0.5)
        assert (REPO / r["artifact"]).is_file()
    assert data["timing"]["fp32_ms"]["onnx"] > 0
    md = (tmp_path / "o" / "int8_recipes_aulunet_v3_ph2.md").read_text()
    assert md.count("\n| ONNX Runtime |") == 2 and "(shipped)**" in md and md == ir.markdown(data, earlier=True) + "\n"
    assert md in out
    if Path("/proc/stat").is_file():  # Linux: the quiet of the CPU while timing is recorded beside the latencies
        assert data["timing"]["other_load_cores"] >= 0 and " cores busy while timing" in md
    # --retime: the same files timed again, nothing built or scored again
    files = {r["artifact"]: (REPO / r["artifact"]).stat().st_mtime_ns for r in rows.values()}
    again = ir.main(["--weights", str(shipped), "--formats", "onnx", "--timing-rounds", "3", "--out", str(tmp_path / "o"),
                     "--no-progress", "--retime"])
    assert again["timing"]["rounds"] == 3 and again["timing"]["retimed"] and again["timing"]["fp32_ms"]["onnx"] > 0
    for r in again["results"]:
        assert r["latency_ms"] > 0 and r["mask_iou_mean"] == rows[r["recipe"]]["mask_iou_mean"]
        assert (REPO / r["artifact"]).stat().st_mtime_ns == files[r["artifact"]]
    assert json.loads((tmp_path / "o" / "int8_recipes_aulunet_v3_ph2.json").read_text()) == json.loads(json.dumps(again))
    # another format's latency is kept when it was measured on this CPU and dropped when on another one
    saved = tmp_path / "o" / "int8_recipes_aulunet_v3_ph2.json"
    for cpu_model, kept in ((again["cpu"]["model"], True), ("another CPU", False)):
        doc = json.loads(saved.read_text())
        doc["cpu"]["model"] = cpu_model
        doc["timing"]["fp32_ms"]["tflite"] = 10.0
        row = {k: v for k, v in doc["results"][0].items() if k != "artifact"}  # a row whose file is elsewhere
        doc["results"].append({**row, "recipe": "tflite-x", "format": "tflite", "latency_ms": 9.0, "latency_vs_fp32": 0.9})
        saved.write_text(json.dumps(doc))
        res = ir.main(["--weights", str(shipped), "--formats", "onnx", "--timing-rounds", "2", "--out", str(tmp_path / "o"),
                       "--no-progress", "--retime"])
        other = next(r for r in res["results"] if r["recipe"] == "tflite-x")
        assert ("latency_ms" in other) == kept and ("tflite" in res["timing"]["fp32_ms"]) == kept
        assert all(r["latency_ms"] > 0 for r in res["results"] if r["format"] == "onnx")
        doc = json.loads(saved.read_text())
        doc["results"] = [r for r in doc["results"] if r["recipe"] != "tflite-x"]
        doc["timing"]["fp32_ms"].pop("tflite", None)
        saved.write_text(json.dumps(doc))
    ir.main(argv + ["--update-results", "--timing-rounds", "0"])
    assert json.loads((tmp_path / "committed" / "int8_recipes_aulunet_v3_ph2.json").read_text())["timing"]["rounds"] == 0


def test_a_recipe_its_runtime_rejects_is_reported_and_leaves_no_file(shipped, ph2, tmp_path, monkeypatch):
    """The file is built for real; its runtime then refuses it (as a runtime rejecting a converter's output would):
    the row says why, names no artifact, and the file is gone."""
    import runtimes

    def refuse(path, *a, **k):
        raise runtimes.ModelFileError(f"{path}: refused for the test")

    monkeypatch.setattr(runtimes, "load", refuse)
    res = ir.main(["--weights", str(shipped), "--formats", "onnx", "--recipes", "onnx-per-tensor", "--eval-count", "2",
                   "--calib-count", "2", "--timing-rounds", "0", "--out", str(tmp_path / "o"), "--no-progress"])
    row = res["results"][0]
    assert "refused for the test" in row["error"] and "artifact" not in row and "passed" not in row
    assert not list((tmp_path / "o" / shipped.stem).glob("onnx-per-tensor*"))


@pytest.mark.slow
def test_shipped_recipes_reproduce_the_committed_exports(shipped, ph2, tmp_path, monkeypatch):
    from export import to_tflite

    # the committed fp32 .tflite is the converter's output (short names, metadata replaced on finish): reuse it
    monkeypatch.setitem(to_tflite._FP32_CACHE, (file_sha256(shipped), 256), (EXPORTS / "aulunet_v3_ph2.tflite").read_bytes())
    res = ir.main(["--weights", str(shipped), "--recipes", ",".join(r.name for r in ir.RECIPES if r.shipped),
                   "--timing-rounds", "0", "--out", str(tmp_path), "--no-progress"])
    assert len(res["results"]) == len(ir.INT8_FORMATS)
    for r in res["results"]:
        committed = json.loads((EXPORTS / f"aulunet_v3_ph2{FORMATS[r['format']].filename('', 'int8')}.numerics.json").read_text())
        assert r["numbers"]["n_images"] == committed["n_images"] == 30
        assert res["calibration"] == committed["calibration"]
        # same recipe, same data: the same numbers up to the CPU that runs the int8 kernels (the committed ONNX file
        # itself reads 0.990 / -0.05 pt on an AVX-512 VNNI Xeon against its committed 0.983 / -0.13: docs/export.md).
        # INT8 masks of two CPUs differ by up to ~0.4% of pixels (x86 vs ARM: mask IoU 0.988, tests/
        # test_benchmarks_arm.py); the Jaccard distance is a metric, so each image's IoU against fp32 moves by at
        # most 1 - 0.988 = 0.012: abs 0.03. The flips sit on lesion borders, both ways: the pooled DSC moved 0.08 pt
        # between two x86 CPUs; abs 0.5 pt (the gate's own width). Both stay inside the gates (asserted below).
        assert r["mask_iou_mean"] == pytest.approx(committed["mask_iou_mean"], abs=0.03), r["recipe"]
        assert r["dsc_change_points"] == pytest.approx(-committed["dsc_drop_points"], abs=0.5), r["recipe"]
        assert r["passed"] and committed["passed"]
