"""benchmarks/run.py: host runs of every format in their real runtimes (tiny settings), the JSON, where results go,
and bad input (issue 11)."""
import hashlib
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from benchmarks import run as bench
from benchmarks import runner
from tests.conftest import REPO, make_generic, save_png

TINY = ["--threads", "1", "--eval-count", "2", "--warmup", "1", "--runs", "3", "--min-seconds", "0", "--no-progress"]

TINY_ONNX = ["--formats", "onnx", "--threads", "1", "--eval-count", "2", "--warmup", "0", "--runs", "2", "--min-seconds", "0",
             "--no-progress"]


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def host_run(ph2, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    res = bench.main(["--device", "host", "--data", str(ph2), "--out", str(out), *TINY])
    return out, res


@pytest.mark.slow
def test_host_run_covers_every_exported_format(host_run):
    out, res = host_run
    expected = {n for n, p in bench.format_names().items() if p.is_file()}
    assert {"torch", "onnx", "onnx-int8", "tflite", "tflite-int8", "openvino", "openvino-int8"} <= expected
    got = {r["name"]: r for r in res["results"]}
    assert set(got) == expected
    for name, r in got.items():
        assert "error" not in r, (name, r.get("error"))
        assert r["n_runs"] >= 3 and 0 < r["min_ms"] <= r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"]
        assert r["accuracy"]["n_images"] == 2 and 0.5 < r["accuracy"]["dsc"] <= 1
        assert r["peak_rss_mb"] > 0 and r["file_bytes"] > 10_000
        assert r["e2e_p50_ms"] > 0 and r["e2e_image_size"] == [572, 765]
        floor = 0.999 if "-" not in name else 0.9  # fp32 files agree with PyTorch; fp16/int8 nearly
        assert r["mask_iou_vs_torch_fp32"] >= floor, name
    assert got["openvino"]["file_bytes"] > (REPO / "exports" / "aulunet_v3_ph2.xml").stat().st_size  # .bin counted


@pytest.mark.slow
def test_outputs_json_markdown_plot(host_run):
    out, res = host_run
    on_disk = json.loads((out / "host.json").read_text())
    assert on_disk["schema"] == runner.SCHEMA and on_disk["profile"] == "host"
    for key in ("machine", "cpu", "cores", "os", "python", "emulated"):
        assert key in on_disk["device"]
    assert "onnxruntime" in on_disk["runtimes"] and on_disk["eval_set"]["n_images"] == 2
    assert on_disk["targets"] and all({"target", "value", "limit", "met"} <= set(t) for t in on_disk["targets"])
    md = (out / "host.md").read_text()
    assert "| tflite-int8 | 1 |" in md and "| target |" in md
    if Path("/proc/stat").is_file():  # Linux: the quiet of the CPU while measuring is recorded beside the latency
        assert on_disk["other_load_cores"] >= 0 and " cores busy" in md.splitlines()[0]
    assert (out / "host.png").stat().st_size > 10_000
    assert not list(out.glob("*.npz")) and not list(out.glob("*.tmp*"))


@pytest.mark.slow
def test_failing_format_is_recorded_and_others_kept(host_run, tmp_path):
    out, _ = host_run
    np.savez_compressed(tmp_path / "eval.npz", x=np.random.default_rng(0).random((1, 3, 256, 256), dtype=np.float32),
                        y=np.zeros((1, 256, 256), bool), ref=np.zeros((1, 256, 256), np.float16))
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    res = runner.run_all([bad, REPO / "exports" / "aulunet_v3_ph2.onnx"], [1], tmp_path / "eval.npz", 0, 2, 0,
                         progress=False)
    first, second = res["results"]
    assert "bad.onnx: ONNX Runtime cannot load it" in first["error"]
    assert "error" not in second and second["n_runs"] >= 2


@pytest.mark.slow
def test_rounds_interleave_and_pool_latencies(tmp_path):
    """--rounds 3: every entry is measured three times in real runtimes; the latencies are pooled, each
    round's p50 is kept, and a later round that fails is recorded without losing the first round."""
    np.savez_compressed(tmp_path / "eval.npz", x=np.random.default_rng(0).random((1, 3, 256, 256), dtype=np.float32),
                        y=np.zeros((1, 256, 256), bool), ref=np.zeros((1, 256, 256), np.float16))
    models = [REPO / "exports" / "aulunet_v3_ph2.onnx", REPO / "exports" / "aulunet_v3_ph2.tflite"]
    res = runner.run_all(models, [1], tmp_path / "eval.npz", 0, 4, 0, progress=False, rounds=3)
    assert res["settings"]["rounds"] == 3
    with pytest.raises(SystemExit, match="--rounds 0: give 1 or more"):  # the device-side runner checks too
        runner.main(["--models", str(models[0]), "--eval", str(tmp_path / "eval.npz"), "--rounds", "0"])
    for r in res["results"]:
        assert "error" not in r, r.get("error")
        assert len(r["round_p50s_ms"]) == 3 and all(v > 0 for v in r["round_p50s_ms"])
        assert r["n_runs"] == len(r["latencies_ms"]) >= 12  # 3 rounds x 4 runs, pooled
        assert r["p50_ms"] == pytest.approx(float(np.percentile(r["latencies_ms"], 50)))
        assert r["round_spread"] == pytest.approx(max(r["round_p50s_ms"]) / min(r["round_p50s_ms"]) - 1)
        assert "accuracy" in r  # measured once, in round 1
    entry = {"p50_ms": 2.0, "latencies_ms": [1.0, 2.0, 3.0]}
    runner.merge_rounds(entry, [{"p50_ms": 4.0, "latencies_ms": [4.0]}, {"error": "RuntimeError: gone"}])
    assert entry["round_p50s_ms"] == [2.0, 4.0] and entry["n_runs"] == 4 and entry["round_spread"] == 1.0
    assert entry["round_errors"] == ["RuntimeError: gone"]
    md = bench.markdown({"device": {"machine": "x", "cores": 2, "os": "o", "python": "3", "cpu": "c"},
                         "results": [{"name": "onnx", "threads": 1, "file_bytes": 2048, "load_ms": 1, "first_inference_ms": 1,
                                      "throughput_ips": 1, "e2e_p50_ms": None, "peak_rss_mb": 1, "accuracy": {"dsc": 1, "miou": 1},
                                      "mask_iou_vs_torch_fp32": 1, **entry}]})
    assert "p50 per round 2.0 / 4.0 ms" in md


def test_bad_input(ph2, tmp_path):
    cases = [
        (["--device", "jetson"], "unknown device 'jetson'"),
        (["--device", "rpi5"], "this machine is not a Raspberry Pi 5"),
        (["--formats", "onnx,coreml"], "unknown format 'coreml'"),
        (["--formats", "onnx", "--exports", str(tmp_path)], "model file for 'onnx' not found"),
        (["--weights", str(tmp_path / "none.pt")], "none.pt: checkpoint not found"),
        (["--data", str(tmp_path / "nodata")], "nodata: eval data not found"),
        (["--threads", "0"], "--threads '0'"),
        (["--rounds", "0"], r"--rounds must be at least 1 \(got 0\)"),
    ]
    for argv, msg in cases:
        with pytest.raises(SystemExit, match=msg):
            bench.main(argv + ["--out", str(tmp_path), "--no-progress"])


# ------------------------------------------------------------------ bad input and where results go (issue 11)

@pytest.mark.parametrize("case,message", [
    ("corrupt", r"a1\.png: cannot decode image"),
    ("empty", r"data: folder is empty"),
    ("weights", r"noise\.pt: not a readable PyTorch checkpoint"),
    ("mask", r"b2_segmentation\.png: mask is 10x10 but its image is 48x40"),
])
def test_bad_data_or_weights_are_one_line(tmp_path, case, message):
    data = tmp_path / "data"
    data.mkdir()
    argv = ["--data", str(data), "--out", str(tmp_path / "out"), "--split", "all", *TINY_ONNX]
    if case != "empty":
        make_generic(data)
    if case == "corrupt":
        (data / "images" / "a1.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    if case == "mask":
        save_png(data / "masks" / "b2_segmentation.png", np.zeros((10, 10), np.uint8))
    if case == "weights":
        (tmp_path / "noise.pt").write_bytes(np.random.default_rng(0).bytes(4096))
        argv += ["--weights", str(tmp_path / "noise.pt")]
    with pytest.raises(SystemExit, match=r"^error: .*" + message):
        bench.main(argv)
    assert not list((tmp_path / "out").glob("*.npz")) if (tmp_path / "out").exists() else True


@pytest.mark.parametrize("argv,message", [
    (["--runs", "0"], r"--runs must be at least 1 \(got 0\)"),
    (["--warmup", "-1"], r"--warmup must be at least 0 \(got -1\)"),
    (["--min-seconds", "-1"], r"--min-seconds must be at least 0 \(got -1\.0\)"),
    (["--eval-count", "-2"], r"--eval-count must be at least 0 \(got -2\)"),
    (["--port", "0"], r"--port must be at least 1 \(got 0\)"),
    (["--port", "70000"], r"--port 70000: give a TCP port"),
    (["--device", "rpi"], r"this machine is not a Raspberry Pi .* or from here with --device rpi --host user@raspberrypi\.local"),
    (["--update-results", "--out", "x"], r"--update-results writes to benchmarks/results/; drop --out"),
    (["--formats", ""], r"^error: --formats '': name at least one format"),
    (["--formats", " , "], r"^error: --formats ' , ': name at least one format"),
    (["--identity", "/nope/key", "--host", "pi@192.0.2.1"], r"^error: --identity /nope/key: file not found"),
    (["--known-hosts", "/nope/kh", "--host", "pi@192.0.2.1"], r"^error: --known-hosts /nope/kh: file not found"),
])
def test_bad_arguments(argv, message):
    with pytest.raises(SystemExit, match=message):
        bench.main(argv + ["--no-progress"])


@pytest.mark.slow
def test_runs_go_to_outputs_and_leave_committed_results_alone(ph2, tmp_path, monkeypatch, capsys):
    committed = {p: _sha(p) for p in (REPO / "benchmarks" / "results").glob("host.*")}
    assert committed, "benchmarks/results/host.* must be committed"
    res = bench.main(["--data", str(ph2), *TINY_ONNX])
    assert (bench.DEFAULT_OUT / "host.json").is_file() and bench.DEFAULT_OUT.relative_to(REPO).parts[0] == "outputs"
    assert {p: _sha(p) for p in committed} == committed
    assert "committed benchmarks/results/ is unchanged" in capsys.readouterr().out
    assert res["results"][0]["name"] == "onnx"
    # --update-results is the one way to replace them (here pointed at a scratch folder)
    monkeypatch.setattr(bench, "RESULTS", tmp_path / "results")
    bench.main(["--data", str(ph2), "--update-results", *TINY_ONNX])
    assert (tmp_path / "results" / "host.json").is_file() and (tmp_path / "results" / "host.md").is_file()
    assert not list((tmp_path / "results").glob("*.npz"))


def test_exports_folder_missing_or_without_exports_is_one_line(ph2, tmp_path):
    """--exports /typo used to benchmark PyTorch alone and say nothing."""
    out = tmp_path / "out"
    with pytest.raises(SystemExit, match=r"^error: --exports \S*typo: folder not found; pass the folder that export/all\.py wrote"):
        bench.main(["--data", str(ph2), "--exports", str(tmp_path / "typo"), "--out", str(out), "--no-progress"])
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no models here\n")
    with pytest.raises(SystemExit, match=r"^error: --exports \S*empty: no exported file of aulunet_v3_\w+\.pt "
                                         r"\(e\.g\. aulunet_v3_\w+\.onnx\); run python export/all\.py .*or pass --formats torch$"):
        bench.main(["--data", str(ph2), "--exports", str(tmp_path / "empty"), "--out", str(out), "--no-progress"])
    assert not out.exists()


CORES = os.cpu_count() or 1


TOO_MANY = str(CORES + 1)


THREADS_MSG = rf"^error: --threads {TOO_MANY}: this machine has {CORES} cores?; give 1\.\.{CORES}$"


def test_too_many_threads_are_refused_by_every_benchmark(tmp_path):
    """--threads 1000 was accepted (35.6 s for what takes 2.6 s): refused before anything runs."""
    from benchmarks import profile_ops, runner, train_speed

    with pytest.raises(SystemExit, match=THREADS_MSG):
        bench.main(["--threads", f"1,{TOO_MANY}", "--out", str(tmp_path / "out"), "--no-progress"])
    with pytest.raises(SystemExit, match=THREADS_MSG):
        runner.main(["--models", str(REPO / "exports" / "aulunet_v3_ph2.onnx"), "--eval", str(tmp_path / "e.npz"),
                     "--threads", TOO_MANY])
    with pytest.raises(SystemExit, match=THREADS_MSG):
        profile_ops.main(["--threads", TOO_MANY])
    with pytest.raises(SystemExit, match=THREADS_MSG):
        train_speed.main(["--threads", TOO_MANY, "--json", str(tmp_path / "speed.json")])
    with pytest.raises(SystemExit, match=r"^error: --threads must be at least 0 \(got -2\)$"):
        train_speed.main(["--threads", "-2"])
    assert not (tmp_path / "out").exists() and not (tmp_path / "speed.json").exists()


@pytest.mark.parametrize("tool,argv", [
    ("run", ["--json", "benchmarks/results/host.json"]),
    ("run", ["--markdown", "benchmarks/results/host.md"]),
    ("run", ["--plot", "benchmarks/results/host.png"]),
    ("runner", ["--models", "exports/aulunet_v3_ph2.onnx", "--eval", "e.npz", "--json", "benchmarks/results/host.json"]),
    ("profile_ops", ["--json", "benchmarks/results/profile_ops_host.json"]),
    ("train_speed", ["--json", "benchmarks/results/train_speed_cpu.json"]),
])
def test_committed_results_only_with_update_results(tool, argv, monkeypatch):
    """Every benchmark refuses, before measuring anything, to write into benchmarks/results/ without --update-results."""
    import importlib

    monkeypatch.chdir(REPO)
    committed = {p: _sha(p) for p in (REPO / "benchmarks" / "results").iterdir()}
    target = argv[-1]
    with pytest.raises(SystemExit, match=rf"^error: {re.escape(target)}: is a committed result; pass --update-results"):
        importlib.import_module(f"benchmarks.{tool}").main(argv + (["--no-progress"] if tool != "profile_ops" else []))
    assert {p: _sha(p) for p in (REPO / "benchmarks" / "results").iterdir()} == committed
