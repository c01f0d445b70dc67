"""Serve the web demo on 127.0.0.1: `python web_demo/serve.py [--port 8000] [--model FILE] [--exports DIR]`.

Builds the site (web_demo/build.py: page, runtime files from node_modules/, the exported models) into
web_demo/dist/ and serves that folder only, with the headers threads need (cross-origin isolation:
COOP same-origin, COEP require-corp). Ctrl-C stops it.

Only regular files whose real path is inside the folder are served (no link out of it, no hidden file), only
to requests whose Host is this server's own address (127.0.0.1, localhost or [::1] with its port; others get
421, so a rebound DNS name cannot read it), and every response carries the page's Content-Security-Policy
(plus frame-ancestors 'none'), X-Frame-Options DENY, nosniff and no-referrer. A malformed path gets 400.
"""
from __future__ import annotations

import errno
import functools
import stat
import sys
import threading
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional, Tuple
from urllib.parse import unquote

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.clitools import ArgumentParser, HelpFormatter, user_errors  # noqa: E402
from core.errors import UserError  # noqa: E402
from web_demo.build import DIST, build, page_csp  # noqa: E402

HEADERS = {
    "Cross-Origin-Opener-Policy": "same-origin",      # with COEP: crossOriginIsolated, so WASM threads work
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-cache",                      # always revalidate: a re-exported model is picked up
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",                        # no other page may frame this one (with frame-ancestors)
}
# sent as a header on every response: the page's own policy (its meta tag, with the import map's hash) and what
# a meta tag cannot say (frame-ancestors); a folder without index.html gets the fallback
FALLBACK_CSP = "default-src 'self'; object-src 'none'; base-uri 'self'; form-action 'none'"
MAX_PATH = 1024  # longer request paths are refused (414); no served file comes close


def site_csp(root: Path) -> str:
    try:
        policy = page_csp((root / "index.html").read_text(encoding="utf-8")) or FALLBACK_CSP
    except (OSError, ValueError):
        policy = FALLBACK_CSP
    return f"{policy.rstrip('; ')}; frame-ancestors 'none'"


class Handler(SimpleHTTPRequestHandler):
    """Serves regular files inside the site folder only, to requests addressed to this server's own host:port."""

    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".js": "text/javascript", ".mjs": "text/javascript",
                      ".wasm": "application/wasm", ".json": "application/json", ".tflite": "application/octet-stream",
                      ".onnx": "application/octet-stream"}
    verbose = False
    csp = FALLBACK_CSP

    def end_headers(self):
        for k, v in HEADERS.items():
            self.send_header(k, v)
        self.send_header("Content-Security-Policy", self.csp)
        super().end_headers()

    def host_allowed(self) -> bool:
        """DNS rebinding: a page of another name resolved to 127.0.0.1 sends its own Host, which is refused."""
        port = self.server.server_address[1]
        host = (self.headers.get("Host") or "").strip().lower()
        names = ("127.0.0.1", "localhost", "[::1]")
        return host in {f"{n}:{port}" for n in names} or (port == 80 and host in names)  # :80 may go unsaid

    def site_file(self) -> Tuple[int, Optional[str]]:
        """(200, the file) for a request path naming a regular file inside the folder; (status, None) otherwise."""
        raw = self.path.split("?", 1)[0].split("#", 1)[0]
        if len(raw) > MAX_PATH:
            return HTTPStatus.REQUEST_URI_TOO_LONG, None
        try:
            path = unquote(raw, errors="strict")
        except UnicodeDecodeError:  # e.g. /%ff: no file has such a name
            return HTTPStatus.BAD_REQUEST, None
        if not path.startswith("/") or any(c < " " or c == "\x7f" or c == "\\" for c in path):
            return HTTPStatus.BAD_REQUEST, None  # NUL, control characters, backslashes
        parts = [p for p in path.split("/") if p]
        if any(p == ".." for p in parts):
            return HTTPStatus.BAD_REQUEST, None
        if any(p.startswith(".") for p in parts):  # hidden files: the build's manifest, temporaries
            return HTTPStatus.NOT_FOUND, None
        root = Path(self.directory).resolve()
        try:
            target = root.joinpath(*parts).resolve()
            if target == root:
                target = (root / "index.html").resolve()
            target.relative_to(root)  # a symbolic link out of the folder is not followed
            ok = stat.S_ISREG(target.stat().st_mode)
        except (OSError, ValueError, RuntimeError):
            return HTTPStatus.NOT_FOUND, None
        return (HTTPStatus.OK, str(target)) if ok else (HTTPStatus.NOT_FOUND, None)

    def send_head(self):
        if not self.host_allowed():
            self.send_error(HTTPStatus.MISDIRECTED_REQUEST, "Host is not this server's own address")
            return None
        status, self._file = self.site_file()
        if status != HTTPStatus.OK:
            self.send_error(status)
            return None
        return super().send_head()

    def translate_path(self, path):  # only after site_file() has checked it
        return self._file

    def list_directory(self, path):  # no directory listings
        self.send_error(404, "Not found")
        return None

    def log_message(self, fmt, *args):
        if self.verbose:
            super().log_message(fmt, *args)


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        """A request that broke the handler: one line (with --verbose), never a traceback."""
        if getattr(self.RequestHandlerClass, "verbose", False):
            sys.stderr.write(f"{client_address[0]}: request failed ({sys.exc_info()[1]!r})\n")


class Server:
    """The demo server in a background thread (tests, benchmarks) or the foreground (main)."""

    def __init__(self, root: Path = DIST, port: int = 0, verbose: bool = False):
        handler = type("DemoHandler", (Handler,), {"verbose": verbose, "csp": site_csp(Path(root))})
        try:
            self.httpd = QuietServer(("127.0.0.1", port), functools.partial(handler, directory=str(root)))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise UserError(f"--port {port}: 127.0.0.1:{port} is already in use; pass another --port (or 0 for any free one)") from None
            raise UserError(f"--port {port}: cannot listen on 127.0.0.1:{port} ({e.strerror}); pass another --port") from None
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
    p = ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
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
