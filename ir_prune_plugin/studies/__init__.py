"""Reproducible studies behind the demo and benchmarks."""
