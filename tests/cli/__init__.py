"""Tests of the ``heartbeat`` command (issue 4), driving the real command in subprocesses."""
