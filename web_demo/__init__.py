"""The web demo: AULUNet segmenting a photo in the browser (see docs/web.md)."""
