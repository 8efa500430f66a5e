"""heartbeat_cli.sink: lines written by a thread of their own, never blocking the caller."""

from __future__ import annotations

import io
import logging
import os
import threading
import time

from heartbeat_cli.sink import LineSink, SinkHandler


def _read_all(fd: int) -> str:
    data = b""
    while chunk := os.read(fd, 1 << 16):
        data += chunk
    return data.decode()


def test_a_stream_nobody_reads_never_blocks_and_drops_are_reported_in_their_place() -> None:
    r, w = os.pipe()
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.extend(_read_all(r).splitlines()))
    with os.fdopen(w, "w") as stream:
        sink = LineSink(stream, max_lines=100, notice=lambda n: f"dropped {n}")
        t0 = time.monotonic()
        for i in range(20_000):  # 4 MB: far more than the pipe holds (64 KiB)
            sink.put(f"line {i:05d} " + "x" * 200)
        assert time.monotonic() - t0 < 2.0  # (a blocking write would never return)
        assert sink.dropped > 0
        dropped = sink.dropped
        sink.put("line after")  # the queue is full: dropped too, counted in the same place
        assert sink.dropped == dropped + 1
        assert sink.close(0.2) is False  # the pipe is full: close() gives up in time
        reader.start()  # now somebody reads: what waits is written
        assert sink.close(5.0)
    reader.join(5.0)
    os.close(r)
    notices = [int(line.split()[1]) for line in got if line.startswith("dropped")]
    assert notices and sum(notices) == dropped + 1
    written = [line for line in got if line.startswith("line")]
    assert len(written) + dropped + 1 == 20_001
    assert written == sorted(written)  # in order, nothing duplicated


def test_lines_reach_a_stream_without_a_descriptor_and_logging_goes_through() -> None:
    stream = io.StringIO()
    sink = LineSink(stream)
    handler = SinkHandler(sink)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    log = logging.getLogger("tests.cli.sink")
    log.addHandler(handler)
    log.propagate = False
    try:
        sink.put("first")
        log.warning("second")
    finally:
        log.removeHandler(handler)
    assert sink.close(5.0)
    sink.put("after close: ignored")
    assert stream.getvalue() == "first\nWARNING second\n"


def test_a_reader_that_went_away_ends_the_writing_quietly() -> None:
    r, w = os.pipe()
    os.close(r)
    with os.fdopen(w, "w") as stream:
        sink = LineSink(stream)
        sink.put("nobody will read this")
        assert sink.close(5.0)
        sink.put("nor this")


def test_shared_sinks_on_one_pipe_never_cut_each_others_lines() -> None:
    """``heartbeat serve --workers N``: N processes write to one stdout (issue 15)."""
    r, w = os.pipe()
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.extend(_read_all(r).splitlines()))
    reader.start()
    with os.fdopen(w, "w") as stream:
        sinks = [LineSink(stream, max_lines=100_000, shared=True) for _ in range(2)]

        def fill(k: int) -> None:
            for i in range(5000):  # (batches far larger than a pipe's atomic write)
                sinks[k].put(f"{k} {i:05d} " + "xy"[k] * 150 + " end")

        writers = [threading.Thread(target=fill, args=(k,)) for k in range(2)]
        for thread in writers:
            thread.start()
        for thread in writers:
            thread.join(10.0)
        assert all(sink.close(10.0) for sink in sinks)
    reader.join(10.0)
    os.close(r)
    assert len(got) == 10_000
    for line in got:
        k, _, body = line.partition(" ")
        assert body[6:] == "xy"[int(k)] * 150 + " end", line
    expected = [f"{i:05d}" for i in range(5000)]
    for k in "01":
        assert [line.split()[1] for line in got if line[0] == k] == expected
