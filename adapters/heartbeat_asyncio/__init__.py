"""heartbeat_asyncio adapter (work in progress)."""
