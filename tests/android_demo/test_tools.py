"""android_demo/tools/: copy_model.py accepts only what the app loads and follows the output policy;
make_golden.py reports bad input in one line and owns its output folder."""
import hashlib
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import REPO

TOOLS = REPO / "android_demo" / "tools"
ASSETS = REPO / "android_demo" / "app" / "src" / "main" / "assets"


def _tool(name):
    return runpy.run_path(str(TOOLS / name), run_name="not_main")


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _tree(folder: Path):
    return {p.relative_to(folder).as_posix(): _sha(p) for p in sorted(folder.rglob("*")) if p.is_file()} if folder.exists() else {}


@pytest.fixture(scope="module")
def cm():
    return _tool("copy_model.py")


def test_copy_model_refuses_what_the_app_does_not_load(cm, tmp_path):
    spec = cm["model_spec"]()
    asset = spec["ASSET"]
    assert asset.endswith("_int8.tflite")  # what ModelSpec.java says the app opens
    fp32_named_as_asset = tmp_path / "fp32" / asset  # an fp32 .tflite under the app's name: its metadata tells
    fp32_named_as_asset.parent.mkdir()
    shutil.copyfile(REPO / "exports" / asset.replace("_int8", ""), fp32_named_as_asset)
    cases = [
        (REPO / "exports" / asset.replace("_int8.tflite", "_fp16.onnx"), r"a \.onnx file, not a \.tflite; the app loads the INT8 \.tflite"),
        (REPO / "exports" / "aulunet_v3_ph2_int8.tflite", rf"the app loads {asset} \(ModelSpec\.ASSET\) or {spec['EDGE_ASSET']} \(ModelSpec\.EDGE_ASSET\), not aulunet_v3_ph2_int8\.tflite"),
        (fp32_named_as_asset, r"its metadata says tflite quantization none, not an INT8 \.tflite"),
        (tmp_path / asset, r"not found; the app loads the INT8 \.tflite"),
    ]
    out = tmp_path / "assets"
    for model, message in cases:
        with pytest.raises(SystemExit, match=rf"^error: --model {model}: {message}"):
            cm["main"](["--model", str(model), "--assets", str(out)])
    assert not out.exists()


def test_copy_model_writes_both_assets_and_replaces_only_with_a_flag(cm, tmp_path, capsys):
    spec = cm["model_spec"]()
    src = REPO / "exports" / spec["ASSET"]
    out = tmp_path / "assets"
    assert cm["main"](["--model", str(src), "--assets", str(out)]) == out / spec["ASSET"]
    assert _sha(out / spec["ASSET"]) == _sha(src)
    import json

    import runtimes

    assert json.loads((out / spec["METADATA_ASSET"]).read_text()) == runtimes.load(src).metadata
    assert sorted(p.name for p in out.iterdir()) == sorted([spec["ASSET"], spec["METADATA_ASSET"]])  # no temporaries
    cm["main"](["--model", str(src), "--assets", str(out)])  # the same bytes again: nothing to replace, no flag needed
    (out / spec["METADATA_ASSET"]).write_text("{}\n")  # someone else's file
    before = _tree(out)
    with pytest.raises(SystemExit, match=rf"^error: {out / spec['METADATA_ASSET']}: already exists and copy_model\.py "
                                         r"does not replace it; pass --overwrite or choose another path$"):
        cm["main"](["--model", str(src), "--assets", str(out)])
    assert _tree(out) == before
    cm["main"](["--model", str(src), "--assets", str(out), "--overwrite"])
    assert json.loads((out / spec["METADATA_ASSET"]).read_text()) == runtimes.load(src).metadata


