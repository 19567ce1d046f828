"""The numbered measurements of issue #7, one module each."""
