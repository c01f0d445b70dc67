"""The paper's protocol on one GPU, in chunks: `python model/gpu_protocol.py [--budget 540] [--out DIR]`
(docs/gpu.md). Each call trains as much as fits in --budget seconds and resumes the last; the steps are
model/training/gpu_protocol.py."""
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model.training.gpu_protocol import main  # noqa: E402,F401  (this command's main)

if __name__ == "__main__":
    main()
