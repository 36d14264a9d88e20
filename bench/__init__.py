"""Benchmarks (run with `make bench-events`; see docs/BENCHMARKS.md)."""
