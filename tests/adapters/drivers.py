"""One synchronous face for every driver, so that one test pins a behaviour for all.

``DRIVERS`` names the drivers under contract: heartbeat_asyncio on the standard
loop and on uvloop, and heartbeat_threading. Each runs an echo server on
127.0.0.1 and clients against it; asyncio's run on a loop in a thread of their
own, so that every test is plain blocking code. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from heartbeat_core import ConnectionEvent

__all__ = ["DRIVERS", "Client", "Driver", "Recorded", "ServerHandle", "make_driver"]

T = TypeVar("T")
WAIT = 10.0  # the bound on any one step: a hang fails the test instead of freezing it


class Client(Protocol):
    """What the tests do with a client connection, whatever the driver."""

    conn: Any

    def send(self, data: str | bytes) -> None: ...
    def recv(self, timeout: float = WAIT) -> str | bytes: ...
    def close(self, code: int = 1000, reason: str = "") -> None: ...


@dataclass
class Recorded:
    """Every ``on_event`` call of a server, as ``(connection, event, close_code then)``."""

    calls: list[tuple[Any, ConnectionEvent, int | None]] = field(default_factory=list)
    #: Another hook that sees every call too (``serve(on_event=...)`` of a test).
    also: Callable[[Any, ConnectionEvent], None] | None = None

    def __call__(self, conn: Any, event: ConnectionEvent) -> None:
        self.calls.append((conn, event, conn.close_code))
        if self.also is not None:
            self.also(conn, event)

    def names(self, conn: Any = None) -> list[str]:
        return [type(e).__name__ for c, e, _ in self.calls if conn is None or c is conn]


@dataclass
class ServerHandle:
    port: int
    server: Any
    events: Recorded
    close: Callable[[], None]

    @property
    def uri(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"


class Driver:
    """A driver under contract: ``serve()`` an echo server, ``connect()`` clients."""

    name = ""

    def serve(self, **kwargs: Any) -> ServerHandle:
        raise NotImplementedError

    def connect(self, uri: str, **kwargs: Any) -> Client:
        raise NotImplementedError

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` where the driver's objects may be touched (asyncio: on its loop)."""
        return fn()

    def stop(self) -> None:
        pass


# ------------------------------------------------------------------ asyncio


class _AsyncClient:
    def __init__(self, driver: AsyncioDriver, conn: Any) -> None:
        self._driver, self.conn = driver, conn

    def send(self, data: str | bytes) -> None:
        self._driver.run(self.conn.send(data))

    def recv(self, timeout: float = WAIT) -> str | bytes:
        return self._driver.run(asyncio.wait_for(self.conn.recv(), timeout))  # type: ignore[no-any-return]

    def close(self, code: int = 1000, reason: str = "") -> None:
        self._driver.run(self.conn.close(code, reason))


class AsyncioDriver(Driver):
    def __init__(self, name: str, new_loop: Callable[[], asyncio.AbstractEventLoop]) -> None:
        self.name = name
        self.loop = new_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(WAIT)

    def call(self, fn: Callable[[], T]) -> T:
        async def inside() -> T:
            return fn()

        return self.run(inside())

    def serve(self, **kwargs: Any) -> ServerHandle:
        import heartbeat_asyncio

        async def echo(conn: Any) -> None:
            async for message in conn:
                await conn.send(message)

        events = Recorded(also=kwargs.pop("on_event", None))
        port = kwargs.pop("port", 0)
        server = self.run(
            heartbeat_asyncio.serve(echo, "127.0.0.1", port, on_event=events, **kwargs)
        )
        return ServerHandle(server.port, server, events, lambda: self.run(server.close(timeout=2)))

    def connect(self, uri: str, **kwargs: Any) -> Client:
        import heartbeat_asyncio

        async def opened() -> Any:
            return await heartbeat_asyncio.connect(uri, **kwargs)

        return _AsyncClient(self, self.run(opened()))

    def stop(self) -> None:
        async def drain() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            self.run(drain())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(WAIT)
        self.loop.close()


# ---------------------------------------------------------------- threading


class _ThreadClient:
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def send(self, data: str | bytes) -> None:
        self.conn.send(data)

    def recv(self, timeout: float = WAIT) -> str | bytes:
        return self.conn.recv(timeout)  # type: ignore[no-any-return]

    def close(self, code: int = 1000, reason: str = "") -> None:
        self.conn.close(code, reason)


class ThreadingDriver(Driver):
    name = "threading"

    def serve(self, **kwargs: Any) -> ServerHandle:
        import heartbeat_threading

        def echo(conn: Any) -> None:
            for message in conn:
                conn.send(message)

        events = Recorded(also=kwargs.pop("on_event", None))
        port = kwargs.pop("port", 0)
        server = heartbeat_threading.serve(echo, "127.0.0.1", port, on_event=events, **kwargs)
        return ServerHandle(server.port, server, events, lambda: server.close(timeout=2))

    def connect(self, uri: str, **kwargs: Any) -> Client:
        import heartbeat_threading

        return _ThreadClient(heartbeat_threading.connect(uri, **kwargs))


def _uvloop() -> asyncio.AbstractEventLoop:
    import uvloop

    return uvloop.new_event_loop()


DRIVERS = ["asyncio", "asyncio-uvloop", "threading"]


@contextlib.contextmanager
def make_driver(name: str) -> Iterator[Driver]:
    driver: Driver
    if name == "asyncio":
        driver = AsyncioDriver(name, asyncio.new_event_loop)
    elif name == "asyncio-uvloop":
        driver = AsyncioDriver(name, _uvloop)
    else:
        driver = ThreadingDriver()
    try:
        yield driver
    finally:
        driver.stop()
