"""android_demo/: the app's Java core against Python golden pairs (javac + JUnit 4 from Debian), the embedded
model against exports/, the model's signature against the app's constants, and well-formed app files."""
import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

import runtimes
from core.safeio import file_sha256
from tests.conftest import REPO

APP = REPO / "android_demo"
ASSETS = APP / "app" / "src" / "main" / "assets"
CORE = APP / "core" / "src"
JUNIT = [Path("/usr/share/java/junit4.jar"), Path("/usr/share/java/hamcrest-core.jar")]


def spec():
    text = (CORE / "main" / "java" / "org" / "aulunet" / "core" / "ModelSpec.java").read_text()
    found = re.findall(r"static final \w+ (\w+) = ([^;]+);", text)
    return {k: v.strip('"') if v.startswith('"') else v.rstrip("f") for k, v in found}


@pytest.mark.slow
@pytest.mark.android
def test_java_core_matches_python_golden_pairs(ph2, tmp_path):
    if not shutil.which("javac") or not all(j.is_file() for j in JUNIT):
        pytest.skip("javac or Debian's junit4 missing (.ci/run installs openjdk-17-jdk-headless and junit4)")
    import sys
    sys.path.insert(0, str(APP / "tools"))
    from make_golden import metadata_files, orientation_files, postprocess_files, postprocess_masks, write_cases
    from model.data import load_rgb, open_dataset
    from model.data.synthetic import make_lesion

    samples = open_dataset(ph2).subset("val")[:3]
    cases = [(s.id, load_rgb(s.image)) for s in samples]
    cases.append(("synthetic_odd_size", make_lesion(np.random.default_rng(3), (301, 419))[0]))
    golden = tmp_path / "golden"
    # plus a non-square crop of a real photo, as 8 EXIF orientations, the mask clean-up cases (with a real mask of
    # the embedded model) and the app's metadata assets
    real = runtimes.load(ASSETS / spec()["ASSET"], threads=1).predict(cases[0][1])[1]
    extra = {**orientation_files(cases[0][1][:61, :83]), **postprocess_files(postprocess_masks([("photo", real)])),
             **metadata_files()}
    write_cases(golden, cases, extra=extra)
    sizes = {ln.split()[0]: int(ln.split()[3]) for ln in (golden / "index.txt").read_text().splitlines()}
    assert sizes[f"{samples[0].id}_edge"] == 128 and sizes[samples[0].id] == 256  # both of the app's models
    classes = tmp_path / "classes"
    sources = sorted(str(p) for p in CORE.rglob("*.java"))
    cp = ":".join(map(str, JUNIT))
    subprocess.run(["javac", "-d", str(classes), "-cp", cp, *sources], check=True, capture_output=True)
    proc = subprocess.run(["java", f"-Dgolden.dir={golden}", "-cp", f"{classes}:{cp}", "org.junit.runner.JUnitCore",
                           "org.aulunet.core.GoldenTest", "org.aulunet.core.OrientationTest", "org.aulunet.core.PostprocessTest"],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "OK (10 tests)" in proc.stdout, proc.stdout[-2000:]


@pytest.mark.parametrize("prefix,model", [("", "DEFAULT_MODEL"), ("EDGE_", "EDGE_MODEL")])
def test_embedded_model_is_the_exported_one(prefix, model):
    import core.paths as shipped

    s = spec()
    name = getattr(shipped, model)
    assert s[f"{prefix}ASSET"] == f"{name}_int8.tflite", f"the app must embed core/paths.py's {model}"
    assert s[f"{prefix}METADATA_ASSET"] == f"{name}_int8.json"
    asset = ASSETS / s[f"{prefix}ASSET"]
    exported = REPO / "exports" / s[f"{prefix}ASSET"]
    assert file_sha256(asset) == file_sha256(exported), \
        f"assets model is stale: run python android_demo/tools/copy_model.py --update-results --model {exported}"
    meta = json.loads((ASSETS / s[f"{prefix}METADATA_ASSET"]).read_text())
    assert meta == runtimes.load(exported).metadata
    assert meta["quantization"] == "int8" and meta["format"] == "tflite"


@pytest.mark.parametrize("prefix", ["", "EDGE_"])
def test_model_signature_matches_app_constants(prefix):
    from ai_edge_litert.interpreter import Interpreter

    s = spec()
    side = int(s["EDGE_INPUT_SIZE"] if prefix else s["INPUT_HEIGHT"])
    it = Interpreter(str(ASSETS / s[f"{prefix}ASSET"]))
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    assert list(inp["shape"]) == [1, side, side, int(s["INPUT_CHANNELS"])]
    assert list(out["shape"]) == [1, side, side, int(s["OUTPUT_CHANNELS"])]
    assert inp["dtype"].__name__ == s["INPUT_DTYPE"] and out["dtype"].__name__ == s["OUTPUT_DTYPE"]
    assert inp["quantization"] == (0.0, 0) and out["quantization"] == (0.0, 0)  # float I/O, int8 inside
    meta = runtimes.load(ASSETS / s[f"{prefix}ASSET"]).metadata
    assert meta["input"]["layout"] == s["LAYOUT"] and meta["threshold"] == float(s["THRESHOLD"])
    pre = meta["preprocessing"]
    assert pre["resize"] == {"method": "bilinear", "half_pixel_centers": True, "align_corners": False, "antialias": False}
    assert pre["scale"]["method"] == "per_image_minmax"  # what Preprocess.java implements


def test_manifest_and_gradle_files_are_well_formed():
    ns = "{http://schemas.android.com/apk/res/android}"
    root = ET.parse(APP / "app" / "src" / "main" / "AndroidManifest.xml").getroot()
    perms = [p.get(f"{ns}name") for p in root.iter("uses-permission")]
    assert "android.permission.INTERNET" not in perms
    activity = root.find("application/activity")
    assert activity.get(f"{ns}name") == ".MainActivity" and activity.get(f"{ns}exported") == "true"
    assert activity.find("intent-filter/action").get(f"{ns}name") == "android.intent.action.MAIN"
    for xml in (APP / "app" / "src" / "main" / "res").rglob("*.xml"):
        ET.parse(xml)
    for kts in APP.rglob("*.gradle.kts"):
        text = kts.read_text()
        assert text.count("{") == text.count("}") and text.count("(") == text.count(")"), kts
    app = (APP / "app" / "build.gradle.kts").read_text()
    assert 'namespace = "org.aulunet.demo"' in app and "com.google.ai.edge.litert:litert:" in app
    assert int(re.search(r"targetSdk = (\d+)", app).group(1)) >= 34
    assert 'include(":app", ":core")' in (APP / "settings.gradle.kts").read_text()
    kt = (APP / "app" / "src" / "main" / "java" / "org" / "aulunet" / "demo" / "MainActivity.kt").read_text()
    assert "ModelSpec.ASSET" in kt and "Preprocess.toInput" in kt and "GpuDelegate" in kt
    assert "ModelSpec.EDGE_ASSET" in kt and "ModelSpec.EDGE_INPUT_SIZE" in kt  # the edge model, offered beside it
    assert "Orientation.apply(" in kt and "TAG_ORIENTATION" in kt  # the photo's EXIF orientation is applied
    assert "Postprocess.apply(" in kt and "Postprocess.stepsFromMetadata(" in kt  # the metadata's mask clean-up
