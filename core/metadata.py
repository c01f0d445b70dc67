"""The keys every model file written by this toolkit carries about itself (exporters write them, runtimes read them)."""
from __future__ import annotations

from . import __version__

METADATA_KEY = "aulunet"   # ONNX metadata_props / OpenVINO rt_info / TFLite metadata name holding the JSON metadata
TOOLKIT = "aulunet-edge"   # metadata["toolkit"] of every file this toolkit's exporters write
TOOLKIT_VERSION = __version__  # metadata["toolkit_version"] and every checkpoint's
BIN_SHA_KEY = "bin_sha256"  # OpenVINO: sha256 of the .bin the .xml was exported with
