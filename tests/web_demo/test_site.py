"""web_demo/: the page's JavaScript pre/postprocessing against the Python golden pairs (Node), and the page itself in
Debian's Chromium (headless, Playwright): real PH2 and ISIC photos through its file input, masks compared with
runtimes.load(...).predict on the same file, no request leaving the page's origin, offline reload, camera, bad
input. One browser for the module; latency is recorded in docs/web.md, never asserted."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import runtimes
from model.data import load_rgb, open_dataset
from core.preprocess import preprocess_image
from tests.conftest import REPO, WEB_SETUP_HINT as SETUP_HINT

WEB = REPO / "web_demo"
SHARED = REPO.parent / "shared" / "data"
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
    from model.data.synthetic import make_lesion
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
    # every case through the default model (256x256) and the edge model (128x128), as the page runs both
    assert [r["name"] for r in rows] == [c[0] for c in cases] + [f"{c[0]}_edge" for c in cases]
    assert {r["size"] for r in rows} == {256, 128}
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


def postprocess_cases(ph2):
    """The clean-up cases of make_golden.py plus two real masks: the default model's on a PH2 val photo (765x572)
    and the PH2 model's on a photo of two dark discs, one with a light centre (both steps change it)."""
    sys.path.insert(0, str(REPO / "android_demo" / "tools"))
    from make_golden import postprocess_masks
    from web_demo import models

    photo = load_rgb(open_dataset(ph2).subset("val")[0].image)
    real = [("ph2_photo", runtimes.load(models.default_file(), threads=1).predict(photo)[1]),
            ("two_discs", runtimes.load(REPO / "exports" / "aulunet_v3_ph2.onnx", threads=1).predict(two_discs())[1])]
    return postprocess_masks(real)


def two_discs() -> np.ndarray:
    """A light 160x120 photo of two dark discs, the larger with a light centre."""
    yy, xx = np.mgrid[0:120, 0:160]
    img = np.full((120, 160, 3), 200, np.uint8)
    img[((yy - 60) ** 2 + (xx - 50) ** 2 < 35 ** 2) | ((yy - 30) ** 2 + (xx - 130) ** 2 < 12 ** 2)] = 60
    img[(yy - 60) ** 2 + (xx - 50) ** 2 < 10 ** 2] = 200
    return img


