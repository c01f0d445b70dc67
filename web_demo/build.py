"""Assemble the static site: `python web_demo/build.py [--out web_demo/dist] [--exports DIR] [--model FILE]`.

No bundler: the page's own files (`site/`), the few runtime files it loads from `node_modules/` (installed by
`npm ci`, pinned in package-lock.json), the exported models and `models/manifest.json` are copied into one
folder that any static server can host (it must send the COOP/COEP headers of `serve.py` for threads). The
page's Content-Security-Policy (`connect-src 'self'` etc.) gets the hash of its inline import map here.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import sys
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Union

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.paths import REPO  # noqa: E402

from core.clitools import ArgumentParser, HelpFormatter, add_verbose, quiet, user_errors  # noqa: E402
from core.errors import OutputError, UserError  # noqa: E402
from core.safeio import OWNED_MANIFEST, OwnedFolder, atomic_write_text  # noqa: E402
from web_demo import models  # noqa: E402

HERE = REPO / "web_demo"
SITE = HERE / "site"
NODE_MODULES = HERE / "node_modules"
DIST = HERE / "dist"
TOOL = "web_demo/build.py"
INSTALL_HINT = "run `bash run.sh web` or `npm ci --prefix web_demo`"

# served path -> file under node_modules/ (only what the page loads; the ORT "wasm" build, not the 28 MB default)
VENDOR: Dict[str, str] = {
    "vendor/ort/ort.wasm.min.mjs": "onnxruntime-web/dist/ort.wasm.min.mjs",
    "vendor/ort/ort-wasm-simd-threaded.mjs": "onnxruntime-web/dist/ort-wasm-simd-threaded.mjs",
    "vendor/ort/ort-wasm-simd-threaded.wasm": "onnxruntime-web/dist/ort-wasm-simd-threaded.wasm",
    "vendor/litert/core/index.js": "@litertjs/core/dist/index.js",
    "vendor/litert/wasm-utils/index.js": "@litertjs/wasm-utils/dist/index.js",
    # LiteRT.js picks one by browser features: relaxed SIMD (Chromium), + threads, or neither (compat)
    **{f"vendor/litert/wasm/litert_wasm_{v}internal.{e}": f"@litertjs/core/wasm/litert_wasm_{v}internal.{e}"
       for v in ("", "threaded_", "compat_") for e in ("js", "wasm")},
}

# what core.js implements; a model whose metadata asks for other preprocessing is refused
PREPROCESSING_KEYS = ("version", "input_size", "color", "resize", "scale", "output")


class BuildError(UserError):
    """The site cannot be built from what is here; the message names the file and the fix."""


def pinned_versions() -> Dict[str, str]:
    return json.loads((HERE / "package.json").read_text())["dependencies"]


def check_node_modules(node_modules: Path = NODE_MODULES) -> None:
    for name, version in pinned_versions().items():
        pkg = node_modules / name / "package.json"
        if not pkg.is_file():
            raise BuildError(f"{pkg.parent}: npm package {name} is not installed; {INSTALL_HINT}")
        got = json.loads(pkg.read_text()).get("version")
        if got != version:
            raise BuildError(f"{pkg.parent}: {name} {got} is installed but package.json pins {version}; {INSTALL_HINT}")


def model_entry(path: Path, fmt: str, quantize: Optional[str], verbose: bool = False) -> Dict:
    """The manifest's entry for one file (`quantize` None: as its metadata says)."""
    import runtimes
    from core.preprocess import PREPROCESSING, SIZE_MULTIPLE
    from runtimes.onnx_backend import LEVEL_FOR_FLOAT, LEVEL_FOR_INT8

    with quiet(verbose):  # the runtimes' own start-up lines
        meta = runtimes.load(path, threads=1).metadata
    pre = meta.get("preprocessing", {})

    quantize = quantize or meta.get("quantization", "none")
    size = pre.get("input_size") or [0]
    if not (len(size) == 2 and size[0] == size[1] and size[0] > 0 and size[0] % SIZE_MULTIPLE == 0):
        raise BuildError(f"{path}: its input_size {size!r} is not a square multiple of {SIZE_MULTIPLE}; the page "
                         f"runs square inputs of any such side; re-export it with the current toolkit")
    for key in PREPROCESSING_KEYS:
        if key != "input_size" and pre.get(key) != PREPROCESSING[key]:
            raise BuildError(f"{path}: its preprocessing '{key}' is {pre.get(key)!r}, but the page implements "
                             f"{PREPROCESSING[key]!r}; re-export it with the current toolkit or update site/core.js")
    entry = {
        "file": path.name, "format": fmt, "runtime": models.RUNTIMES[fmt], "quantize": quantize,
        "layout": meta.get("input", {}).get("layout", "NCHW"), "input_size": pre["input_size"][0],
        "threshold": float(meta.get("threshold", 0.5)), "bytes": path.stat().st_size,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "source_checkpoint": (meta.get("source_checkpoint") or {}).get("file"),
        "postprocess": list(meta.get("postprocess") or []),  # the mask clean-up core.js repeats (core/postprocess.py)
    }
    if fmt == "onnx":  # the Python backend's rule (runtimes/onnx_backend.py), in onnxruntime-web's words
        level = LEVEL_FOR_INT8 if meta.get("quantization") == "int8" else LEVEL_FOR_FLOAT
        entry["graph_optimization"] = {"ORT_ENABLE_EXTENDED": "extended", "ORT_ENABLE_ALL": "all"}[level]
    return entry


