"""Golden pairs for the app's Java core: `python android_demo/tools/make_golden.py OUT_DIR [--data DIR] [--count N]`.

For each image: the RGB bytes as loaded (`NAME.rgb`, HxWx3 uint8), the model input that model/preprocess.py
makes (`NAME.input`, 256x256x3 float32 NHWC, little-endian), the logits of the embedded INT8 .tflite run
in LiteRT (`NAME.logits`, 256x256 float32), the probabilities at the image's size (`NAME.prob`) and the
mask (`NAME.mask`, uint8 0/1); `index.txt` lists `NAME HEIGHT WIDTH`. The Java test must reproduce them.

`write_orientation_cases` adds the EXIF-orientation pairs (OrientationTest.java): one photo saved as a PNG
with each EXIF orientation 1..8 (`exif_O.png`), its stored pixels (`exif_stored.rgb`) and what the Python
loader makes of each file (`exif_O.rgb`, model.data.load_rgb: the photo as displayed); `orientation.txt`
lists `stored HEIGHT WIDTH` and `O HEIGHT WIDTH` per orientation.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np

import runtimes
from model.preprocess import preprocess_image, probs_to_image_size, sigmoid
from model.shipped import DEFAULT_DATA, export_path

APP = Path(__file__).resolve().parents[1]
MODEL = APP / "app" / "src" / "main" / "assets" / export_path("_int8.tflite").name  # the default model's INT8 file


def write_cases(out: Path, images, model: Path = MODEL) -> None:
    seg = runtimes.load(model, threads=1)
    out.mkdir(parents=True, exist_ok=True)
    index = []
    for name, rgb in images:
        x = preprocess_image(rgb)
        logits = seg.run(x[None])[0, 0]
        prob = probs_to_image_size(sigmoid(logits)[..., None], rgb.shape[:2])
        np.ascontiguousarray(rgb, dtype=np.uint8).tofile(out / f"{name}.rgb")
        x.transpose(1, 2, 0).astype("<f4").tofile(out / f"{name}.input")
        logits.astype("<f4").tofile(out / f"{name}.logits")
        prob.astype("<f4").tofile(out / f"{name}.prob")
        (prob > seg.threshold).astype(np.uint8).tofile(out / f"{name}.mask")
        index.append(f"{name} {rgb.shape[0]} {rgb.shape[1]}")
    (out / "index.txt").write_text("\n".join(index) + "\n")


def write_orientation_cases(out: Path, stored: np.ndarray) -> None:
    from PIL import Image

    from model.data import EXIF_ORIENTATION, ORIENTATIONS, load_rgb

    out.mkdir(parents=True, exist_ok=True)
    stored = np.ascontiguousarray(stored, dtype=np.uint8)
    stored.tofile(out / "exif_stored.rgb")
    index = [f"stored {stored.shape[0]} {stored.shape[1]}"]
    for o in sorted(ORIENTATIONS):
        exif = Image.Exif()
        exif[EXIF_ORIENTATION] = o
        png = out / f"exif_{o}.png"
        Image.fromarray(stored).save(png, exif=exif)
        shown = load_rgb(png)
        shown.tofile(out / f"exif_{o}.rgb")
        index.append(f"{o} {shown.shape[0]} {shown.shape[1]}")
    (out / "orientation.txt").write_text("\n".join(index) + "\n")


def main(argv=None) -> None:
    from model.data import load_rgb, open_dataset

    from model.clitools import HelpFormatter, check_ranges

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=HelpFormatter)
    p.add_argument("out", help="folder for the golden files")
    p.add_argument("--data", default=str(DEFAULT_DATA), help="dataset whose val images are used")
    p.add_argument("--count", type=int, default=3, help="how many val images")
    args = p.parse_args(argv)
    check_ranges(args, {"count": 1})
    samples = open_dataset(Path(args.data)).subset("val")[: args.count]
    write_cases(Path(args.out), [(s.id, load_rgb(s.image)) for s in samples])
    write_orientation_cases(Path(args.out), load_rgb(samples[0].image)[:61, :83])  # a small non-square crop


if __name__ == "__main__":
    main()
