"""Benchmarks of whoop-sync against baselines measured in the same run (`make bench`)."""
