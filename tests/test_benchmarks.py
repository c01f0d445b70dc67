"""benchmarks/: host runs of every format in their real runtimes (tiny settings), the JSON, and bad input."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks import run as bench
from benchmarks import runner
from benchmarks.targets import check_targets

REPO = Path(__file__).resolve().parents[1]
TINY = ["--threads", "1", "--eval-count", "2", "--warmup", "1", "--runs", "3", "--min-seconds", "0", "--no-progress"]


@pytest.fixture(scope="module")
def host_run(ph2, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    res = bench.main(["--device", "host", "--data", str(ph2), "--out", str(out), *TINY])
    return out, res


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
    assert (out / "host.png").stat().st_size > 10_000
    assert not list(out.glob("*.npz")) and not list(out.glob("*.tmp*"))


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


def test_runner_needs_no_torch(tmp_path):
    """The device side: block `import torch` and run the runner on an ONNX and a TFLite file."""
    np.savez_compressed(tmp_path / "eval.npz", x=np.random.default_rng(0).random((1, 3, 256, 256), dtype=np.float32),
                        y=np.zeros((1, 256, 256), bool), ref=np.zeros((1, 256, 256), np.float16))
    code = ("import sys, runpy; sys.modules['torch'] = None; sys.argv = sys.argv[1:]; "
            "runpy.run_path(sys.argv[0], run_name='__main__')")
    for name in ("aulunet_v3_ph2.onnx", "aulunet_v3_ph2_int8.tflite"):
        proc = subprocess.run([sys.executable, "-c", code, str(REPO / "benchmarks" / "runner.py"), "--one",
                               str(REPO / "exports" / name), "--eval", str(tmp_path / "eval.npz"), "--runs", "2",
                               "--warmup", "0", "--min-seconds", "0"], capture_output=True, text=True, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-500:]
        assert json.loads(proc.stdout.splitlines()[-1])["n_runs"] >= 2


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


def test_targets_logic():
    rows = [{"name": "torch", "p50_ms": 40.0}, {"name": "openvino", "p50_ms": 4.0}, {"name": "openvino-int8", "p50_ms": 5.0},
            {"name": "onnx", "p50_ms": 10.0}, {"name": "onnx-int8", "p50_ms": 9.0}, {"name": "tflite", "error": "x"},
            {"name": "tflite", "threads": 2, "p50_ms": 6.0}, {"name": "tflite-int8", "threads": 2, "p50_ms": 5.0},
            {"name": "tflite", "threads": 1, "p50_ms": 9.0}, {"name": "tflite-int8", "threads": 1, "p50_ms": 10.0},
            {"name": "tflite-int8", "threads": 4, "p50_ms": 3.0}]
    t = {x["target"].replace(" p50", ""): x for x in check_targets(rows, wall_seconds=200)}
    assert t["best format <= 1/8 of PyTorch eager (tflite-int8)"]["met"] is True  # 3/40 <= 0.125
    assert t["openvino-int8 <= openvino (1 thread)"]["met"] is False and t["onnx-int8 <= onnx (1 thread)"]["met"] is True
    # per thread count: the int8 win at 2 threads does not hide the loss at 1; 4 threads has no fp32 pair
    assert t["tflite-int8 <= tflite (2 threads)"]["met"] is True and t["tflite-int8 <= tflite (1 thread)"]["met"] is False
    assert not any("4 threads" in k for k in t)
    assert t["benchmark run wall time"]["met"] is False
    # with rounds, ratios are paired per round: one busy round (3rd) does not decide the verdict
    rounds = [{"name": "torch", "threads": 1, "p50_ms": 40.0, "round_p50s_ms": [40.0, 40.0, 40.0]},
              {"name": "onnx", "threads": 1, "p50_ms": 10.0, "round_p50s_ms": [10.0, 10.0, 30.0]},
              {"name": "onnx-int8", "threads": 1, "p50_ms": 11.0, "round_p50s_ms": [9.0, 9.5, 33.0]}]
    t = {x["target"].replace(" p50", ""): x for x in check_targets(rounds)}
    assert t["onnx-int8 <= onnx (1 thread)"]["met"] is True  # per-round 0.90, 0.95, 1.10 -> median 0.95
    assert "median of 3 paired rounds" in t["onnx-int8 <= onnx (1 thread)"]["value"]
    assert t["best format <= 1/8 of PyTorch eager (onnx)"]["value"].startswith("0.250")


def test_profile_ops_onnx_and_openvino(tmp_path, capsys):
    from benchmarks import profile_ops

    files = [REPO / "exports" / "aulunet_v3_ph2.onnx", REPO / "exports" / "aulunet_v3_ph2_int8.xml"]
    res = profile_ops.main([*map(str, files), "--threads", "1", "--runs", "2", "--json", str(tmp_path / "p.json")])
    ort_ops, ov_ops = res["aulunet_v3_ph2.onnx"], res["aulunet_v3_ph2_int8.xml"]
    assert ort_ops["Conv"] > 0 and 0 < ort_ops["@full-res"] < sum(v for k, v in ort_ops.items() if k != "@full-res")
    assert any(k.startswith("Convolution [") and "8" in k.split("[")[1] for k in ov_ops), ov_ops  # int8 kernels
    assert json.loads((tmp_path / "p.json").read_text()).keys() == res.keys()
    out = capsys.readouterr().out
    assert "ONNX Runtime, 1 thread(s)" in out and "OpenVINO, 1 thread(s)" in out and "of which at 256x256" in out
    with pytest.raises(SystemExit, match="not an existing .onnx or .xml file"):
        profile_ops.main([str(tmp_path / "model.tflite")])
