"""Datasets: the registry of real datasets, verified fetching, and parsing into one canonical form.

This top-level package shadows Hugging Face's ``datasets`` when both are importable: run
RecAudit from its repository root (as ``python -m datasets ...`` and ``dvc repro`` do).
"""
