"""Golden pairs for the app's Java core: `python android_demo/tools/make_golden.py OUT_DIR [--data DIR] [--count N]`.

For each image: the RGB bytes as loaded (`NAME.rgb`, HxWx3 uint8), the model input that core/preprocess.py
makes (`NAME.input`, 256x256x3 float32 NHWC, little-endian), the logits of the embedded INT8 .tflite run
in LiteRT (`NAME.logits`, 256x256 float32), the probabilities at the image's size (`NAME.prob`) and the
mask (`NAME.mask`, uint8 0/1); `index.txt` lists `NAME HEIGHT WIDTH SIZE`. The same images run through the
edge model's asset too (`NAME_edge.*`, SIZE 128: its input and logits are 128x128). The Java test must
reproduce them.
`orientation_files` adds the EXIF-orientation pairs (OrientationTest.java): one photo saved as a PNG
with each EXIF orientation 1..8 (`exif_O.png`), its stored pixels (`exif_stored.rgb`) and what the Python
loader makes of each file (`exif_O.rgb`, model.data.load_rgb: the photo as displayed); `orientation.txt`
lists `stored HEIGHT WIDTH` and `O HEIGHT WIDTH` per orientation.
OUT_DIR is the tool's own folder: a new or empty one, or one it wrote before (its manifest lists the files;
a rerun replaces them and removes the cases it no longer writes); every file is written atomically.
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np

import runtimes
from core.clitools import ArgumentParser, add_verbose, check_ranges, quiet, user_errors
from core.errors import DataError, ModelFileError, OutputError
from core.preprocess import preprocess_image, probs_to_image_size, sigmoid
from core.paths import DEFAULT_DATA, EDGE_MODEL, REPO, export_path

APP = REPO / "android_demo"
MODEL = APP / "app" / "src" / "main" / "assets" / export_path("_int8.tflite").name  # the default model's INT8 file
EDGE = MODEL.with_name(export_path("_int8.tflite", EDGE_MODEL).name)  # the edge model's, offered beside it


TOOL = "android_demo/tools/make_golden.py"


def orientation_files(stored: np.ndarray) -> dict:
    """{file name: bytes} of the EXIF-orientation pairs for one stored RGB photo."""
    import tempfile

    from PIL import Image

    from model.data import EXIF_ORIENTATION, ORIENTATIONS, load_rgb

    stored = np.ascontiguousarray(stored, dtype=np.uint8)
    files = {"exif_stored.rgb": stored.tobytes()}
    index = [f"stored {stored.shape[0]} {stored.shape[1]}"]
    with tempfile.TemporaryDirectory() as tmp:
        for o in sorted(ORIENTATIONS):
            exif = Image.Exif()
            exif[EXIF_ORIENTATION] = o
            png = Path(tmp) / f"exif_{o}.png"
            Image.fromarray(stored).save(png, exif=exif)
            shown = load_rgb(png)
            files[png.name] = png.read_bytes()
            files[f"exif_{o}.rgb"] = np.ascontiguousarray(shown).tobytes()
            index.append(f"{o} {shown.shape[0]} {shown.shape[1]}")
    files["orientation.txt"] = ("\n".join(index) + "\n").encode()
    return files


def write_cases(out: Path, images, model: Path = MODEL, extra: dict = None, edge: Path = EDGE) -> None:
    """Golden files of `images` ((name, RGB uint8) pairs) through `model` and, named NAME_edge, through `edge`,
    plus `extra` {name: bytes}, in `out`, a folder this tool owns (OwnedFolder)."""
    from core.safeio import OwnedFolder

    segs = [(runtimes.load(model, threads=1), ""), (runtimes.load(edge, threads=1), "_edge")]
    folder = OwnedFolder(out, TOOL, "OUT_DIR")  # before any work: a folder of someone else's files is refused
    index, files = [], {}
    for seg, tag in segs:
        for image_name, rgb in images:
            name = image_name + tag
            x = preprocess_image(rgb, seg.input_size)
            logits = seg.run(x[None])[0, 0]
            prob = probs_to_image_size(sigmoid(logits)[..., None], rgb.shape[:2])
            files[f"{name}.rgb"] = np.ascontiguousarray(rgb, dtype=np.uint8).tobytes()
            files[f"{name}.input"] = x.transpose(1, 2, 0).astype("<f4").tobytes()
            files[f"{name}.logits"] = logits.astype("<f4").tobytes()
            files[f"{name}.prob"] = prob.astype("<f4").tobytes()
            files[f"{name}.mask"] = (prob > seg.threshold).astype(np.uint8).tobytes()
            index.append(f"{name} {rgb.shape[0]} {rgb.shape[1]} {seg.input_size}")
    files["index.txt"] = ("\n".join(index) + "\n").encode()
    files.update(extra or {})
    for rel in files:  # check all, then write: a file in the way that the tool did not make stops the run here
        p = out / rel
        if p.exists() and rel not in folder.files:
            raise OutputError(f"{p}: exists and was not made by {TOOL}; move it away or pass another OUT_DIR")
    for rel, data in files.items():
        folder.write_bytes(rel, data)
    folder.remove_unlisted(files)
    folder.save()


@user_errors
def main(argv=None) -> None:
    from model.data import load_rgb, open_dataset

    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", help="folder for the golden files (new, empty, or written by this tool before)")
    p.add_argument("--data", default=str(DEFAULT_DATA), help="dataset whose val images are used")
    p.add_argument("--count", type=int, default=3, help="how many val images")
    add_verbose(p)
    args = p.parse_args(argv)
    check_ranges(args, {"count": 1})
    for asset in (MODEL, EDGE):
        if not asset.is_file():
            raise ModelFileError(f"{asset}: the app's model asset is missing; run python android_demo/tools/copy_model.py "
                                 f"--update-results --model exports/{asset.name}")
    data = Path(args.data)
    if not data.is_dir():
        raise DataError(f"--data {data}: folder not found; pass a dataset folder with images/ and masks/ "
                        f"(default: {DEFAULT_DATA})")
    samples = open_dataset(data).subset("val")[: args.count]
    if not samples:
        raise DataError(f"--data {data}: no val images; pass a dataset with a val split")
    cases = [(s.id, load_rgb(s.image)) for s in samples]
    with quiet(args.verbose):  # LiteRT's delegate chatter
        write_cases(Path(args.out), cases, extra=orientation_files(cases[0][1][:61, :83]))  # a small non-square crop
    print(f"wrote {len(samples)} golden case(s) to {args.out}")


if __name__ == "__main__":
    main()
