"""The corruption benchmark's CLI end to end on a few real images (the corruptions: tests/model/data/test_corruptions.py)."""
import json
import subprocess
import sys

import pytest

from tests.conftest import REPO


def _run(*args):
    return subprocess.run([sys.executable, "benchmarks/robustness.py", "--no-progress", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_cli_scores_checkpoint_and_export_on_a_few_corrupted_images(isic2018, tmp_path):
    pt = REPO / "model" / "weights" / "aulunet_v3_isic2018.pt"
    onnx = REPO / "exports" / "aulunet_v3_isic2018.onnx"
    r = _run("--models", f"{pt},{onnx}", "--data", str(isic2018), "--count", "4", "--corruptions", "jpeg,hair",
             "--severities", "1,3", "--threads", "1", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "robustness.json").read_text())
    assert res["n_images"] == 4 and set(res["models"]) == {"PyTorch", "ONNX Runtime fp32"}
    for m in res["models"].values():
        assert set(m["dsc"]) == {"clean", "jpeg/1", "jpeg/3", "hair/1", "hair/3"}
        assert all(0.0 <= v <= 1.0 for v in m["dsc"].values())
    # the same weights in two runtimes: thresholded masks agree up to pixels whose logit is within float32
    # rounding (~1e-5) of 0, a few in 4 x 65,536 -- far below 0.5 DSC points
    a, b = res["models"]["PyTorch"]["dsc"], res["models"]["ONNX Runtime fp32"]["dsc"]
    assert max(abs(a[k] - b[k]) for k in a) < 0.005
    assert (tmp_path / "robustness.png").stat().st_size > 0 and "| PyTorch |" in (tmp_path / "robustness.md").read_text()


def test_keep_others_measures_one_file_and_keeps_the_other_rows(isic2018, tmp_path):
    """--keep-others replaces the rows of the files named and keeps the rest, in their order; the INT8 gap is computed
    again over the merged rows; a run on other images, or over a file changed since, is refused before measuring."""
    import shutil

    onnx, int8 = tmp_path / "m.onnx", tmp_path / "m_int8.onnx"
    shutil.copy(REPO / "exports" / "aulunet_v3_isic2018.onnx", onnx)
    shutil.copy(REPO / "exports" / "aulunet_v3_isic2018_int8.onnx", int8)
    pt = REPO / "model" / "weights" / "aulunet_v3_isic2018.pt"
    common = ["--data", str(isic2018), "--count", "2", "--corruptions", "jpeg", "--severities", "2", "--threads", "1",
              "--out", str(tmp_path / "r")]
    assert _run("--models", f"{pt},{onnx}", *common).returncode == 0
    first = json.loads((tmp_path / "r" / "robustness.json").read_text())
    r = _run("--models", str(int8), "--keep-others", *common)
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "r" / "robustness.json").read_text())
    assert list(res["models"]) == ["PyTorch", "ONNX Runtime fp32", "ONNX Runtime INT8"]
    assert res["kept_from_earlier_run"] == ["PyTorch", "ONNX Runtime fp32"]
    assert res["models"]["PyTorch"] == first["models"]["PyTorch"]
    gap = res["int8_vs_fp32"]["ONNX Runtime INT8"]["points"]["jpeg"]
    assert gap == pytest.approx(100 * (res["models"]["ONNX Runtime INT8"]["dsc"]["jpeg/2"]
                                       - res["models"]["ONNX Runtime fp32"]["dsc"]["jpeg/2"]))
    r = _run("--models", str(int8), "--keep-others", *[a if a != "2" else "3" for a in common[:4]], *common[4:])
    assert r.returncode == 1 and "measured with another n_images (2, now 3)" in r.stderr
    onnx.write_bytes(onnx.read_bytes() + b"\0")  # the fp32 row's file is no longer the one measured
    r = _run("--models", str(int8), "--keep-others", *common)
    assert r.returncode == 1 and "m.onnx (ONNX Runtime fp32) changed since" in r.stderr
    assert json.loads((tmp_path / "r" / "robustness.json").read_text()) == res  # nothing written on refusal


