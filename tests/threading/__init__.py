"""Tests of the threading adapter (``heartbeat_threading``).

A package named ``tests.threading``: imported as such, it cannot shadow the standard
library's ``threading`` (``import threading`` in these modules is the standard library).
"""
