"""Runnable examples: the tutorial's programs and the framework embedding recipes.

Each file runs on its own (``python examples/NAME.py``); the test suite imports
them (``tests/examples/``) and runs them against real peers.
"""
