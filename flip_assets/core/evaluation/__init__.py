"""Benchmarks and the evaluation tables."""
