"""Tobira's load benchmark (see run.py)."""
