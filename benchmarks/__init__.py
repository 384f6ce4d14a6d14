"""Reproducible performance figures for Station (see README.md; run `python -m benchmarks.run`)."""
