"""Benchmarks: scripts that print figures and never assert on them (`python -m benchmarks.X`)."""
