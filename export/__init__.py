"""Exporters: one table of formats (formats.py) drives the CLIs, parity checks and docs."""
