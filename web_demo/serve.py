"""Serve the web demo on 127.0.0.1: `python web_demo/serve.py [--port 8000] [--model FILE] [--exports DIR]`.

Builds the site (web_demo/build.py: page, runtime files from node_modules/, the exported models) into
web_demo/dist/ and serves that folder only, with the headers threads need (cross-origin isolation:
COOP same-origin, COEP require-corp). Ctrl-C stops it.
"""
from __future__ import annotations

import argparse
import errno
import functools
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from model.clitools import HelpFormatter, user_errors  # noqa: E402
from model.errors import UserError  # noqa: E402
from web_demo.build import DIST, build  # noqa: E402

HEADERS = {
    "Cross-Origin-Opener-Policy": "same-origin",      # with COEP: crossOriginIsolated, so WASM threads work
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-cache",                      # always revalidate: a re-exported model is picked up
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class Handler(SimpleHTTPRequestHandler):
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".js": "text/javascript", ".mjs": "text/javascript",
                      ".wasm": "application/wasm", ".json": "application/json", ".tflite": "application/octet-stream",
                      ".onnx": "application/octet-stream"}
    verbose = False

    def end_headers(self):
        for k, v in HEADERS.items():
            self.send_header(k, v)
        super().end_headers()

    def list_directory(self, path):  # no directory listings
        self.send_error(404, "Not found")
        return None

    def log_message(self, fmt, *args):
        if self.verbose:
            super().log_message(fmt, *args)


class Server:
    """The demo server in a background thread (tests, benchmarks) or the foreground (main)."""

    def __init__(self, root: Path = DIST, port: int = 0, verbose: bool = False):
        handler = type("DemoHandler", (Handler,), {"verbose": verbose})
        try:
            self.httpd = ThreadingHTTPServer(("127.0.0.1", port), functools.partial(handler, directory=str(root)))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise UserError(f"--port {port}: 127.0.0.1:{port} is already in use; pass another --port (or 0 for any free one)") from None
            raise UserError(f"--port {port}: cannot listen on 127.0.0.1:{port} ({e.strerror}); pass another --port") from None
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self._thread: Optional[threading.Thread] = None

    def start(self) -> "Server":
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


@user_errors
def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (0: any free one)")
    p.add_argument("--model", default=None, help="serve only this .onnx or .tflite file (default: the exports the page offers)")
    p.add_argument("--exports", default=None, help="folder of exported models (default exports/)")
    p.add_argument("--out", default=str(DIST), help="where the site is assembled")
    p.add_argument("--verbose", action="store_true", help="log every request and show the runtimes' own output")
    args = p.parse_args(argv)
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port {args.port}: not a port number; pass 0-65535")
    manifest = build(Path(args.out), args.exports, args.model, verbose=args.verbose)
    server = Server(Path(args.out), args.port, args.verbose)
    print(f"AULUNet web demo: {server.url}  (default model {manifest['default']}; Ctrl-C stops)", flush=True)
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()


if __name__ == "__main__":
    main()
