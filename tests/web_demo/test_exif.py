"""The web page decodes a photo's EXIF orientation as the Python loader does (issue 18): the same photo saved
with each of the 8 EXIF orientations, chosen in the page's file input in Debian's Chromium (Playwright), gives
the size and the model input that model.data.load_rgb + preprocess_image give in Python. Fixtures in
tests/conftest.py."""
import base64

import numpy as np
import pytest

import runtimes
from model.data import EXIF_ORIENTATION, ORIENTATIONS, load_rgb, open_dataset
from core.preprocess import preprocess_image
from tests.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.browser]

WEB = REPO / "web_demo"




def page_input(page) -> np.ndarray:
    """The model input tensor of the page's last photo (float32, in the model's layout)."""
    b64 = page.page.evaluate("""() => {
        const x = window.aulunet.last.input, b = new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
        let s = ''; for (let i = 0; i < b.length; i += 8192) s += String.fromCharCode.apply(null, b.subarray(i, i + 8192));
        return btoa(s);
    }""")
    return np.frombuffer(base64.b64decode(b64), "<f4")


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


def test_page_applies_exif_orientation_as_python_does(site, browser, ph2, tmp_path):
    from PIL import Image
    from web_demo.browser import Page

    url, manifest = site
    entry = next(m for m in manifest["models"] if m["file"] == manifest["default"])
    photo = load_rgb(open_dataset(ph2).subset("val")[0].image)[100:400, 150:370]  # 220x300: not square
    seg = runtimes.load(REPO / "exports" / entry["file"], threads=1)
    page = Page(browser, url, "sw=0")
    try:
        page.wait_ready()
        for o in sorted(ORIENTATIONS):
            exif = Image.Exif()
            exif[EXIF_ORIENTATION] = o
            f = tmp_path / f"exif_{o}.png"  # lossless: the page and PIL decode the same bytes
            Image.fromarray(photo).save(f, exif=exif)
            rgb = load_rgb(f)
            got = page.segment(f)
            assert got is not None, page.error_text()
            assert (got["height"], got["width"]) == rgb.shape[:2], (o, got["height"], got["width"], rgb.shape)
            x = preprocess_image(rgb)
            want = x.transpose(1, 2, 0).ravel() if entry["layout"] == "NHWC" else x.ravel()
            assert np.abs(page_input(page) - want).max() <= 1e-5, o  # same pixels: same input (tests/web_demo/test_site.py's gate)
        # A JPEG photo turned by its tag (what phones write): same size and mask as Python's predict on the file.
        stored = np.ascontiguousarray(np.rot90(photo, 1))  # stored 90 degrees counter-clockwise, tag 6 turns it back
        exif = Image.Exif()
        exif[EXIF_ORIENTATION] = 6
        jpg = tmp_path / "phone.jpg"
        Image.fromarray(stored).save(jpg, quality=95, exif=exif)
        got = page.segment(jpg)
        assert got is not None, page.error_text()
        _, want = seg.predict(Image.open(jpg))
        assert got["mask"].shape == want.shape == photo.shape[:2]
        assert iou(got["mask"], want) >= 0.98  # JPEG decoders may differ by a grey level (test_site.py's INT8 gate)
        assert page.console_errors == [], page.console_errors
    finally:
        page.close()