def input_checks() -> Dict:
    """The photo checks of core/preprocess.py (too small, no contrast), for the page to repeat."""
    import core.preprocess as pre

    return {"min_image_side": getattr(pre, "MIN_IMAGE_SIDE", 0), "min_contrast": getattr(pre, "MIN_CONTRAST", 0)}


def page_html(site: Path) -> bytes:
    """index.html with the sha256 of its inline import map in the CSP, so no other inline script can run."""
    html = (site / "index.html").read_text()
    m = re.search(r'<script type="importmap">(.*?)</script>', html, re.S)
    if not m or "__IMPORTMAP_SHA256__" not in html:
        raise BuildError(f"{site / 'index.html'}: no inline import map or CSP placeholder __IMPORTMAP_SHA256__; restore it")
    digest = base64.b64encode(hashlib.sha256(m.group(1).encode()).digest()).decode()
    return html.replace("__IMPORTMAP_SHA256__", f"sha256-{digest}").encode()


def page_csp(html: str) -> Optional[str]:
    """The Content-Security-Policy of a built index.html's meta tag (serve.py sends it as a header too)."""
    m = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)"', html)
    return m.group(1) if m else None


def legacy_build(out: Path, wanted: Iterable[str]) -> Optional[List[str]]:
    """The files of a site an earlier build.py (before manifests) made in the default folder, or None.

    Accepted only when every file there is one a build makes: a page or runtime file, models/manifest.json
    and the models that manifest lists. Anything else (a file of the user's) and it is not ours.
    """
    if out.resolve() != DIST.resolve() or (out / OWNED_MANIFEST).exists():
        return None
    try:
        listed = {f"models/{m['file']}" for m in json.loads((out / "models" / "manifest.json").read_text())["models"]}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    found = [p for p in out.rglob("*") if p.is_symlink() or not p.is_dir()]
    rels = {p.relative_to(out).as_posix() for p in found}
    allowed = set(wanted) | listed | {"models/manifest.json"}
    if any(p.is_symlink() for p in found) or not rels <= allowed or "index.html" not in rels:
        return None
    return sorted(rels)


def open_site(out: Path, wanted: Iterable[str]) -> OwnedFolder:
    """The site folder as build.py's own (rule 2 of core/safeio.py): refused when it holds files it did not make."""
    legacy = legacy_build(out, wanted) if out.is_dir() else None
    if legacy is not None:  # adopt the earlier build: from now on its manifest says what is ours
        atomic_write_text(out / OWNED_MANIFEST, json.dumps({"tool": TOOL, "files": legacy}, indent=1) + "\n")
    return OwnedFolder(out, TOOL)


