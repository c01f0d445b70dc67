"""Copy the exporter's INT8 .tflite and its metadata into the app's assets:
`python android_demo/tools/copy_model.py --update-results [--model exports/<default model>_int8.tflite]`
(and `--model exports/<edge model>_int8.tflite` for the edge model the app offers beside it).

Only what the app loads is accepted: the INT8 .tflite named as `ModelSpec.ASSET` or `ModelSpec.EDGE_ASSET`
(android_demo/core/.../ModelSpec.java), with the input layout and threshold ModelSpec states; anything else
(an fp32 or fp16 file, an .onnx, another model's name) is refused before anything is written. The metadata
JSON is the one embedded in the .tflite (read through runtimes/), written beside it as
`ModelSpec.METADATA_ASSET` so the app can show the source checkpoint and threshold without parsing the
flatbuffer. The app's assets are a committed result: replacing them needs --update-results (an asset that
already equals the export is left as it is, without the flag); in another --assets folder an existing file
is replaced only with --overwrite. Both files are written atomically.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Dict, Optional, Sequence

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from core.paths import REPO  # noqa: E402

from core.clitools import ArgumentParser, add_verbose, quiet, user_errors  # noqa: E402
from core.errors import ModelFileError, UserError  # noqa: E402
from core.paths import export_path  # noqa: E402

ASSETS = REPO / "android_demo" / "app" / "src" / "main" / "assets"
MODEL_SPEC = REPO / "android_demo" / "core" / "src" / "main" / "java" / "org" / "aulunet" / "core" / "ModelSpec.java"
DEFAULT = export_path("_int8.tflite")


def model_spec(path: Path = MODEL_SPEC) -> Dict[str, str]:
    """ModelSpec.java's constants (ASSET, METADATA_ASSET, LAYOUT, THRESHOLD, ...) as strings."""
    found = re.findall(r"static final \w+ (\w+) = ([^;]+);", path.read_text())
    return {k: v.strip().strip('"') if v.strip().startswith('"') else v.strip().rstrip("fF") for k, v in found}


def check_model(model: Path, spec: Dict[str, str], verbose: bool = False) -> Dict:
    """The .tflite's embedded metadata when it is what the app loads; ModelFileError naming the file otherwise."""
    import runtimes

    asset = spec["ASSET"]
    edge = spec.get("EDGE_ASSET")
    fix = f"the app loads the INT8 .tflite {asset} (ModelSpec.ASSET){f' or {edge} (ModelSpec.EDGE_ASSET)' if edge else ''}; " \
          f"pass exports/{asset} (python export/to_tflite.py --quantize int8)"
    if not model.is_file():
        raise ModelFileError(f"--model {model}: not found; {fix}")
    if model.suffix != ".tflite":
        raise ModelFileError(f"--model {model}: a {model.suffix or 'suffix-less'} file, not a .tflite; {fix}")
    if model.name not in (asset, edge):
        raise ModelFileError(f"--model {model}: the app loads {asset} (ModelSpec.ASSET)"
                             f"{f' or {edge} (ModelSpec.EDGE_ASSET)' if edge else ''}, not {model.name}; "
                             f"pass exports/{asset}, or change ModelSpec.ASSET and METADATA_ASSET first")
    with quiet(verbose):  # LiteRT's "Created TensorFlow Lite XNNPACK delegate" chatter
        meta = runtimes.load(model).metadata  # a file LiteRT cannot read is a ModelFileError naming it
    quant = meta.get("quantization", "none")
    if meta.get("format") != "tflite" or quant != "int8":
        raise ModelFileError(f"--model {model}: its metadata says {meta.get('format')} quantization {quant}, "
                             f"not an INT8 .tflite; {fix}")
    layout = (meta.get("input") or {}).get("layout")
    if "LAYOUT" in spec and layout != spec["LAYOUT"]:
        raise ModelFileError(f"--model {model}: input layout {layout}, the app feeds {spec['LAYOUT']} (ModelSpec.LAYOUT); {fix}")
    size = (meta.get("preprocessing") or {}).get("input_size", [0])[0]
    want = spec.get("EDGE_INPUT_SIZE" if model.name == edge else "INPUT_HEIGHT")
    if want is not None and int(size) != int(want):
        raise ModelFileError(f"--model {model}: input {size}x{size}, the app feeds {want}x{want} "
                             f"(ModelSpec.{'EDGE_INPUT_SIZE' if model.name == edge else 'INPUT_HEIGHT'}); {fix}")
    if "THRESHOLD" in spec and float(meta.get("threshold", -1)) != float(spec["THRESHOLD"]):
        raise ModelFileError(f"--model {model}: threshold {meta.get('threshold')}, the app applies "
                             f"{spec['THRESHOLD']} (ModelSpec.THRESHOLD); change ModelSpec.THRESHOLD or re-export")
    return meta


def copy(model: Path = DEFAULT, assets: Path = ASSETS, update_results: bool = False, overwrite: bool = False,
         spec: Optional[Dict[str, str]] = None, verbose: bool = False) -> Path:
    """Check everything, then write both assets atomically; returns the .tflite's path in `assets`."""
    from core.safeio import atomic_copy, atomic_write_text, check_replace, ensure_writable_dir, guard_committed

    spec = spec or model_spec()
    meta = check_model(Path(model), spec, verbose)
    text = json.dumps(meta, indent=1, sort_keys=True) + "\n"
    prefix = "EDGE_" if Path(model).name == spec.get("EDGE_ASSET") else ""
    asset, meta_asset = assets / spec[f"{prefix}ASSET"], assets / spec[f"{prefix}METADATA_ASSET"]
    targets = {asset: Path(model).read_bytes(), meta_asset: text.encode()}
    todo = {dst: data for dst, data in targets.items() if not (dst.is_file() and dst.read_bytes() == data)}
    if not todo:
        return asset  # already the export: nothing to replace
    for dst in todo:
        guard_committed(dst, "--update-results", update_results, "--assets DIR for a copy elsewhere")
        check_replace(dst, "copy_model.py", allowed=overwrite or update_results, flag="--overwrite")
    ensure_writable_dir(assets, "--assets")
    for dst, data in todo.items():
        if dst.suffix == ".tflite":
            atomic_copy(model, dst)
        else:
            atomic_write_text(dst, text)
    return asset


@user_errors
def main(argv: Optional[Sequence[str]] = None) -> Path:
    p = ArgumentParser(description=__doc__.splitlines()[0], epilog="\n".join(__doc__.splitlines()[2:]))
    p.add_argument("--model", default=str(DEFAULT), help="the INT8 .tflite to embed in the app (with its metadata)")
    p.add_argument("--assets", default=str(ASSETS), help="the app's assets folder")
    p.add_argument("--update-results", action="store_true",
                   help="replace the committed assets under android_demo/app (needed after re-exporting the model)")
    p.add_argument("--overwrite", action="store_true", help="replace existing files in another --assets folder")
    add_verbose(p)
    args = p.parse_args(argv)
    assets = Path(args.assets)
    if assets.exists() and not assets.is_dir():
        raise UserError(f"--assets {assets}: is a file, not a folder; pass the app's assets folder")
    out = copy(Path(args.model), assets, args.update_results, args.overwrite, verbose=args.verbose)
    print(out)
    return out


if __name__ == "__main__":
    main()
