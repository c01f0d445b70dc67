"""Scoring: a model's pooled metrics on a split (pooled.py), the paper's protocol as data and one row of it
(protocol.py), the refusal to score a model on its own training images (provenance.py), figures (figures.py).
The command lines are model/evaluate.py, model/protocol.py and model/demo.py."""
