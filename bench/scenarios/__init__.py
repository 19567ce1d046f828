"""The numbered benchmarks, one module each."""
