"""Benchmarks: each prints JSON lines comparing a pipeline code path with the bare model."""