def test_copy_model_keeps_the_committed_asset_without_update_results(cm, tmp_path):
    """The app's assets are a committed result: another valid INT8 model is refused there without
    --update-results, and the documented command (the asset already equal to the export) still succeeds."""
    spec = cm["model_spec"]()
    committed = _tree(ASSETS)
    other = tmp_path / spec["ASSET"]  # a valid INT8 .tflite the app could load (the PH2 model), different bytes
    shutil.copyfile(REPO / "exports" / "aulunet_v3_ph2_int8.tflite", other)
    with pytest.raises(SystemExit, match=r"^error: android_demo/app/src/main/assets/\S+: is a committed result; "
                                         r"pass --update-results to replace it or --assets DIR"):
        cm["main"](["--model", str(other)])
    assert _tree(ASSETS) == committed
    # the documented command (android_demo/README.md), run only while it cannot change anything
    assert _sha(ASSETS / spec["ASSET"]) == _sha(REPO / "exports" / spec["ASSET"]), "asset stale: see test_android_demo.py"
    p = subprocess.run([sys.executable, str(TOOLS / "copy_model.py"), "--update-results"], capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.strip().endswith(spec["ASSET"]), p.stderr
    assert _tree(ASSETS) == committed  # already the export: nothing rewritten


def test_make_golden_bad_input_is_one_line(tmp_path):
    script = str(TOOLS / "make_golden.py")
    for argv, message in [
        (["--data", "/nope"], r"error: --data /nope: folder not found; pass a dataset folder with images/ and masks/ .*"),
        (["--count", "0"], r"error: --count must be at least 1 \(got 0\)"),
        (["--count", "x"], r"error: argument --count: invalid int value: 'x' \(see --help\)"),
    ]:
        p = subprocess.run([sys.executable, script, str(tmp_path / "g"), *argv], capture_output=True, text=True)
        assert p.returncode == 1 and len(p.stderr.splitlines()) == 1, p.stderr
        import re

        assert re.fullmatch(message, p.stderr.strip()), p.stderr
    assert not (tmp_path / "g").exists()


def test_make_golden_owns_its_folder(ph2, tmp_path):
    mg = _tool("make_golden.py")
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("not the tool's\n")
    with pytest.raises(SystemExit, match=r"^error: \S+other: is not empty and was not made by android_demo/tools/make_golden\.py"):
        mg["main"]([str(other), "--data", str(ph2), "--count", "1"])
    assert _tree(other) == {"keep.txt": _sha(other / "keep.txt")}
    g = tmp_path / "g"
    mg["main"]([str(g), "--data", str(ph2), "--count", "2"])
    names = (g / "index.txt").read_text().split()[::4]  # NAME HEIGHT WIDTH SIZE; each image for both of the app's models
    assert len(names) == 4 and names[2:] == [f"{n}_edge" for n in names[:2]] and (g / f"{names[3]}.mask").is_file()
    mg["main"]([str(g), "--data", str(ph2), "--count", "1"])  # a rerun replaces its own files, drops the stale cases
    assert (g / "index.txt").read_text().split()[::4] == [names[0], names[2]]
    assert not (g / f"{names[1]}.mask").exists() and not (g / f"{names[3]}.mask").exists()
    exif = [f"exif_{o}.{e}" for o in range(1, 9) for e in ("png", "rgb")] + ["exif_stored.rgb", "orientation.txt"]
    # the mask clean-up pairs and the app's metadata cases (PostprocessTest.java), as the tool's functions make them
    cleanup = {rel.split("/")[0] for rel in {**mg["postprocess_files"](mg["postprocess_masks"]()), **mg["metadata_files"]()}}
    assert {"postprocess.txt", "metadata", "metadata_steps"} <= cleanup
    assert sorted(p.name for p in g.iterdir()) == sorted([".aulunet-owned.json", "index.txt"] + exif + sorted(cleanup) +
                                                         [f"{n}.{e}" for n in (names[0], names[2])
                                                          for e in ("rgb", "input", "logits", "prob", "mask")])
    assert (g / "metadata_steps" / "with_steps.json").read_text() == "largest-component,fill-holes\n"
