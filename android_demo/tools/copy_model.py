"""Copy the exporter's INT8 .tflite and its metadata into the app's assets:
`python android_demo/tools/copy_model.py [--model exports/<default model>_int8.tflite]`.

The metadata JSON is the one embedded in the .tflite (read through runtimes/), written beside it so the
app can show the source checkpoint and threshold without parsing the flatbuffer.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from model.shipped import export_path  # noqa: E402

ASSETS = REPO / "android_demo" / "app" / "src" / "main" / "assets"
DEFAULT = export_path("_int8.tflite")


def copy(model: Path = DEFAULT, assets: Path = ASSETS) -> Path:
    import runtimes
    from model.checkpoint import atomic_write_text

    if not model.is_file():
        raise SystemExit(f"error: {model}: not found; run python export/to_tflite.py --quantize int8 first")
    meta = runtimes.load(model).metadata
    assets.mkdir(parents=True, exist_ok=True)
    tmp = assets / f".{model.name}.tmp"
    shutil.copyfile(model, tmp)
    tmp.replace(assets / model.name)
    atomic_write_text(assets / (model.stem + ".json"), json.dumps(meta, indent=1, sort_keys=True) + "\n")
    return assets / model.name


def main(argv=None) -> None:
    from model.clitools import HelpFormatter, user_errors

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=HelpFormatter)
    p.add_argument("--model", default=str(DEFAULT), help="the .tflite to embed in the app (with its metadata)")
    print(user_errors(copy)(Path(p.parse_args(argv).model)))


if __name__ == "__main__":
    main()
