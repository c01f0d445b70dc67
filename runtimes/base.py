"""The Segmenter interface shared by every backend (numpy only)."""
from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

from core.errors import InputError, ModelFileError
from core.images import pil_to_rgb  # as the file loader reads it: EXIF orientation, 16-bit grey by bit depth
from core.metadata import METADATA_KEY, TOOLKIT  # noqa: F401  (the backends read what the exporters write)
from core.postprocess import POSTPROCESS_STEPS, apply as apply_postprocess, check_steps
from core.preprocess import INPUT_SIZE, PREPROCESSING, SIZE_MULTIPLE, THRESHOLD, image_problem, preprocess_image, probs_to_image_size, sigmoid

ASSUMED = (f"RGB resized to {INPUT_SIZE}x{INPUT_SIZE}, per-image min-max to [0, 1], one logit per pixel, "
           f"sigmoid, threshold {THRESHOLD}")

# Bounds of a usable model header (checkpoint or export metadata), checked before anything is allocated:
# the shipped widths are 5..60 and the input 256; a header beyond these is damaged or not an AULUNet.
MAX_CHANNELS = 4096        # per stage
MAX_INPUT_SIZE = 4096      # pixels per side
RANGE_SLACK = 1e-3         # run(): how far outside the preprocessed range a value may lie (float rounding)

# Lines of a runtime's message that say where in its C++ sources it failed, not why.
_SOURCE_LINE = re.compile(r"^(Exception from |Check '.*' failed at )|\.(cpp|hpp|cc|cxx|h):\d+|^\[ ?[A-Z_]+ ?\]$")


