"""web_demo/bench.py, the browser benchmark, run for real in Chromium at its smallest settings: every file the page
offers (the default model's and the edge model's, whose input is 128x128) is loaded, timed and checked against its
Python runtime. Latency is recorded, never asserted."""
import json

import pytest

from core.paths import EDGE_MODEL, EXPORTS_DIR
from tests.conftest import WEB, WEB_SETUP_HINT
from web_demo import models


@pytest.mark.slow
@pytest.mark.browser
def test_tiny_run_covers_every_offered_file_of_every_input_size(ph2, tmp_path):
    from web_demo import bench
    from web_demo.browser import chromium_path

    chromium_path()  # a one-line error naming the fix when Chromium is missing
    assert (WEB / "node_modules").is_dir(), f"{WEB / 'node_modules'} missing; {WEB_SETUP_HINT}"
    out = tmp_path / "chromium_wasm.json"
    bench.main(["--rounds", "1", "--runs", "20", "--warmup", "0", "--warmup-s", "0", "--threads", "1",
                "--parity-images", "1", "--site", str(tmp_path / "site"), "--out", str(out)])
    res = json.loads(out.read_text())
    rows = {r["file"]: r for r in res["rows"]}
    assert set(rows) == {p.name for p, _, _ in models.offered(EXPORTS_DIR)}
    assert any(f.startswith(EDGE_MODEL) for f in rows)  # the 128x128 model is measured too
    for f, r in rows.items():
        assert r["threads"] == 1 and r["model"]["median_ms"] > 0 and r["python"]["median_ms"] > 0, f
        assert r["parity"]["pass"], (f, r["parity"])
    assert out.with_suffix(".md").read_text().count(" | pass |") == len(rows)
    # LiteRT.js against onnxruntime-web for each model apart, and the page's default chosen among its own model's files
    assert sorted(q["model"] for q in res["ratios"]) == sorted(models.STEMS * 2)  # fp32 and INT8, one thread count
    assert bench.model_of(bench.choose_default(res)["chosen"]["file"]) == models.STEM


def _row(file, medians, ok=True, threads=2):
    return {"file": file, "runtime": "litert.js" if file.endswith(".tflite") else "onnxruntime-web", "threads": threads,
            "model": {"median_ms": sorted(medians)[len(medians) // 2]}, "round_medians_ms": medians,
            "end_to_end": {"median_ms": 1.0}, "parity": {"pass": ok}}


def test_the_default_changes_only_for_a_file_faster_in_every_round():
    from web_demo.bench import choose_default

    shipped = models.default_file().name
    other = next(models.filename(f, q) for f, q in models.OFFERED if models.filename(f, q) != shipped)
    edge = models.filename(*models.DEFAULT, stem=EDGE_MODEL)
    noisy = {"rows": [_row(shipped, [8.0, 15.5, 12.0]), _row(other, [9.7, 12.9, 8.9]), _row(edge, [1.0, 1.0, 1.0])]}
    d = choose_default(noisy)
    assert d["chosen"]["file"] == other  # the edge model is never the page's default, however fast
    assert d["vs_shipped"]["switch"] is False  # slower in round 1: the default stays
    steady = {"rows": [_row(shipped, [12.0, 13.0, 12.5]), _row(other, [9.0, 9.5, 9.2])]}
    assert choose_default(steady)["vs_shipped"]["switch"] is True
    failing = {"rows": [_row(shipped, [12.0, 13.0, 12.5]), _row(other, [9.0, 9.5, 9.2], ok=False)]}
    d = choose_default(failing)
    assert d["chosen"]["file"] == shipped and "vs_shipped" not in d  # a file failing parity is never chosen
