"""Benchmarks of rag-local against the raw libraries it wraps. Entry point: benchmarks/run.py."""