def _same_file(dst: Path, src: Path) -> bool:
    if dst.is_symlink() or not dst.is_file():
        return False
    s, d = src.stat(), dst.stat()
    return d.st_size == s.st_size and d.st_mtime_ns == s.st_mtime_ns


def build(out: Path = DIST, exports: Optional[Path] = None, model: Optional[Path] = None,
          node_modules: Path = NODE_MODULES, verbose: bool = False) -> Dict:
    """Assemble `out`; returns the manifest. `model` (a .onnx or .tflite file) replaces the offered set.

    Everything is checked before anything is written; each file is written atomically; `out` must be empty,
    new, or a site this tool built (its manifest); files it built before and no longer needs are removed,
    nothing else is.
    """
    check_node_modules(node_modules)
    exports = Path(exports) if exports else models.EXPORTS
    if model is not None:
        model = Path(model)
        fmt = {models.FORMATS[k].suffix: k for k in models.RUNTIMES}.get(model.suffix.lower())
        if fmt is None:
            raise BuildError(f"{model}: the page runs .onnx (onnxruntime-web) or .tflite (LiteRT.js) files; pass one of those")
        if not model.is_file():
            raise BuildError(f"{model}: model file not found; check --model or export it first (python export/all.py --update-results)")
        chosen = [(model, fmt, None)]
    else:
        default = models.default_file(exports)
        if not default.is_file():
            raise BuildError(f"{default}: the page's default model is missing; export it (python export/all.py --update-results) "
                             f"or pass --exports DIR / --model FILE")
        chosen = [(p, f, q) for p, f, q in models.offered(exports) if p.is_file()]
    entries = [model_entry(p, f, q, verbose) for p, f, q in chosen]
    manifest = {"default": chosen[0][0].name if model is not None else models.default_file(exports).name,
                "models": entries, "input_checks": input_checks()}

    # the whole site, planned: served path -> a source file to copy, or the bytes to write
    plan: Dict[str, Union[Path, bytes]] = {}
    for src in sorted(SITE.rglob("*")):
        if src.is_file():
            rel = src.relative_to(SITE).as_posix()
            plan[rel] = page_html(SITE) if rel == "index.html" else src
    for served, rel in VENDOR.items():
        src = node_modules / rel
        if not src.is_file():
            raise BuildError(f"{src}: missing from the installed npm package; {INSTALL_HINT}")
        plan[served] = src
    for p, _, _ in chosen:
        plan[f"models/{p.name}"] = p
    plan["models/manifest.json"] = (json.dumps(manifest, indent=1) + "\n").encode()

    out = Path(os.path.abspath(out))  # error messages name the folder, even for `--out .`
    site = open_site(out, plan)
    for rel in plan:
        dst = out / rel
        if (dst.exists() or dst.is_symlink()) and rel not in site.files:
            raise OutputError(f"{dst}: exists and was not made by {TOOL}; move it away or pass another --out "
                              f"(nothing was changed)")
    site.files |= set(plan)
    site.save()  # first: a build killed half-way leaves a folder the next build still knows as its own
    for rel, what in plan.items():
        dst = out / rel
        if isinstance(what, bytes):
            if not (dst.is_file() and not dst.is_symlink() and dst.read_bytes() == what):
                site.write_bytes(rel, what)
        elif not _same_file(dst, what):
            site.copy(what, rel)
            st = what.stat()
            os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))  # unchanged next time: not copied again
    site.remove_unlisted(plan)  # e.g. a model no longer offered: the site holds exactly what the manifest says
    site.save()
    return manifest


@user_errors
def main(argv=None) -> None:
    p = ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--out", default=str(DIST), help="folder for the site: new, empty, or one this tool built before")
    p.add_argument("--exports", default=None, help=f"folder of exported models (default {models.EXPORTS})")
    p.add_argument("--model", default=None, help="serve only this .onnx or .tflite file")
    add_verbose(p)
    args = p.parse_args(argv)
    manifest = build(Path(args.out), args.exports, args.model, verbose=args.verbose)
    print(f"{args.out}: {len(manifest['models'])} model(s), default {manifest['default']}")


if __name__ == "__main__":
    main()
