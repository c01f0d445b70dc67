"""Where things are (stdlib only): the repository, the data, the weights, the exports, the outputs; the shipped
checkpoints and the one every command uses by default.

Every module finds the repository through REPO here (scripts put it on sys.path with the one idiom of
docs/architecture.md, then import this).

Change DEFAULT_MODEL here, and only here, to switch the default of `bash run.sh`, evaluate, the
exporters, the benchmarks and the demos' tools; its dataset comes with it (the folder of that name
under ../shared/data, where the checkpoint's own metadata also points).
"""
from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WEIGHTS_DIR = REPO / "model" / "weights"
EXPORTS_DIR = REPO / "exports"            # the committed exports (docs, demos and benchmarks read them)
OUTPUTS = REPO / "outputs"                # what runs write by default (git-ignored; core/safeio.py, rule 3)
BENCHMARK_RESULTS = REPO / "benchmarks" / "results"  # the committed benchmark results (--update-results)
SHARED_DATA = REPO.parent / "shared" / "data"  # the data root: ../shared/data/<dataset>

# model name -> the dataset (folder under ../shared/data) it was trained and selected on
SHIPPED = {
    "aulunet_v3_ph2": "ph2",
    "aulunet_v3_isic2018": "isic2018",
    "aulunet_v3_isic2017": "isic2017",
    # latency-first variants (model/networks/aulunet.py EDGE_VARIANTS), same recipe as aulunet_v3_isic2018
    "aulunet_v3_in128_isic2018": "isic2018",
    "aulunet_v3_stride2_isic2018": "isic2018",
    "aulunet_v3_in192_isic2018": "isic2018",
}
DEFAULT_MODEL = "aulunet_v3_isic2018"
# The edge model the demos offer beside the default: the fastest shipped model within 0.5 ISIC 2018 test DSC
# points of the default and about 0.4x its latency or less in every runtime (benchmarks/results/pareto.json;
# 0.41x at worst in its latest run, docs/benchmarks.md).
EDGE_MODEL = "aulunet_v3_in128_isic2018"
DEFAULT_DATASET = SHIPPED[DEFAULT_MODEL]
DEFAULT_WEIGHTS = WEIGHTS_DIR / f"{DEFAULT_MODEL}.pt"
DEFAULT_DATA = SHARED_DATA / DEFAULT_DATASET


def repo_relative(path) -> str:
    """A path as committed results record it: relative to the repository when inside it, else absolute."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def export_path(suffix: str, model: str = DEFAULT_MODEL) -> Path:
    """exports/<model><suffix>, e.g. export_path('_int8.tflite')."""
    return EXPORTS_DIR / f"{model}{suffix}"
