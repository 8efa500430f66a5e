"""Tests of the asyncio adapter (``heartbeat_asyncio``).

A package named ``tests.asyncio``: imported as such, it cannot shadow the standard
library's ``asyncio`` (``import asyncio`` in these modules is the standard library).
"""
