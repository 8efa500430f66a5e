"""A worker of ``heartbeat serve --workers N``: its channel to the supervisor, and the
dashboard and ``/metrics`` of all workers, seen from any of them.

Every worker listens on the shared port (``SO_REUSEPORT``), so a dashboard page or
a Prometheus scrape lands on whichever worker the kernel picks. Each worker
therefore keeps what the others report, in *parts*: one JSON line over a socket
pair to the supervisor (:mod:`heartbeat_cli.workers`), which relays it unread to
the other workers.

* Dashboard: while a page watches it, a worker sends a part every
  ``update_interval`` (0.5 s) marked ``watched``; a worker that receives one sends
  its own for the next two seconds: its dashboard rows and counts and the RTT
  samples since its last part (in ``time.monotonic()`` seconds, the same clock in
  every process of the machine). A worker's dashboard merges its own live
  snapshot with the latest part of every other worker (:meth:`Cluster.merge`):
  within a second of a page opening, it shows every worker's connections. While
  nobody watches, nothing is sent (a snapshot of 10,000 connections costs about
  10 ms).
* ``/metrics``: a worker sends its Prometheus exposition every
  :data:`METRICS_EVERY` seconds (it costs about 45 ms for 10,000 connections), and
  every :data:`METRICS_SCRAPED_EVERY` seconds for five minutes after any worker
  was scraped; a scrape gets every worker's, each series with a ``worker`` label
  (:func:`merge_expositions`), the other workers' at most that old.

Connection ids are numbered ``w, w + N, w + 2N, ...`` in worker ``w`` (1..N), so
that they never collide.

When the supervisor goes away (its end of the channel closes), the worker stops.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import socket
import time
from collections.abc import Callable
from typing import Any, TypeAlias

__all__ = [
    "METRICS_EVERY",
    "METRICS_SCRAPED_EVERY",
    "Cluster",
    "WorkerSpec",
    "merge_expositions",
    "parse_worker",
]

#: Seconds between two expositions a worker sends for the others' ``/metrics``.
METRICS_EVERY = 10.0
#: The same while anyone scrapes ``/metrics`` (for five minutes after a scrape).
METRICS_SCRAPED_EVERY = 2.0
_SCRAPED_FOR = 300.0
#: Seconds a worker keeps sending parts after it heard that a page watches another.
_WANTED_FOR = 2.0
#: The longest line on the channel (a part: at most 200 rows and 2,000 samples).
LINE_LIMIT = 16 * 1024 * 1024

WorkerSpec: TypeAlias = tuple[int, int, int]


def parse_worker(text: str) -> WorkerSpec:
    """``"INDEX,COUNT,FD"`` (the supervisor's hidden ``--worker`` argument)."""
    index, count, fd = (int(part) for part in text.split(","))
    return index, count, fd


def merge_expositions(texts: dict[int, str]) -> bytes:
    """Prometheus expositions of several workers as one, each sample labelled with its
    ``worker`` (families merged by name)."""
    from prometheus_client.exposition import generate_latest
    from prometheus_client.metrics_core import Metric
    from prometheus_client.parser import text_string_to_metric_families
    from prometheus_client.registry import CollectorRegistry

    families: dict[str, Metric] = {}
    for worker, text in sorted(texts.items()):
        for family in text_string_to_metric_families(text):
            merged = families.get(family.name)
            if merged is None:
                merged = Metric(family.name, family.documentation, family.type, family.unit)
                families[family.name] = merged
            for sample in family.samples:
                labels = {**sample.labels, "worker": str(worker)}
                merged.samples.append(sample._replace(labels=labels))

    class _Merged:
        def collect(self) -> list[Metric]:
            return list(families.values())

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Merged())
    return generate_latest(registry)