def test_js_postprocess_matches_python_exactly(ph2, tmp_path):
    node = shutil.which("node")
    assert node, f"node not found; {SETUP_HINT}"
    sys.path.insert(0, str(REPO / "android_demo" / "tools"))
    from make_golden import postprocess_files

    files = postprocess_files(postprocess_cases(ph2))
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    cases = files["postprocess.txt"].decode().split()[::4]
    changed = [c for c in cases if files[f"{c}.pin"] != files[f"{c}.pout"]]
    assert len(changed) >= len(cases) // 2 and any(c.startswith("pp_two_discs") for c in changed)  # the steps bite
    proc = subprocess.run([node, str(WEB / "tests" / "postprocess.mjs"), str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["name"] for r in rows] == cases
    for r in rows:
        assert r["differ"] == 0 and r["got_pixels"] == r["pixels"] and r["input_changed"] == 0, r


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


def tree(folder: Path) -> dict:
    """Every file and link under `folder` (hidden ones too) with its bytes or link target: a snapshot to compare."""
    return {p.relative_to(folder).as_posix(): (os.readlink(p) if p.is_symlink() else p.read_bytes())
            for p in sorted(folder.rglob("*")) if p.is_symlink() or p.is_file()}


def test_build_refuses_a_folder_it_did_not_make(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    for tool in ("build.py", "serve.py"):  # serve.py builds into its --out before serving
        proc = run_cli(WEB / tool, "--out", folder, "--model", REPO / "exports" / "aulunet_v3_isic2018.onnx")
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 1 and len(lines) == 1 and "Traceback" not in proc.stderr, (tool, proc.stderr[-1500:])
        assert lines[0] == (f"error: {folder}: is not empty and was not made by web_demo/build.py; "
                            f"pass --out with an empty or new folder (nothing was changed)"), tool
        assert tree(folder) == {"notes.txt": b"mine"}, tool


def test_build_into_a_checkout_is_refused_and_changes_nothing(tmp_path):
    repo = tmp_path / "checkout"  # what `python web_demo/build.py --out .` meets when run from a repository
    for rel, text in {".git/HEAD": "ref: refs/heads/main\n", ".git/config": "[core]\n", "README.md": "# x\n",
                      "model/train.py": "print()\n", "index.html": "<!doctype html>\n",
                      "models/manifest.json": '{"models": []}\n'}.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    before = tree(repo)
    proc = subprocess.run([sys.executable, str(WEB / "build.py"), "--out", "."], capture_output=True, text=True,
                          cwd=repo, timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr[-1500:]
    assert lines[0].startswith(f"error: {repo}: is not empty and was not made by web_demo/build.py; pass --out")
    assert tree(repo) == before


def test_rebuild_removes_only_the_stale_files_it_made(tmp_path):
    from core.safeio import OWNED_MANIFEST
    from web_demo.build import build

    out = tmp_path / "site"
    first = build(out)
    offered = {f"models/{m['file']}" for m in first["models"]}
    assert len(offered) >= 2 and (out / OWNED_MANIFEST).is_file()
    (out / "notes.txt").write_text("mine")  # the user's, beside the build's own files
    (out / "models" / "extra.onnx").write_bytes(b"mine too")
    before = tree(out)
    keep = REPO / "exports" / first["default"]
    second = build(out, model=keep)
    assert [m["file"] for m in second["models"]] == [keep.name]
    after = tree(out)
    gone = set(before) - set(after)
    assert gone == offered - {f"models/{keep.name}"}  # the models no longer offered, nothing else
    assert after["notes.txt"] == b"mine" and after["models/extra.onnx"] == b"mine too"
    assert (out / "models" / keep.name).read_bytes() == keep.read_bytes()
    owned = json.loads((out / OWNED_MANIFEST).read_text())["files"]
    assert "notes.txt" not in owned and f"models/{keep.name}" in owned and not set(owned) & gone
    assert {k for k in after if k != OWNED_MANIFEST} == set(owned) | {"notes.txt", "models/extra.onnx"}


def test_build_refuses_a_file_of_the_users_where_it_would_write(tmp_path):
    from core.errors import OutputError
    from web_demo.build import build

    out = tmp_path / "site"
    manifest = build(out, model=REPO / "exports" / "aulunet_v3_isic2018.onnx")
    other = REPO / "exports" / "aulunet_v3_isic2018.tflite"
    (out / "models" / other.name).write_bytes(b"the user's own")  # where the next build would copy the model
    before = tree(out)
    with pytest.raises(OutputError, match=f"{out / 'models' / other.name}: exists and was not made by web_demo/build.py"):
        build(out, model=other)
    assert tree(out) == before and manifest["default"] == "aulunet_v3_isic2018.onnx"


def test_an_earlier_build_in_the_default_folder_is_adopted_and_a_foreign_file_refused(tmp_path, monkeypatch):
    """web_demo/dist/ (git-ignored) was built before manifests existed: kept working when it holds only the
    build's own files; with anything else in it, refused like any other folder."""
    from core.errors import OutputError
    from core.safeio import OWNED_MANIFEST
    from web_demo import build as b

    dist = tmp_path / "dist"
    monkeypatch.setattr(b, "DIST", dist)
    onnx = REPO / "exports" / "aulunet_v3_isic2018.onnx"
    b.build(dist, model=onnx)
    (dist / OWNED_MANIFEST).unlink()  # as an earlier build.py left it
    b.build(dist, model=onnx)
    assert json.loads((dist / OWNED_MANIFEST).read_text())["tool"] == "web_demo/build.py"

    (dist / OWNED_MANIFEST).unlink()
    (dist / "models" / "mine.onnx").write_bytes(b"not the build's")
    before = tree(dist)
    with pytest.raises(OutputError, match="is not empty and was not made by web_demo/build.py"):
        b.build(dist, model=onnx)
    assert tree(dist) == before


def http(port: int, path: str, host: str = None, method: str = "GET"):
    """One request to 127.0.0.1:port, sent as given (no normalisation); (status, headers, body)."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host if host is not None else f"127.0.0.1:{port}")
        conn.endheaders()
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def raw_request(port: int, data: bytes) -> bytes:
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(data)
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def test_server_serves_only_its_folder_to_its_own_host_with_security_headers(tmp_path):
    import selectors

    from web_demo.build import build

    site = tmp_path / "site"
    build(site, model=REPO / "exports" / "aulunet_v3_isic2018.onnx")
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "passwd").write_text("root:x:0:0:SECRET\n")
    (site / "leak").symlink_to(secret / "passwd")  # links out of the folder: never followed
    (site / "leakdir").symlink_to(secret)
    (site / "inside").symlink_to(site / "app.js")  # a link that stays inside is an ordinary file
    page = (site / "index.html").read_bytes()
    meta_csp = re.search(rb'http-equiv="Content-Security-Policy" content="([^"]*)"', page).group(1).decode()
    assert "'wasm-unsafe-eval'" in meta_csp and "'sha256-" in meta_csp

    proc = subprocess.Popen([sys.executable, str(WEB / "serve.py"), "--out", str(site), "--port", "0",
                             "--model", str(REPO / "exports" / "aulunet_v3_isic2018.onnx")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        assert sel.select(timeout=120), "serve.py printed nothing"
        line = proc.stdout.readline()
        port = int(re.search(r"http://127\.0\.0\.1:(\d+)/", line).group(1))

        status, headers, body = http(port, "/")
        assert status == 200 and body == page
        for path, want in [("/app.js", 200), ("/models/manifest.json", 200), ("/app.js?v=2", 200),
                           ("/inside", 200), ("/leak", 404), ("/leakdir/passwd", 404), ("/models/", 404),
                           ("/.aulunet-owned.json", 404), ("/missing.js", 404),
                           ("/%00", 400), ("/app.js%00.png", 400), ("/%ff", 400), ("/..%2f..%2fetc/passwd", 400),
                           ("/../../etc/passwd", 400), ("/..%2f..%2f" + "%2e%2e%2f" * 8 + "etc%2fpasswd", 400),
                           ("/a%5c..%5c..%5cetc%5cpasswd", 400), ("/" + "a" * 5000, 414)]:
            status, headers, body = http(port, path)
            assert status == want, (path, status)
            assert b"SECRET" not in body and b"root:" not in body, path
            # every answer, errors too, carries the headers (the CSP with the page's own hash)
            assert headers["content-security-policy"] == f"{meta_csp}; frame-ancestors 'none'", path
            assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff", path
            assert headers["referrer-policy"] == "no-referrer", path
        assert http(port, "/", method="HEAD")[0] == 200

        # DNS rebinding: a name the attacker controls, resolved to 127.0.0.1, is not this server's host
        for host in ("evil.example", f"evil.example:{port}", f"127.0.0.1:{port + 1}", "127.0.0.1", ""):
            status, headers, body = http(port, "/", host=host)
            assert status == 421 and page not in body and headers["x-frame-options"] == "DENY", host
        for host in (f"localhost:{port}", f"LOCALHOST:{port}", f"[::1]:{port}"):
            assert http(port, "/", host=host)[0] == 200, host
        no_host = raw_request(port, b"GET / HTTP/1.0\r\n\r\n")
        assert no_host.startswith(b"HTTP/1.0 421 "), no_host[:80]
        nul = raw_request(port, f"GET /%00 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
        assert nul.startswith(b"HTTP/1.0 400 "), nul[:80]  # an answer, not a dropped connection
        assert http(port, "/app.js")[0] == 200  # and still serving
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "Traceback" not in err, err[-2000:]


# --- the page in Chromium ---------------------------------------------------------------------------------



@pytest.mark.slow
@pytest.mark.browser
def test_page_masks_match_python_runtimes(site, browser, photos):
    from web_demo.browser import Page

    url, manifest = site
    from core.paths import DEFAULT_MODEL, EDGE_MODEL

    rgbs = {p: load_rgb(p) for p in photos}
    assert {m["quantize"] for m in manifest["models"]} == {"none", "int8"}
    # the edge model (128x128 input) is offered beside the default, each of its files checked like the default's
    assert {m["source_checkpoint"] for m in manifest["models"]} == {f"{DEFAULT_MODEL}.pt", f"{EDGE_MODEL}.pt"}
    assert {m["input_size"] for m in manifest["models"]} == {256, 128}
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
                x = preprocess_image(rgbs[photos[0]], entry["input_size"])
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


@pytest.mark.slow
@pytest.mark.browser
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


@pytest.mark.slow
@pytest.mark.browser
def test_page_applies_the_models_postprocess_as_python_does(browser, ph2, tmp_path):
    """A model whose metadata lists both steps: the manifest carries them, the page's masks are their fixed point
    and match Python's predict(); core.js's postprocess, run in Chromium, equals core/postprocess.py exactly."""
    import base64

    import onnx

    from core import postprocess as pp
    from tests.conftest import save_png
    from web_demo.browser import Page
    from web_demo.build import build
    from web_demo.serve import Server

    steps = ["largest-component", "fill-holes"]
    m = onnx.load(str(REPO / "exports" / "aulunet_v3_isic2018.onnx"))
    meta = json.loads(m.metadata_props[0].value)
    meta["postprocess"] = steps
    m.metadata_props[0].value = json.dumps(meta)
    model = tmp_path / "with_steps.onnx"
    onnx.save(m, str(model))
    seg = runtimes.load(model, threads=1)
    cases = postprocess_cases(ph2)
    discs = save_png(tmp_path / "two_discs.png", two_discs())
    photos = [open_dataset(ph2).subset("val")[0].image, discs]
    manifest = build(tmp_path / "site", model=model)
    assert manifest["models"][0]["postprocess"] == steps
    with Server(tmp_path / "site") as server:
        page = Page(browser, server.url, "sw=0")
        try:
            assert page.wait_ready()["postprocess"] == steps
            for photo in photos:
                got = page.segment(photo)
                assert got is not None, page.error_text()
                want = seg.predict(load_rgb(photo))[1]
                assert iou(got["mask"], want) >= FP32_IOU, (photo.name, iou(got["mask"], want))
                np.testing.assert_array_equal(pp.apply(got["mask"], steps), got["mask"])  # the steps ran in the page
                if photo == discs:  # where they change the mask (a stray blob, a pinhole)
                    assert (seg.predict(load_rgb(photo), postprocess="none")[1] != want).any()
            for name, mask in cases:
                for text in ("largest-component", "fill-holes", "fill-holes,largest-component"):
                    b64 = base64.b64encode(mask.astype(np.uint8).tobytes()).decode()
                    out = page.page.evaluate("""async ([b64, h, w, steps]) => {
                        const core = await import("./core.js");
                        const bin = atob(b64), m = new Uint8Array(bin.length);
                        for (let i = 0; i < bin.length; i++) m[i] = bin.charCodeAt(i);
                        const out = core.postprocess(m, h, w, steps);
                        let s = "";
                        for (let i = 0; i < out.length; i += 8192) s += String.fromCharCode.apply(null, out.subarray(i, i + 8192));
                        return btoa(s);
                    }""", [b64, mask.shape[0], mask.shape[1], text.split(",")])
                    js = np.frombuffer(base64.b64decode(out), np.uint8).reshape(mask.shape)
                    np.testing.assert_array_equal(js, pp.apply(mask, text).astype(np.uint8), err_msg=f"{name} {text}")
            assert page.foreign_requests() == [] and page.console_errors == [], page.console_errors
        finally:
            page.close()
