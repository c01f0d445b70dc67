"""The toolkit's foundation: everything every other package shares, in the standard library and numpy only.

No torch, and no import of any other package of this repository: `runtimes` (and the device-side benchmark
runner) sit on it, `model` on both, `export` on `model`, and the tools (benchmarks, web_demo, the Android
tools, docs) on top; tests/test_layers.py enforces the order (docs/architecture.md).

    errors.py      the user-error types (one-line messages)
    safeio.py      atomic writes and the output policy (what a tool may write where)
    clitools.py    --help, one-line `error:` exits, flag range checks, --verbose / quiet
    paths.py       the repository root, ../shared/data, weights, exports, outputs; the shipped models
    preprocess.py  the one preprocessing (numpy); images.py: PIL images -> RGB as every reader sees them
    metrics.py     pooled DSC / mIoU / ... and the metric keys every result reports
    postprocess.py the optional mask clean-up (largest component, fill holes) a model file may ask for
    formats.py     the table of model-file formats; metadata.py: the keys every model file carries
"""

__version__ = "0.1.0"  # the toolkit's version: pyproject.toml reads it (tool.setuptools.dynamic)
