"""web_demo/: the page's JavaScript pre/postprocessing against the Python golden pairs (Node), and the page itself in
Debian's Chromium (headless, Playwright): real PH2 and ISIC photos through its file input, masks compared with
runtimes.load(...).predict on the same file, no request leaving the page's origin, offline reload, camera, bad
input. One browser for the module; latency is recorded in docs/web.md, never asserted."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import runtimes
from model.data import load_rgb, open_dataset
from model.preprocess import preprocess_image

REPO = Path(__file__).resolve().parents[1]
WEB = REPO / "web_demo"
SHARED = REPO.parent / "shared" / "data"
SETUP_HINT = "bash run.sh test installs it (or: apt-get install chromium nodejs npm; npm ci --prefix web_demo)"
FP32_IOU, INT8_IOU = 0.995, 0.98


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


@pytest.fixture(scope="module")
def photos(ph2):
    """Two real photos per dataset: a PH2 val photo (765x572) and an ISIC 2018 val photo (256x192)."""
    isic = SHARED / "isic2018"
    if not (isic / "images").is_dir():
        pytest.skip(f"real ISIC 2018 data absent: {isic} not found (CI always has it)")
    return [open_dataset(ph2).subset("val")[0].image, open_dataset(isic).subset("val")[0].image]


def test_js_pre_post_match_python_golden_pairs(ph2, tmp_path):
    node = shutil.which("node")
    assert node, f"node not found; {SETUP_HINT}"
    sys.path.insert(0, str(REPO / "android_demo" / "tools"))
    from make_golden import write_cases
    from model.synthetic import make_lesion
    from web_demo import models

    samples = open_dataset(ph2).subset("val")[:2]
    cases = [(s.id, load_rgb(s.image)) for s in samples]
    isic = SHARED / "isic2018"
    if (isic / "images").is_dir():
        s = open_dataset(isic).subset("val")[0]
        cases.append((s.id, load_rgb(s.image)))
    cases.append(("synthetic_odd_size", make_lesion(np.random.default_rng(3), (301, 419))[0]))
    write_cases(tmp_path, cases, model=models.default_file())
    proc = subprocess.run([node, str(WEB / "tests" / "golden.mjs"), str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["name"] for r in rows] == [c[0] for c in cases]
    for r in rows:
        # the model input from the same RGB bytes (JavaScript computes in float64 and stores float32, numpy in float32:
        # values in [0, 1] after a resize and a min-max scale, ~10 ops each: ~1e-6), and probabilities from the same
        # logits (a sigmoid and a bilinear resize back to the photo: ~1e-6); bound 1e-5 on any CPU
        assert r["input_max_diff"] <= 1e-5, r
        assert r["layout_max_diff"] == 0, r        # NCHW (ONNX) and NHWC (TFLite) hold the same values
        assert r["prob_max_diff"] <= 1e-5, r
        assert r["mask_differ_away_from_threshold"] == 0, r
        assert r["mask_differ"] <= 0.0001 * r["mask_pixels"], r
        assert 0 < r["mask_foreground"] < r["mask_pixels"], r


def test_package_lock_pins_what_package_json_names():
    pins = json.loads((WEB / "package.json").read_text())["dependencies"]
    lock = json.loads((WEB / "package-lock.json").read_text())
    for name, version in pins.items():
        assert version[0].isdigit(), f"{name}: pin an exact version, not {version}"
        assert lock["packages"][f"node_modules/{name}"]["version"] == version, name
    ignored = (REPO / ".gitignore").read_text().split()
    assert "/web_demo/node_modules/" in ignored and "/web_demo/dist/" in ignored


def run_cli(*args):
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, cwd=REPO, timeout=120)


def test_bad_arguments_give_one_line_errors(tmp_path):
    from web_demo.build import BuildError, build

    for args, needle in [(["--model", tmp_path / "missing.onnx"], "missing.onnx: model file not found"),
                         (["--model", REPO / "exports" / "aulunet_v3_ph2.summary.json"], "summary.json: the page runs .onnx"),
                         (["--exports", tmp_path], "the page's default model is missing"),
                         (["--port", "70000"], "--port 70000: not a port number")]:
        proc = run_cli(WEB / "serve.py", "--out", tmp_path / "site", *args)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 1 and len(lines) == 1 and needle in lines[0], (args, proc.stderr[-1500:])
        assert lines[0].startswith("error: ") and "Traceback" not in proc.stderr
    with pytest.raises(BuildError, match="npm package .* is not installed; run `bash run.sh web`"):
        build(tmp_path / "site", node_modules=tmp_path / "no_node_modules")


# --- the page in Chromium ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def site(tmp_path_factory, ph2):
    from web_demo.browser import chromium_path
    from web_demo.build import build
    from web_demo.serve import Server

    chromium_path()  # a one-line error naming the fix when Chromium is missing
    assert (WEB / "node_modules").is_dir(), f"{WEB / 'node_modules'} missing; {SETUP_HINT}"
    out = tmp_path_factory.mktemp("web_site")
    manifest = build(out)
    with Server(out) as server:
        yield server.url, manifest


@pytest.fixture(scope="module")
def browser(site):
    from web_demo.browser import chromium

    with chromium() as b:
        yield b


def test_page_masks_match_python_runtimes(site, browser, photos):
    from web_demo.browser import Page

    url, manifest = site
    rgbs = {p: load_rgb(p) for p in photos}
    x = preprocess_image(rgbs[photos[0]])
    assert {m["quantize"] for m in manifest["models"]} == {"none", "int8"}
    assert {m["runtime"] for m in manifest["models"]} == {"onnxruntime-web", "litert.js"}
    for entry in manifest["models"]:
        path = REPO / "exports" / entry["file"]
        seg = runtimes.load(path, threads=1)
        page = Page(browser, url, f"model={entry['file']}&threads=2&sw=0")
        try:
            info = page.wait_ready()
            assert info["file"] == entry["file"] and info["runtimeKey"] == entry["runtime"]
            assert info["crossOriginIsolated"] and info["threads"] == 2, info
            for photo in photos:
                got = page.segment(photo)
                assert got is not None, page.error_text()
                _, want = seg.predict(rgbs[photo])
                gate = INT8_IOU if entry["quantize"] == "int8" else FP32_IOU
                assert got["mask"].shape == want.shape
                assert iou(got["mask"], want) >= gate, (entry["file"], photo.name, iou(got["mask"], want))
                assert got["file"] == entry["file"]
                assert page.page.text_content("#modelfile") == entry["file"]
                assert info["runtime"] in page.page.text_content("#runtime")
                assert page.page.text_content("#area").startswith(f"{100 * got['mask'].mean():.1f} %")
            if entry["quantize"] == "none":  # the runtime alone, on Python's own input tensor
                xin = x.transpose(1, 2, 0) if entry["layout"] == "NHWC" else x
                # logits of the browser's WebAssembly kernels vs the native ones: different float32 sums, the same
                # bound as the exporters' tests (~20 layers, ~3e-5 relative of a scale growing with |logit|)
                want_logits = seg.run(x[None])[0, 0]
                diff = np.abs(page.run_tensor(xin) - want_logits)
                assert (diff <= 2e-4 * (1 + np.abs(want_logits))).all(), (entry["file"], diff.max())
            assert page.foreign_requests() == [], page.foreign_requests()
            assert page.console_errors == [], page.console_errors
        finally:
            page.close()


def test_default_page_is_private_offline_and_refuses_bad_photos(site, browser, photos, tmp_path):
    from PIL import Image
    from web_demo import models
    from web_demo.browser import Page

    url, manifest = site
    assert manifest["default"] == models.default_file().name
    page = Page(browser, url)
    try:
        info = page.wait_ready()
        assert info["file"] == manifest["default"] and info["threads"] == 2 and info["crossOriginIsolated"]
        assert page.page.evaluate("() => window.aulunet.offline") is True  # the service worker holds the files

        bad = tmp_path / "notes.jpg"
        bad.write_text("not a photo")
        tiny = tmp_path / "thumb.png"
        Image.fromarray(np.full((16, 20, 3), 120, np.uint8)).save(tiny)
        flat = tmp_path / "flat.png"
        Image.fromarray(np.full((64, 64, 3), 120, np.uint8)).save(flat)
        for f, needle in [(bad, "notes.jpg: cannot read this file as an image"),
                          (tiny, "thumb.png: image is 20x16 pixels, below the 32x32 minimum"),
                          (flat, "flat.png: image has no contrast")]:
            assert page.segment(f) is None
            assert needle in page.error_text() and "\n" not in page.error_text().strip()

        page.context.set_offline(True)  # reload and segment with the network gone
        page.page.reload()
        assert page.wait_ready()["file"] == manifest["default"]
        got = page.segment(photos[0])
        assert got is not None and 0 < got["area"] < 1
        page.context.set_offline(False)

        page.page.click("#camera")  # Chromium's fake camera: the capture path end to end
        page.page.wait_for_selector("#capture", state="visible")
        page.page.wait_for_function("() => document.getElementById('video').readyState >= 2")
        page.page.click("#capture")
        page.page.wait_for_function("() => window.aulunet.last && window.aulunet.last.label === 'camera frame'")

        assert page.foreign_requests() == [], page.foreign_requests()
        assert page.console_errors == [], page.console_errors
    finally:
        page.close()
