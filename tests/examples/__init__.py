"""Tests of the embedding examples (``examples/``), the tutorial and the documentation."""
