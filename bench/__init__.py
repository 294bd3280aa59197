"""Benchmark scripts that print figures (`make bench`); nothing timed lives in tests/."""
