"""Fault, hostile-peer and fuzz tests (issue 6)."""