def reason(exc: BaseException, limit: int = 160) -> str:
    """The line of a runtime's (often long, multi-line) exception message that says what went wrong."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    useful = [ln for ln in lines if not _SOURCE_LINE.search(ln)]
    text = useful[0] if useful else (lines[-1] if lines else type(exc).__name__)
    return text[:limit]


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and np.isfinite(v)


def header_problem(config, preprocessing) -> Optional[str]:
    """What makes a model header (a checkpoint's, or an export's metadata) unusable, as a phrase, or None.
    Checked before a model is built or an input allocated: a config asking for 200,000 channels or a
    20000x20000 input is refused here instead of allocating gigabytes. `config` may be None (foreign files)."""
    stride = config.get("stem_stride", 1) if isinstance(config, dict) else 1
    multiple = SIZE_MULTIPLE * (2 if stride == 2 else 1)  # a stride-2 stem halves once more

    def side_problem(what: str, side) -> Optional[str]:
        if not _is_int(side):
            return f"{what} {side!r} is not a whole number of pixels"
        if not (multiple <= side <= MAX_INPUT_SIZE and side % multiple == 0):
            return f"{what} {side} is not a multiple of {multiple} between {multiple} and {MAX_INPUT_SIZE}"
        return None

    if not isinstance(preprocessing, dict) or not preprocessing:
        return "its 'preprocessing' is empty or not a mapping"
    size = preprocessing.get("input_size")
    if not isinstance(size, (list, tuple)) or len(size) != 2:
        return f"its preprocessing input_size {size!r} is not [side, side]"
    for side in size:
        problem = side_problem("its preprocessing input_size", side)
        if problem:
            return problem
    if size[0] != size[1]:
        return f"its preprocessing input_size {list(size)} is not square"
    scale = preprocessing.get("scale", {"range": [0.0, 1.0]})
    rng = scale.get("range") if isinstance(scale, dict) else None
    if not (isinstance(rng, (list, tuple)) and len(rng) == 2 and all(map(_is_number, rng)) and rng[0] < rng[1]):
        return f"its preprocessing scale {scale!r} has no [low, high] range"
    if config is None:
        return None
    if not isinstance(config, dict):
        return f"its config {type(config).__name__} is not a mapping"
    channels = config.get("channels", (5, 10, 15, 25, 35, 60))
    if not (isinstance(channels, (list, tuple)) and len(channels) == 6
            and all(_is_int(c) and 1 <= c <= MAX_CHANNELS for c in channels)):
        return f"its config channels {channels!r} are not 6 stage widths between 1 and {MAX_CHANNELS}"
    dilations = config.get("akf_dilations", (1, 2))
    if not (isinstance(dilations, (list, tuple)) and 1 <= len(dilations) <= 8
            and all(_is_int(d) and 1 <= d <= 64 for d in dilations)):
        return f"its config akf_dilations {dilations!r} are not 1 to 8 dilations between 1 and 64"
    for key, want in (("in_chans", 3), ("num_classes", 1)):
        if config.get(key, want) != want or not _is_int(config.get(key, want)):
            return f"its config {key} {config.get(key)!r} is not {want} (AULUNet segments RGB images into one class)"
    if "input_size" in config:
        problem = side_problem("its config input_size", config["input_size"])
        if problem:
            return problem
    return None


def as_rgb(image) -> np.ndarray:
    """What predict() accepts, as uint8 HxWx3 RGB: a numpy array (HxWx3 RGB; HxW grey and HxWx4 RGBA are
    converted with a warning, as the file loader does) or a PIL image. Anything else is an InputError."""
    if hasattr(image, "convert") and hasattr(image, "mode") and hasattr(image, "size"):  # PIL.Image
        return pil_to_rgb(image, "predict()", warn=False)
    if isinstance(image, (list, tuple)):
        raise InputError(f"predict() takes one image (an HxWx3 uint8 numpy array or a PIL image), got a "
                         f"{type(image).__name__} of {len(image)}; call it once per image")
    if not isinstance(image, np.ndarray):
        raise InputError(f"predict() takes an HxWx3 uint8 numpy array or a PIL image, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise InputError(f"predict() takes uint8 RGB values 0-255, got dtype {image.dtype}; convert it with "
                         f"np.clip(image, 0, 255).astype(np.uint8) (or use probabilities() for a preprocessed batch)")
    if image.ndim == 2:
        warnings.warn("predict(): grey HxW image converted to RGB", stacklevel=3)
        return np.repeat(image[..., None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 4:
        warnings.warn("predict(): RGBA image converted to RGB (alpha dropped)", stacklevel=3)
        return np.ascontiguousarray(image[..., :3])
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"predict() takes one HxWx3 RGB image, got an array of shape {image.shape}; "
                         f"for a batch, call it once per image")
    return image


class Segmenter:
    """Backends implement `_run(x)`: float32 NCHW (N,3,S,S) -> float32 logits (N,1,S,S).

    Every exported file carries the toolkit's metadata (preprocessing, threshold, source checkpoint); a file
    without it (a foreign model) is refused unless `allow_foreign=True`, which runs it under the ASSUMED
    AULUNet conventions and says so."""

    name = "base"
    exporter = "export/all.py"  # what writes this backend's files (named in error messages)
    fixed_size = True           # exported graphs take only their own input size (the .pt takes any)

    def __init__(self, path: Path, threads: int = 0, allow_foreign: bool = False):
        self.path = Path(path)
        self.threads = threads
        self.allow_foreign = allow_foreign
        self.metadata: Dict = {"preprocessing": PREPROCESSING, "threshold": THRESHOLD}

    @property
    def input_size(self) -> int:
        return int(self.metadata.get("preprocessing", PREPROCESSING)["input_size"][0]) or INPUT_SIZE

    @property
    def input_range(self) -> Tuple[float, float]:
        """The value range of a preprocessed input (metadata preprocessing.scale.range, [0, 1] for AULUNet)."""
        scale = self.metadata.get("preprocessing", PREPROCESSING).get("scale") or PREPROCESSING["scale"]
        lo, hi = scale.get("range", PREPROCESSING["scale"]["range"])
        return float(lo), float(hi)

    @property
    def threshold(self) -> float:
        return float(self.metadata.get("threshold", THRESHOLD))

    @property
    def postprocess(self) -> Tuple[str, ...]:
        """The mask post-processing steps the file's metadata asks for (core/postprocess.py; () when none)."""
        return check_steps(self.metadata.get("postprocess") or ())

    def _import_runtime(self, module: str, package: str):
        """Import a runtime module, or say which package the device lacks."""
        import importlib

        try:
            return importlib.import_module(module)
        except ImportError:
            raise ModelFileError(f"{self.path}: {package} is not installed; pip install {package}") from None

    def _load_failure(self, what: str, exc: Exception, exporter: Optional[str] = None) -> ModelFileError:
        """The one-line error for a file the runtime rejects (runtimes raise long, varied messages)."""
        return ModelFileError(f"{self.path}: {what} ({reason(exc)}); re-export it with {exporter or self.exporter}")

    def _set_metadata(self, raw) -> None:
        """Take the file's embedded metadata (JSON text or None), or refuse a file that has none."""
        if raw is None or (isinstance(raw, (str, bytes)) and not raw.strip()):
            if not self.allow_foreign:
                raise ModelFileError(
                    f"{self.path}: no AULUNet metadata (no '{METADATA_KEY}' entry): not written by this toolkit, so "
                    f"its preprocessing and output are unknown; export a checkpoint with {self.exporter}, or pass "
                    f"--allow-foreign (allow_foreign=True) to run it assuming {ASSUMED}")
            warnings.warn(f"{self.path}: no AULUNet metadata; assuming {ASSUMED}", stacklevel=3)
            self.metadata = {"preprocessing": PREPROCESSING, "threshold": THRESHOLD, "foreign": True}
            return
        try:
            meta = json.loads(raw) if isinstance(raw, (str, bytes)) else raw
        except ValueError:
            raise ModelFileError(f"{self.path}: its '{METADATA_KEY}' metadata is not valid JSON; re-export it with "
                                 f"{self.exporter}") from None
        ok = (isinstance(meta, dict) and meta.get("toolkit") == TOOLKIT and isinstance(meta.get("preprocessing"), dict)
              and _is_number(meta.get("threshold")))
        if not ok:
            raise ModelFileError(f"{self.path}: its '{METADATA_KEY}' metadata lacks toolkit, preprocessing or threshold; "
                                 f"re-export it with {self.exporter}")
        if not 0.0 < float(meta["threshold"]) < 1.0:
            raise ModelFileError(f"{self.path}: its metadata threshold {meta['threshold']} is not a probability between "
                                 f"0 and 1; re-export it with {self.exporter}")
        problem = header_problem(meta.get("config"), meta["preprocessing"])
        if problem:
            raise ModelFileError(f"{self.path}: bad '{METADATA_KEY}' metadata: {problem}; re-export it with {self.exporter}")
        steps = meta.get("postprocess", [])
        if not (isinstance(steps, list) and all(isinstance(s, str) and s in POSTPROCESS_STEPS for s in steps)):
            raise ModelFileError(f"{self.path}: bad '{METADATA_KEY}' metadata: its postprocess {steps!r} is not a list of "
                                 f"{', '.join(POSTPROCESS_STEPS)}; re-export it with {self.exporter}")
        self.metadata = meta

    def _check_input_shape(self, shape, layout: str = "NCHW") -> None:
        """Refuse a graph whose input cannot take (N,3,S,S) images (S from the metadata); dims that are not
        ints (dynamic) match anything."""
        dims = list(shape)
        s = self.input_size
        want = [None, 3, s, s] if layout == "NCHW" else [None, s, s, 3]
        if len(dims) != 4 or any(isinstance(d, int) and d > 0 and w is not None and d != w for d, w in zip(dims, want)):
            raw = ["?" if not (isinstance(d, int) and d > 0) else d for d in dims]
            raise ModelFileError(f"{self.path}: its input is {raw}, not a {layout} batch of 3-channel {s}x{s} images; "
                                 f"this is not an AULUNet export: re-export it with {self.exporter}")

    def _run(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def run(self, x: np.ndarray) -> np.ndarray:
        """Raw tensor run: preprocessed NCHW float32 batch -> logits (N,1,S,S)."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 4 or x.shape[1] != 3:
            raise InputError(f"expected a preprocessed (N,3,H,W) batch, got shape {x.shape}; for one photo use predict()")
        if self.fixed_size and x.shape[2:] != (self.input_size, self.input_size):
            raise InputError(f"{self.path}: takes {self.input_size}x{self.input_size} inputs, got {x.shape[2]}x{x.shape[3]}; "
                             f"preprocess with core.preprocess.preprocess_image (or use predict())")
        if not self.fixed_size and (x.shape[2] % SIZE_MULTIPLE or x.shape[3] % SIZE_MULTIPLE):
            raise InputError(f"{self.path}: input sides must be multiples of {SIZE_MULTIPLE}, got {x.shape[2]}x{x.shape[3]}; "
                             f"preprocess with core.preprocess.preprocess_image (or use predict())")
        if len(x) == 0:
            raise InputError(f"{self.path}: run() got an empty batch (shape {x.shape}); pass at least one image")
        low, high = float(x.min()), float(x.max())  # NaN propagates through both
        if not (np.isfinite(low) and np.isfinite(high)):
            raise InputError("the batch holds NaN or infinite values; preprocess real images with core.preprocess.preprocess_image")
        lo, hi = self.input_range
        if low < lo - RANGE_SLACK or high > hi + RANGE_SLACK:
            raise InputError(f"{self.path}: run() takes the preprocessed batch, values in [{lo:g}, {hi:g}], got "
                             f"{low:.4g}..{high:.4g}; preprocess with core.preprocess.preprocess_image (or pass the "
                             f"uint8 photo to predict())")
        out = self._run(x)
        if out.shape != (len(x), 1, *x.shape[2:]):
            raise RuntimeError(f"{self.path}: {self.name} returned logits of shape {tuple(out.shape)} for a batch "
                               f"{tuple(x.shape)}; this runtime build cannot run this file correctly, use another format here")
        return out

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        return sigmoid(self.run(x))[:, 0]

    def probabilities_tta(self, x: np.ndarray) -> np.ndarray:
        """Test-time augmentation: the mean of the probabilities of x and its horizontal, vertical and double
        flips, each flipped back (four runs per image)."""
        views = ((), (3,), (2,), (2, 3))
        return np.mean([np.flip(self.probabilities(np.ascontiguousarray(np.flip(x, a))), tuple(d - 1 for d in a))
                        for a in views], axis=0)

    def predict(self, image, tta: bool = False, postprocess=None) -> Tuple[np.ndarray, np.ndarray]:
        """One photo of any size -> (probability map, boolean mask) at the photo's own size.

        `image`: uint8 HxWx3 RGB numpy array (OpenCV's BGR must be flipped first) or a PIL image. Images
        smaller than 32x32 or without contrast are refused with an InputError (core.preprocess.image_problem).
        `tta`: average the probabilities over the four flips (probabilities_tta; off by default, ~4x the model's
        time; its accuracy and cost: docs/benchmarks.md).
        `postprocess`: the mask's clean-up (core/postprocess.py), applied to the thresholded full-size mask; the
        probability map is left as the model made it. None: the steps of the file's metadata; a text
        ("none", "largest-component", "fill-holes", "largest-component,fill-holes") or a tuple of step names
        overrides them."""
        steps = self.postprocess if postprocess is None else check_steps(postprocess, "postprocess")
        rgb = as_rgb(image)
        problem = image_problem(rgb)
        if problem:
            raise InputError(problem)
        x = preprocess_image(rgb, self.input_size)[None]
        p = self.probabilities_tta(x) if tta else self.probabilities(x)
        prob = probs_to_image_size(p[0][..., None], rgb.shape[:2])
        return prob, apply_postprocess(prob > self.threshold, steps)
