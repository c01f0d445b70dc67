"""Exporters: one table of formats (core/formats.py) drives the CLIs, parity checks and docs."""
from __future__ import annotations


def exporter(fmt):
    """The exporter module of a core.formats.Format (export/to_<format>.py); its build() writes one file."""
    import importlib
    from pathlib import Path

    return importlib.import_module(f"export.{Path(fmt.script).stem}")
