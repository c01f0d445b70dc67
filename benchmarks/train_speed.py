"""Training speed of every path (eager, compiled, K-seed fleets per engine), measured in one process:
`python benchmarks/train_speed.py [--paths eager,fast,...] [--json F] [--update-results]`. The measurement is
model/training/speed.py (the GPU protocol picks its training engine with it)."""
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model.training.speed import main  # noqa: E402,F401  (this command's main)

if __name__ == "__main__":
    main()
