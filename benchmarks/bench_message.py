"""Micro-benchmark of the busy path: one small message in, echoed out (not part of the tests).

Two figures, both CPU time of this process per echoed message (median of
several repeats of a timed batch, the garbage collector off):

* ``core``: the sans-IO half, server side: ``receive_data(masked text frame)``
  gives a ``Message``, ``send(its data)`` and ``data_to_send()`` give the
  echo's bytes; beside it the same through wsproto alone and through
  websockets' sans-IO ``ServerProtocol``, measured in the same run;
* ``asyncio``: the whole asyncio driver: the frame handed to
  ``Connection.buffer_updated`` (as the loop does after a read), a handler task
  running ``async for message in conn: await conn.send(message)``, the echo
  written to a transport that only counts bytes. The loop's own cost of
  waking a task once per message is measured alone and subtracted
  (``asyncio`` column = total - ``loop hop``), so the figure is the library's;
* ``burst``: a busy peer's messages arriving faster than they are read: 256 KiB
  of the same frames, in reads of 64 KiB that end inside a frame, through
  ``HeartbeatConnection`` (only the sans-IO half: messages out, no echo), beside
  wsproto alone and websockets' ``ServerProtocol`` on the same reads.

    python benchmarks/bench_message.py [--repeats 7] [--batch 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import wsproto
import wsproto.events as ws
from bench_core import HANDSHAKE, masked_frame, median_ns
from websockets.frames import Frame, Opcode
from websockets.server import ServerProtocol

from heartbeat_core import HeartbeatConfig, HeartbeatConnection, Role, ServerPolicy
from heartbeat_core.wsevents import Message

__all__ = ["main", "run"]

_TEXT = '{"type":"data","v":1}'  # what benchmarks/loadclient.py --busy sends
_clock = time.process_time_ns


_FRAME = masked_frame(0x1, _TEXT.encode())
_ECHO = b"\x81" + bytes((len(_TEXT),)) + _TEXT.encode()


# ---------------------------------------------------------------------- sans-IO


def bench_core(batch: int, repeats: int) -> tuple[float, list[float]]:
    conn = HeartbeatConnection(Role.SERVER, HeartbeatConfig(interval=1.0, timeout=5.0))
    conn.receive_data(HANDSHAKE, 0.0)
    conn.accept(now=0.0)
    conn.data_to_send()
    clock = [0.0]

    def timed() -> float:
        t = clock[0]
        times = [t + (i + 1) * 1e-4 for i in range(batch)]
        clock[0] = times[-1]
        receive_data, send, data_to_send, frame = (
            conn.receive_data,
            conn.send,
            conn.data_to_send,
            _FRAME,
        )
        t0 = _clock()
        for now in times:
            for event in receive_data(frame, now):
                send(event.data)  # type: ignore[union-attr]
            data_to_send()
        elapsed = _clock() - t0
        return elapsed / batch

    events = conn.receive_data(_FRAME, 0.0)
    assert events == [Message(data=_TEXT)], events
    conn.send(_TEXT)
    assert conn.data_to_send() == _ECHO
    return median_ns(timed, repeats)


def bench_wsproto(batch: int, repeats: int) -> tuple[float, list[float]]:
    conn = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
    conn.receive_data(HANDSHAKE)
    for event in conn.events():
        if isinstance(event, ws.Request):
            conn.send(ws.AcceptConnection())

    def timed() -> float:
        receive_data, events, send, frame = conn.receive_data, conn.events, conn.send, _FRAME
        t0 = _clock()
        for _ in range(batch):
            receive_data(frame)
            for event in events():
                send(ws.Message(data=event.data))  # type: ignore[attr-defined]
        return (_clock() - t0) / batch

    return median_ns(timed, repeats)


def bench_websockets(batch: int, repeats: int) -> tuple[float, list[float]]:
    proto = ServerProtocol()
    proto.receive_data(HANDSHAKE)
    (request,) = proto.events_received()
    proto.send_response(proto.accept(request))  # type: ignore[arg-type]
    proto.data_to_send()

    def timed() -> float:
        receive_data, received, send_text, to_send, frame = (
            proto.receive_data,
            proto.events_received,
            proto.send_text,
            proto.data_to_send,
            _FRAME,
        )
        t0 = _clock()
        for _ in range(batch):
            receive_data(frame)
            for event in received():
                send_text(event.data)  # type: ignore[union-attr]
            to_send()
        return (_clock() - t0) / batch

    proto.receive_data(_FRAME)
    (event,) = proto.events_received()
    assert isinstance(event, Frame) and event.opcode is Opcode.TEXT
    return median_ns(timed, repeats)


# ---------------------------------------------------------------------- asyncio


class _CountingTransport(asyncio.Transport):
    """Takes writes and counts their bytes; never closes."""

    def __init__(self) -> None:
        super().__init__()
        self.written = 0
        self.last = b""

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += len(data)
        self.last = bytes(data)

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:  # never, at one message in flight
        raise AssertionError("reading paused")

    def resume_reading(self) -> None:
        raise AssertionError("reading resumed")


async def _asyncio_batches(batch: int, repeats: int) -> dict[str, tuple[float, list[float]]]:
    from heartbeat_asyncio.connection import Connection

    conn = Connection(Role.SERVER, policy=ServerPolicy())
    transport = _CountingTransport()
    conn.connection_made(transport)
    view = conn.get_buffer(-1)
    view[: len(HANDSHAKE)] = HANDSHAKE
    conn.buffer_updated(len(HANDSHAKE))
    assert conn.is_open
    view[: len(_FRAME)] = _FRAME
    size = len(_FRAME)

    async def echo() -> None:
        async for message in conn:
            await conn.send(message)

    task = asyncio.ensure_future(echo())
    await asyncio.sleep(0)
    sleep = asyncio.sleep

    async def total() -> float:
        before = transport.written
        updated = conn.buffer_updated
        t0 = _clock()
        for _ in range(batch):
            updated(size)
            await sleep(0)  # the echo task runs
        elapsed = _clock() - t0
        assert transport.written - before == batch * len(_ECHO), "an echo went missing"
        assert transport.last == _ECHO
        return elapsed / batch

    async def hop() -> float:
        # The loop's part alone: wake a waiting task once per round (as a message does).
        loop = asyncio.get_running_loop()
        box: list[asyncio.Future[None]] = [loop.create_future()]

        async def waiter() -> None:
            for _ in range(batch):
                await box[0]
                box[0] = loop.create_future()

        other = asyncio.ensure_future(waiter())
        await sleep(0)
        t0 = _clock()
        for _ in range(batch):
            box[0].set_result(None)
            await sleep(0)
        elapsed = _clock() - t0
        await other
        return elapsed / batch

    results: dict[str, list[float]] = {"asyncio total": [], "loop hop": []}
    for _ in range(repeats):
        for name, fn in (("asyncio total", total), ("loop hop", hop)):
            gc.collect()
            gc.disable()
            try:
                results[name].append(await fn())
            finally:
                gc.enable()
    task.cancel()
    out = {k: (statistics.median(v), v) for k, v in results.items()}
    net = [a - b for a, b in zip(results["asyncio total"], results["loop hop"], strict=True)]
    out["asyncio"] = (statistics.median(net), net)
    return out


# ----------------------------------------------------------------------- bursts

_READ = 65536  # what a read of a busy socket returns (the asyncio driver reads 256 KiB)
_BURST = (_FRAME * (4 * _READ // len(_FRAME) + 1))[: 4 * _READ]
_BURST_READS = [_BURST[at : at + _READ] for at in range(0, len(_BURST), _READ)]


def _burst_ns(
    reader: Callable[[], Callable[[bytes], int]], repeats: int
) -> tuple[float, list[float]]:
    """CPU per message of ``_BURST_READS`` fed to a fresh reader (``reader()`` makes one,
    untimed; it returns how many whole messages a read gave)."""

    def timed() -> float:
        read = reader()
        t0 = _clock()
        messages = sum(read(data) for data in _BURST_READS)
        elapsed = _clock() - t0
        assert messages == len(_BURST) // len(_FRAME), messages
        return elapsed / messages

    return median_ns(timed, repeats)


def _core_reader() -> Callable[[bytes], int]:
    conn = HeartbeatConnection(
        Role.SERVER, HeartbeatConfig(interval=1.0, timeout=5.0), max_message_size=None
    )
    conn.receive_data(HANDSHAKE, 0.0)
    conn.accept(now=0.0)
    conn.data_to_send()
    return lambda data: len(conn.receive_data(data, 1.0))


def _wsproto_reader() -> Callable[[bytes], int]:
    conn = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
    conn.receive_data(HANDSHAKE)
    for event in conn.events():
        if isinstance(event, ws.Request):
            conn.send(ws.AcceptConnection())

    def read(data: bytes) -> int:
        conn.receive_data(data)
        return sum(1 for e in conn.events() if getattr(e, "message_finished", False))

    return read


def _websockets_reader() -> Callable[[bytes], int]:
    proto = ServerProtocol(max_size=None)
    proto.receive_data(HANDSHAKE)
    (request,) = proto.events_received()
    proto.send_response(proto.accept(request))  # type: ignore[arg-type]
    proto.data_to_send()

    def read(data: bytes) -> int:
        proto.receive_data(data)
        return len(proto.events_received())

    return read


def run(batch: int = 20000, repeats: int = 7) -> dict[str, tuple[float, list[float]]]:
    result = {
        "core": bench_core(batch, repeats),
        "wsproto alone": bench_wsproto(batch, repeats),
        "websockets sans-IO": bench_websockets(batch, repeats),
    }
    result.update(asyncio.run(_asyncio_batches(batch, repeats)))
    result["burst: core"] = _burst_ns(_core_reader, repeats)
    result["burst: wsproto alone"] = _burst_ns(_wsproto_reader, repeats)
    result["burst: websockets sans-IO"] = _burst_ns(_websockets_reader, repeats)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch", type=int, default=20000)
    args = parser.parse_args(argv)
    for name, (median, samples) in run(args.batch, args.repeats).items():
        spread = " ".join(f"{s / 1000:.2f}" for s in samples)
        print(f"{name:26s} {median / 1000:6.2f} us per message   [{spread}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
