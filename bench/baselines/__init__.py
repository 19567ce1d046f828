"""Baseline apps: the least code that gives the same answer, run under uvicorn like the product."""
