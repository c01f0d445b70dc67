"""The network: AULUNet's blocks, its variants and their registry (aulunet.py), checkpoints that rebuild it
safely (checkpoint.py), and the .pt backend of runtimes.load (torch_segmenter.py). Importing the package
imports no torch; each module imports it where it needs it."""
