"""Benchmarks: scripts run with `uv run python -m tests.bench.<name>`, not tests."""
