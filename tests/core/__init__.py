"""Tests of the sans-IO core (``heartbeat_core``): no sockets, no clock."""
