"""Drive the demo in Debian's Chromium, headless, through Playwright (tests, benchmark, screenshot share it).

Chromium is launched from its real binary (`/usr/lib/chromium/chromium`, not the /usr/bin wrapper that adds
flags; Playwright's own browser download does not work here) with every host except 127.0.0.1 unresolvable,
so Chromium's background calls to Google cannot leave the machine either.
"""
from __future__ import annotations

import base64
import contextlib
import os
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import numpy as np

from core.errors import UserError

CHROMIUM_CANDIDATES = ("/usr/lib/chromium/chromium", "/usr/lib/chromium-browser/chromium-browser")
INSTALL_HINT = "install Debian's chromium (apt-get install chromium; bash run.sh test does it) or set AULUNET_CHROMIUM"
ARGS = [
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
    "--disable-default-apps", "--disable-domain-reliability", "--metrics-recording-only",
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",  # the camera path, with a fake camera
]
# LiteRT.js prints its INFO lines (and a warning that no NPU is here) through console.error; they are not errors
BENIGN_CONSOLE = ("INFO: ", "Created TensorFlow Lite XNNPACK delegate", "WARNING: [npu_registry.cc")


def chromium_path() -> str:
    env = os.environ.get("AULUNET_CHROMIUM")
    for cand in ([env] if env else []) + list(CHROMIUM_CANDIDATES):
        if cand and Path(cand).is_file() and os.access(cand, os.X_OK):
            return cand
    where = f"AULUNET_CHROMIUM={env}" if env else " or ".join(CHROMIUM_CANDIDATES)
    raise UserError(f"{where}: no Chromium binary found; {INSTALL_HINT}")


def playwright_module():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise UserError("playwright: the Python package is not installed; pip install -e '.[test]' "
                        "(bash run.sh test does it)") from None
    return sync_playwright


@contextlib.contextmanager
def chromium() -> Iterator:
    """A headless Chromium (Playwright Browser); one per test module or benchmark run."""
    exe = chromium_path()
    with playwright_module()() as pw:
        browser = pw.chromium.launch(executable_path=exe, headless=True, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


class Page:
    """One browser context and page on the demo, recording every request and console error."""

    def __init__(self, browser, base_url: str, query: str = "", viewport: Optional[Dict] = None):
        self.base_url = base_url
        self.context = browser.new_context(viewport=viewport or {"width": 1100, "height": 900},
                                           service_workers="allow")
        self.requests: List[str] = []
        self.console_errors: List[str] = []
        self.console: List[str] = []  # every console line, for debugging
        self.context.on("request", lambda r: self.requests.append(r.url))
        self.page = self.context.new_page()
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.console_errors.append(f"pageerror: {e}"))
        self.goto(query)

    def _console(self, msg) -> None:
        self.console.append(f"{msg.type}: {msg.text}")
        if msg.type == "error" and not any(b in msg.text for b in BENIGN_CONSOLE):
            self.console_errors.append(msg.text)

    def goto(self, query: str = "") -> Dict:
        self.page.goto(self.base_url + (f"?{query}" if query else ""))
        return self.wait_ready()

    def wait_ready(self, timeout_ms: int = 60000) -> Dict:
        self.page.wait_for_function("() => window.aulunet && window.aulunet.ready", timeout=timeout_ms)
        self.page.evaluate("async () => { try { await window.aulunet.ready } catch (e) {} }")
        info = self.page.evaluate("() => window.aulunet.info || null")
        if info is None:
            raise RuntimeError(f"the page could not load its model: {self.page.text_content('#error')}")
        return info

    def segment(self, image: Path, timeout_ms: int = 60000) -> Optional[Dict]:
        """Choose `image` in the page's file input; the page's result (mask as bool HxW), or None on an error
        shown by the page (then see `error_text`)."""
        before = self.page.evaluate("() => [window.aulunet.last ? window.aulunet.last.seq : 0, window.aulunet.errors]")
        self.page.set_input_files("#file", str(image))
        self.page.wait_for_function(
            "([seq, errors]) => (window.aulunet.last && window.aulunet.last.seq > seq) || window.aulunet.errors > errors",
            arg=before, timeout=timeout_ms)
        res = self.page.evaluate("""([seq]) => {
            const r = window.aulunet.last;
            if (!r || r.seq <= seq) return null;
            let s = ''; const m = r.mask;
            for (let i = 0; i < m.length; i += 8192) s += String.fromCharCode.apply(null, m.subarray(i, i + 8192));
            return {seq: r.seq, width: r.width, height: r.height, area: r.area, ms: r.ms, file: r.file,
                    runtime: r.runtime, mask: btoa(s)};
        }""", before)
        if res is None:
            return None
        res["mask"] = np.frombuffer(base64.b64decode(res["mask"]), np.uint8).reshape(res["height"], res["width"]) > 0
        return res

    def error_text(self) -> str:
        return self.page.text_content("#error") or ""

    def run_tensor(self, x: np.ndarray) -> np.ndarray:
        """The page's model on a given input tensor (its own layout), logits as float32 (S, S)."""
        b64 = base64.b64encode(np.ascontiguousarray(x, "<f4").tobytes()).decode()
        out = self.page.evaluate("""async (b64) => {
            const bin = atob(b64), u8 = new Uint8Array(bin.length);
            for (let i = 0; i < bin.length; i++) u8[i] = bin.charCodeAt(i);
            const logits = await window.aulunet.runTensor(new Float32Array(u8.buffer));
            const b = new Uint8Array(logits.buffer, logits.byteOffset, logits.byteLength);
            let s = ''; for (let i = 0; i < b.length; i += 8192) s += String.fromCharCode.apply(null, b.subarray(i, i + 8192));
            return btoa(s);
        }""", b64)
        y = np.frombuffer(base64.b64decode(out), "<f4")
        side = int(round(np.sqrt(y.size)))
        return y.reshape(side, side)

    def bench(self, runs: int, warmup: int, warmup_s: float = 0.0) -> List[float]:
        """ms per run of the model alone, on the last photo's input tensor, after at least `warmup` runs and
        `warmup_s` seconds of warm-up."""
        return self.page.evaluate("([r, w, s]) => window.aulunet.bench(r, w, s)", [runs, warmup, warmup_s * 1000])

    def bench_end_to_end(self, runs: int, warmup: int = 2) -> List[float]:
        """ms per run of preprocess + model + probabilities + mask on the last photo's pixels."""
        return self.page.evaluate("([r, w]) => window.aulunet.benchEndToEnd(r, w)", [runs, warmup])

    def foreign_requests(self) -> List[str]:
        """Requests that left the page's own origin (blob: and data: URLs stay in the page)."""
        origin = self.base_url.rstrip("/")
        return [u for u in self.requests if not (u.startswith(origin + "/") or u == origin
                                                 or u.startswith(("blob:", "data:")))]

    def close(self) -> None:
        self.context.close()