def test_cli_keeps_the_runtimes_own_output_out_of_the_way(isic2018, tmp_path):
    """LiteRT announces its delegate whenever an interpreter starts (also when the training-image check opens the
    file for its metadata): without --verbose none of it reaches the terminal."""
    r = _run("--models", str(REPO / "exports" / "aulunet_v3_isic2018_int8.tflite"), "--data", str(isic2018),
             "--count", "2", "--corruptions", "jpeg", "--severities", "1", "--threads", "1", "--out", str(tmp_path))
    assert r.returncode == 0 and r.stderr == "", r.stderr[-500:]


def test_jobs_score_files_in_processes_with_the_same_figures(isic2018, tmp_path):
    """--jobs 2: one process per file, the rows in the order given and the figures of one process, to the digit."""
    files = f"{REPO / 'exports' / 'aulunet_v3_isic2018_int8.tflite'},{REPO / 'exports' / 'aulunet_v3_in128_isic2018.onnx'}"
    common = ["--models", files, "--data", str(isic2018), "--count", "3", "--corruptions", "jpeg,defocus_blur",
              "--severities", "2", "--threads", "1"]
    runs = []
    for jobs in ("1", "2"):
        r = _run(*common, "--jobs", jobs, "--out", str(tmp_path / jobs))
        assert r.returncode == 0 and r.stderr == "", r.stderr[-500:]
        runs.append(json.loads((tmp_path / jobs / "robustness.json").read_text()))
    one, two = runs
    assert list(two["models"]) == list(one["models"]) == ["LiteRT (TFLite) INT8", "ONNX Runtime fp32"]
    for label in one["models"]:
        assert two["models"][label]["dsc"] == one["models"][label]["dsc"]
        assert two["models"][label]["mean_drop"] == one["models"][label]["mean_drop"]


def test_keep_others_refuses_a_missing_or_foreign_earlier_file_in_one_line(tmp_path):
    """Nothing to keep from, or a file that is not this benchmark's results: a one-line error naming the file."""
    from benchmarks.robustness import rows_to_keep
    from core.errors import UserError

    path = tmp_path / "robustness.json"
    with pytest.raises(UserError, match=f"no earlier {path} to keep rows from"):
        rows_to_keep(path, {}, ["PyTorch"])
    for text in ("not json", json.dumps({"models": 3}), json.dumps({"runtime": "ORT"}),
                 json.dumps({"models": {"PyTorch": {"dsc": {}}}}), json.dumps([1, 2])):
        path.write_text(text)
        with pytest.raises(UserError, match=f"{path} is not a robustness results JSON"):
            rows_to_keep(path, {}, ["PyTorch"])
    assert path.read_text() == json.dumps([1, 2])  # the foreign file is left as it was


def test_cli_refuses_committed_results_bad_names_and_missing_files(tmp_path):
    before = sorted((REPO / "benchmarks" / "results").iterdir())
    r = _run("--out", str(REPO / "benchmarks" / "results"), "--count", "1")
    assert r.returncode == 1 and r.stderr.strip().startswith("error: ") and "--update-results" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert sorted((REPO / "benchmarks" / "results").iterdir()) == before
    r = _run("--corruptions", "fog", "--out", str(tmp_path))
    assert r.returncode == 1 and "unknown 'fog'" in r.stderr
    r = _run("--severities", "0,5", "--out", str(tmp_path))
    assert r.returncode == 1 and "--severities" in r.stderr
    r = _run("--models", str(tmp_path / "nope.onnx"), "--out", str(tmp_path))
    assert r.returncode == 1 and "nope.onnx not found" in r.stderr
    r = _run("--jobs", "0", "--out", str(tmp_path))
    assert r.returncode == 1 and "--jobs must be at least 1 (got 0)" in r.stderr
    assert list(tmp_path.iterdir()) == []
