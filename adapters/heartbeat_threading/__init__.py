"""heartbeat_threading adapter (work in progress)."""
