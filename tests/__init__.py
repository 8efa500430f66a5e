"""The test suites, one package per folder (``tests.core``, ``tests.asyncio`` ...).

Every folder is a package, so pytest's default import mode names each module after its
path: ``tests/asyncio`` is ``tests.asyncio`` and ``tests/threading`` is
``tests.threading``, and neither can shadow the standard library's ``asyncio`` or
``threading``. What several folders share lives in ``tests.support``; what one folder's
tests share lives in that folder: ``helpers.py`` for small helpers, ``harness.py`` where
the folder runs what it tests (servers in threads, child processes, a browser).
"""