class Cluster:
    """Worker ``index`` of ``count``, talking to the supervisor over socket ``fd``.

    ``snapshot(since)`` is this worker's own dashboard snapshot (``None``: no
    dashboard), ``watching()`` whether a page watches it; ``exposition()`` its own
    metrics text (``None``: no metrics).
    """

    def __init__(
        self,
        spec: WorkerSpec,
        *,
        snapshot: Callable[[int], dict[str, Any]] | None,
        watching: Callable[[], bool] = lambda: False,
        exposition: Callable[[], bytes] | None,
        update_interval: float = 0.5,
        max_rows: int = 200,
        max_samples: int = 20_000,
    ) -> None:
        #: This worker's number (1..count) and the number of workers.
        self.index: int = spec[0]
        self.count: int = spec[1]
        self._fd = spec[2]
        self._snapshot = snapshot
        self._watching = watching
        self._wanted = 0  # parts still to send for a page watching another worker
        self._exposition = exposition
        self._scraped = False  # this worker answered /metrics since its last part
        self._scrapes = 0  # parts still to carry frequent expositions
        self._interval = update_interval
        self._max_rows = max_rows
        # What the other workers reported: worker -> (open, awaiting, rows), and texts.
        self._parts: dict[int, tuple[int, int, list[dict[str, Any]]]] = {}
        self._texts: dict[int, str] = {}
        # Their RTT samples, (number, monotonic time, id, rtt ms); those numbered up to
        # _pushed went out with the last push (a viewer's first snapshot stops there).
        self._samples: collections.deque[tuple[int, float, int, float]] = collections.deque(
            maxlen=max_samples
        )
        self._numbered = 0
        self._pushed = 0
        self._writer: asyncio.StreamWriter | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, port: int, lost: Callable[[], None]) -> None:
        """Connect to the supervisor, say this worker listens on ``port``, and start
        exchanging parts; ``lost()`` is called when the supervisor goes away."""
        sock = socket.socket(fileno=self._fd)
        reader, self._writer = await asyncio.open_connection(sock=sock, limit=LINE_LIMIT)
        self._send({"kind": "ready", "worker": self.index, "port": port})
        self._tasks.append(asyncio.ensure_future(self._read(reader, lost)))
        if self._snapshot is not None or self._exposition is not None:
            self._tasks.append(asyncio.ensure_future(self._report()))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._writer is not None:
            self._writer.close()

    def _send(self, message: dict[str, Any]) -> None:
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")

    async def _read(self, reader: asyncio.StreamReader, lost: Callable[[], None]) -> None:
        try:
            while line := await reader.readline():
                self.receive(json.loads(line))
        except (OSError, ValueError):
            pass
        lost()

    async def _report(self) -> None:
        since = 0
        slow, fast = (
            max(1, round(every / self._interval))
            for every in (METRICS_EVERY, METRICS_SCRAPED_EVERY)
        )
        for count in itertools.count():
            await asyncio.sleep(self._interval)
            part: dict[str, Any] = {"kind": "part", "worker": self.index}
            watched = self._watching()
            if not (watched or self._wanted):
                self._parts.clear()  # (nobody watches: what others sent goes stale)
            self._wanted = max(0, self._wanted - 1)
            self._scrapes = max(0, self._scrapes - 1)
            if self._scraped:
                part["scraped"], self._scraped = True, False
            if self._snapshot is not None and (watched or self._wanted):
                part["watched"] = watched
                snap = self._snapshot(since)
                now = time.monotonic()
                since = snap["next"]
                part.update(
                    open=snap["open"],
                    awaiting=snap["awaiting"],
                    rows=snap["rows"],
                    samples=[[now + ago, conn_id, rtt] for ago, conn_id, rtt in snap["samples"]],
                )
            if self._exposition is not None and count % (fast if self._scrapes else slow) == 0:
                part["metrics"] = self._exposition().decode("utf-8")
            if len(part) > 2:
                self._send(part)

    def receive(self, part: dict[str, Any]) -> None:
        """Keep another worker's part (the supervisor relays them)."""
        worker = int(part["worker"])
        if part.get("watched"):
            self._wanted = round(_WANTED_FOR / self._interval)
        if part.get("scraped"):
            self._scrapes = round(_SCRAPED_FOR / self._interval)
        if "rows" in part:
            self._parts[worker] = (part["open"], part["awaiting"], part["rows"])
            for t, conn_id, rtt in part["samples"]:
                self._numbered += 1
                self._samples.append((self._numbered, float(t), int(conn_id), float(rtt)))
        if "metrics" in part:
            self._texts[worker] = part["metrics"]

    def merge(self, snap: dict[str, Any], first: bool) -> dict[str, Any]:
        """This worker's dashboard snapshot ``snap`` with the other workers' rows, counts
        and RTT samples added: for a viewer's ``first`` snapshot those kept (at most
        ``max_samples``) up to the last push, else those received since."""
        now = time.monotonic()
        rows = list(snap["rows"])
        opened, awaiting = snap["open"], snap["awaiting"]
        for part_open, part_awaiting, part_rows in self._parts.values():
            opened += part_open
            awaiting += part_awaiting
            rows += part_rows
        live = sorted((r for r in rows if r["closed_ago_s"] is None), key=lambda r: -r["age_s"])
        gone = sorted((r for r in rows if r["closed_ago_s"] is not None),
                      key=lambda r: -r["closed_ago_s"])  # fmt: skip
        shown = live[-self._max_rows :]
        room = self._max_rows - len(shown)
        shown += gone[-room:] if room > 0 else []
        if first:  # up to the last push (the next push has the rest)
            low, high = 0, self._pushed
        else:
            low, high = self._pushed, self._numbered
            self._pushed = high
        samples = snap["samples"] + [  # (the page drops those older than its history)
            [round(t - now, 3), conn_id, round(rtt, 3)]
            for number, t, conn_id, rtt in self._samples
            if low < number <= high
        ]
        return {**snap, "open": opened, "awaiting": awaiting, "rows": shown,
                "samples": samples[-2000:]}  # fmt: skip

    def metrics(self, own: bytes) -> bytes:
        """``/metrics`` of every worker: ``own`` (this worker's, now) and the others' last."""
        self._scraped = True
        return merge_expositions({**self._texts, self.index: own.decode("utf-8")})
