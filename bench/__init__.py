"""Benchmarks, each runnable as `.venv/bin/python bench/<name>.py` and printing one JSON line."""
