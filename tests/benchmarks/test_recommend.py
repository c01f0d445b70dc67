"""benchmarks/recommend.py: the file to deploy is the fastest one that passes its accuracy gate; INT8 advice in words."""
from benchmarks.recommend import int8_verdicts, markdown, recommend


def _r(name, threads, p50, dsc, rounds=None):
    return {"name": name, "file": f"m.{name}", "threads": threads, "p50_ms": p50, "accuracy": {"dsc": dsc},
            **({"round_p50s_ms": rounds} if rounds else {})}


def test_fastest_passing_file_wins_and_a_faster_failing_one_is_skipped():
    results = [_r("torch", 1, 20.0, 0.9000), _r("onnx", 1, 4.0, 0.9000), _r("onnx-int8", 1, 2.0, 0.8949),
               _r("tflite", 2, 3.0, 0.8951), {"name": "ncnn", "threads": 1, "error": "ncnn is not installed"}]
    rec = recommend(results, {"reference_dsc": 0.9000})
    assert rec["file"] == "m.tflite" and rec["threads"] == 2 and rec["p50_ms"] == 3.0  # int8 lost 0.51 points
    assert rec["sentence"].startswith("Deploy m.tflite (tflite): p50 3.00 ms at 2 threads, DSC 0.8951 (PyTorch 0.9000")
    results[2]["accuracy"]["dsc"] = 0.8951
    assert recommend(results, {"reference_dsc": 0.9000})["file"] == "m.onnx-int8"
    # without the eval set's reference, the torch entry's DSC is the gate; without either, no recommendation
    assert recommend(results)["reference_dsc"] == 0.9000
    assert recommend(results[1:])["file"] is None and "no PyTorch reference DSC" in recommend(results[1:])["sentence"]


def test_int8_advice_compares_at_the_same_thread_count_paired_per_round():
    results = [_r("openvino", 1, 4.0, 0.9, [4.0, 4.4]), _r("openvino-int8", 1, 4.2, 0.9, [3.6, 4.3]),
               _r("tflite", 1, 3.0, 0.9), _r("tflite-int8", 1, 3.3, 0.9), _r("tflite-int8", 2, 1.0, 0.9)]
    v = {x["runtime"]: x for x in int8_verdicts(results)}
    # paired rounds: median(3.6/4.0, 4.3/4.4) = 0.94 although the pooled p50s say 1.05
    assert v["openvino"]["int8_faster"] and v["openvino"]["advice"] == "openvino: INT8 is 0.94x fp32 at 1 thread: use INT8"
    # the 2-thread INT8 entry has no fp32 partner at 2 threads: not compared
    assert list(v["tflite"]["int8_over_fp32"]) == [1] and abs(v["tflite"]["int8_over_fp32"][1] - 1.1) < 1e-12
    assert v["tflite"]["advice"] == "tflite: INT8 is not faster here (1.10x fp32 at best, 1 thread): use fp32"
    assert "- tflite: INT8 is not faster here" in markdown(recommend(results, {"reference_dsc": 0.9}))
