"""One synchronous face for every driver, so that one test pins a behaviour for all.

``DRIVERS`` names the drivers under contract: heartbeat_asyncio on the standard
loop and on uvloop, and heartbeat_threading. Each runs an echo server on
127.0.0.1 and clients against it; asyncio's run on a loop in a thread of their
own, so that every test is plain blocking code. Every wait is bounded.

``serve(on_message=OnMessage(...))`` serves with the driver's ``on_message`` instead of
a handler: :class:`OnMessage` is written once, as plain code, and each driver adapts it
(an ``async def`` for asyncio).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from heartbeat_core import ConnectionEvent

__all__ = [
    "DRIVERS", "ECHO", "Client", "Driver", "OnMessage", "Recorded", "ServerHandle", "make_driver",
]  # fmt: skip

T = TypeVar("T")
WAIT = 10.0  # the bound on any one step: a hang fails the test instead of freezing it


class Client(Protocol):
    """What the tests do with a client connection, whatever the driver."""

    conn: Any

    def send(self, data: str | bytes) -> None: ...
    def recv(self, timeout: float = WAIT) -> str | bytes: ...
    def close(self, code: int = 1000, reason: str = "") -> None: ...
    def wait_closed(self) -> None: ...


#: ``serve(handler=ECHO)``: the driver's echo handler (the default without ``on_message``).
ECHO: Any = object()


@dataclass
class OnMessage:
    """An ``on_message`` for every driver. Each call records ``message`` in ``seen`` (by
    connection, in order), then waits (bounded) until ``gate`` is set, if there is one,
    then sends back what ``reply(message)`` returns (``None``: nothing); ``reply`` may
    raise. ``overlaps`` counts the calls that began while another call for the same
    connection ran."""

    reply: Callable[[str | bytes], str | bytes | None] = lambda message: message
    gate: threading.Event | None = None
    seen: dict[Any, list[str | bytes]] = field(default_factory=dict)
    overlaps: int = 0
    _busy: set[Any] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def messages(self) -> list[str | bytes]:
        """Every message seen, of all connections (in order, for a single one)."""
        with self._lock:
            return [message for seen in self.seen.values() for message in seen]

    def begin(self, conn: Any, message: str | bytes) -> None:
        with self._lock:
            self.overlaps += conn in self._busy
            self._busy.add(conn)
            self.seen.setdefault(conn, []).append(message)

    def end(self, conn: Any) -> None:
        with self._lock:
            self._busy.discard(conn)


def _application(kwargs: dict[str, Any], echo: Any, adapt: Callable[[OnMessage], Any]) -> Any:
    """``(handler, on_message)`` for a driver's serve(): its echo handler, unless the test
    passes ``on_message`` (an :class:`OnMessage`, adapted; anything else as it is) or
    ``handler`` (``ECHO``, or anything else as it is, e.g. None or 42)."""
    on_message = kwargs.pop("on_message", None)
    handler = kwargs.pop("handler", ECHO if on_message is None else None)
    if isinstance(on_message, OnMessage):
        on_message = adapt(on_message)
    return echo if handler is ECHO else handler, on_message


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
    """A driver under contract: ``serve()`` an echo server, ``connect()`` clients.
    ``serve(record=False)`` leaves ``on_event`` unset (its events are not recorded)."""

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

    def wait_closed(self) -> None:
        self._driver.run(self.conn.wait_closed())


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

        handler, on_message = _application(kwargs, echo, _async_on_message)
        events = Recorded(also=kwargs.pop("on_event", None))
        hook = events if kwargs.pop("record", True) else None  # (None: on_event unset)
        port = kwargs.pop("port", 0)
        server = self.run(
            heartbeat_asyncio.serve(
                handler, "127.0.0.1", port, on_event=hook, on_message=on_message, **kwargs
            )
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

    def wait_closed(self) -> None:
        self.conn.wait_closed()


class ThreadingDriver(Driver):
    name = "threading"

    def serve(self, **kwargs: Any) -> ServerHandle:
        import heartbeat_threading

        def echo(conn: Any) -> None:
            for message in conn:
                conn.send(message)

        handler, on_message = _application(kwargs, echo, _threaded_on_message)
        events = Recorded(also=kwargs.pop("on_event", None))
        hook = events if kwargs.pop("record", True) else None  # (None: on_event unset)
        port = kwargs.pop("port", 0)
        server = heartbeat_threading.serve(
            handler, "127.0.0.1", port, on_event=hook, on_message=on_message, **kwargs
        )
        return ServerHandle(server.port, server, events, lambda: server.close(timeout=2))

    def connect(self, uri: str, **kwargs: Any) -> Client:
        import heartbeat_threading

        return _ThreadClient(heartbeat_threading.connect(uri, **kwargs))


def _async_on_message(spec: OnMessage) -> Callable[[Any, str | bytes], Awaitable[None]]:
    async def on_message(conn: Any, message: str | bytes) -> None:
        spec.begin(conn, message)
        try:
            await asyncio.sleep(0)  # (a yield: a second call for conn would begin here)
            if spec.gate is not None and not spec.gate.is_set():
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(None, spec.gate.wait, WAIT)  # the loop runs on
            reply = spec.reply(message)
            if reply is not None:
                await conn.send(reply)
        finally:
            spec.end(conn)

    return on_message


def _threaded_on_message(spec: OnMessage) -> Callable[[Any, str | bytes], None]:
    def on_message(conn: Any, message: str | bytes) -> None:
        spec.begin(conn, message)
        try:
            if spec.gate is not None:
                spec.gate.wait(WAIT)
            reply = spec.reply(message)
            if reply is not None:
                conn.send(reply)
        finally:
            spec.end(conn)

    return on_message


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
