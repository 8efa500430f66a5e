"""``heartbeat serve``: an echo server whose every connection the core supervises.

:func:`run_serve` is the command (reached through :func:`heartbeat_cli.main`);
:func:`echo` is its handler, which the demo's server runs too.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
from functools import partial

from heartbeat_asyncio import Connection, serve

from heartbeat_cli.cluster import Cluster
from heartbeat_cli.dashboard import Dashboard
from heartbeat_cli.operators import (
    METRICS_PATH,
    chain_http,
    metrics_endpoint,
    set_log_query,
    shown_target,
)
from heartbeat_cli.output import (
    EXIT_OK,
    Output,
    error,
    format_peer,
    milliseconds,
    wall_clock,
)
from heartbeat_cli.runtime import install_stop
from heartbeat_cli.workers import run_workers
from heartbeat_core import (
    Accepted,
    Closed,
    ConnectionEvent,
    HeartbeatConfig,
    HeartbeatError,
    HeartbeatStyle,
    PeerDead,
    RttSample,
)
from heartbeat_core.errors import ConnectionClosedError

__all__ = ["GC_YOUNG_THRESHOLD", "echo", "run_serve", "tune_gc"]


async def echo(conn: Connection) -> None:
    """Echo every message back until the connection closes."""
    try:
        async for message in conn:
            await conn.send(message)
    except ConnectionClosedError:
        pass


async def echo_message(conn: Connection, message: str | bytes) -> None:
    """Echo one message back: ``echo`` for ``serve(on_message=...)``, which holds no task
    per idle connection (used when no dashboard needs a handler for its feed)."""
    await conn.send(message)


def _serve_config(
    mode: str,
    interval: float,
    timeout: float,
    close_timeout: float,
    probe_interval: float | None = None,
) -> HeartbeatConfig:
    return HeartbeatConfig(
        interval=interval,
        timeout=timeout,
        close_timeout=close_timeout,
        style=HeartbeatStyle.APP if mode == "app" else HeartbeatStyle.PROTOCOL,
        answer_app_pings=mode != "protocol",
        probe_interval=probe_interval or None,  # (0: off)
    )


#: How many allocations (net of frees) start a collection of the youngest generation
#: in a serving process (Python's default: 700).
GC_YOUNG_THRESHOLD = 10_000


def tune_gc() -> None:
    """Set up the cyclic garbage collector for a process that holds many long-lived
    connections (``heartbeat serve`` calls it once, ready to serve).

    Every connection leaves a dozen objects the collector tracks, and a collection
    goes through all of them; in a burst of connections (a restart's reconnect storm)
    that took about a tenth of the CPU per opening handshake. The objects made until
    now (modules, classes, the configuration) are frozen out of every collection
    (:func:`gc.freeze`), and the youngest generation is collected every
    :data:`GC_YOUNG_THRESHOLD` allocations (or as seldom as it already was), so the
    older ones are too, less often. Heartbeats leave nothing behind (what they
    allocate is freed at once), so an idle server starts no collection either way."""
    gc.freeze()
    young, middle, oldest = gc.get_threshold()
    gc.set_threshold(max(young, GC_YOUNG_THRESHOLD), middle, oldest)


# --------------------------------------------------------------------------- serve


async def run_serve(args: argparse.Namespace, out: Output) -> int:
    """``heartbeat serve``: listen until SIGINT or SIGTERM, then close every connection."""
    json_mode = args.log_format == "json"
    try:
        config = _serve_config(
            args.mode, args.interval, args.timeout, args.close_timeout, args.probe_interval
        )
    except HeartbeatError as exc:
        return error(str(exc))
    # Never blocks the loop; with --workers N, N + 1 processes share stdout (whole lines).
    shared = args.worker is not None or args.workers > 1
    out = out.in_background(partial(_dropped_lines, json_mode), shared=shared)
    try:
        if args.worker is None and args.workers > 1:
            return await run_workers(args, out, args.argv)
        return await _serve(args, out, config, json_mode)
    finally:
        out.close()


def _dashboard(args: argparse.Namespace) -> Dashboard:
    return Dashboard(
        allowed_hosts=args.dashboard_host,
        allowed_origins=args.dashboard_origin,
        max_viewers=args.dashboard_viewers,
    )


def _dropped_lines(json_mode: bool, count: int) -> str:
    """The line that stands for ``count`` log lines stdout could not take."""
    if json_mode:
        return json.dumps({"event": "dropped", "lines": count}, separators=(",", ":"))
    return f"{wall_clock()}  dropped {count} log lines: stdout was not read fast enough"


async def _serve(
    args: argparse.Namespace, out: Output, config: HeartbeatConfig, json_mode: bool
) -> int:

    spec = args.worker  # (a worker of heartbeat serve --workers N: heartbeat_cli.workers)
    tag = "" if spec is None else f"w{spec[0]}  "

    def log(event: str, text: str, **fields: object) -> None:
        if json_mode:
            if spec is None:
                out.json(event=event, **fields)
            else:
                out.json(event=event, worker=spec[0], **fields)
        else:
            out.line(f"{wall_clock()}  {tag}{text}")

    opened: set[Connection] = set()

    log_rtt = args.rtt_log

    def on_event(conn: Connection, event: ConnectionEvent) -> None:
        if type(event) is RttSample:  # (the most frequent event by far: first, and cheap)
            if log_rtt:
                peer = format_peer(conn.remote_address)
                log(
                    "rtt",
                    f"rtt     {peer}  seq={event.seq} rtt={event.rtt * 1000:.3f} ms",
                    peer=peer,
                    seq=event.seq,
                    rtt_ms=milliseconds(event.rtt),
                )
            return
        peer = format_peer(conn.remote_address)
        if isinstance(event, Accepted):
            opened.add(conn)
            path = shown_target(conn.path)  # (no query string unless --log-query)
            log("open", f"open    {peer}  {path}", peer=peer, path=path)
        elif isinstance(event, PeerDead):
            log(
                "dead",
                f"dead    {peer}  heartbeat {event.seq} unanswered for "
                f"{event.waited * 1000:.0f} ms",
                peer=peer,
                seq=event.seq,
                waited_ms=milliseconds(event.waited),
            )
        elif isinstance(event, Closed) and conn in opened:
            # (Sockets that never completed an upgrade -- junk, plain HTTP -- are not logged.)
            opened.discard(conn)
            reason = f" {event.reason!r}" if event.reason else ""
            log(
                "close",
                f"close   {peer}  code={event.code}{reason} by {event.by}",
                peer=peer,
                code=event.code,
                reason=event.reason,
                by=event.by,
            )

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    got: list[str] = []
    install_stop(loop, stop, got)
    dashboard = None if args.no_dashboard else _dashboard(args)
    set_log_query(args.log_query)
    metrics, no_metrics = (None, None) if args.no_metrics else metrics_endpoint()
    cluster = None
    if spec is not None:
        cluster = Cluster(
            spec,
            snapshot=None if dashboard is None else dashboard.registry.snapshot,
            watching=(lambda: False) if dashboard is None else (lambda: dashboard.watching),
            exposition=None if metrics is None else metrics.exposition,
        )
        if dashboard is not None:
            dashboard.registry.number_from(spec[0], spec[1])
            dashboard.merge = cluster.merge
        if metrics is not None:
            metrics.merge = cluster.metrics

    def on_any_event(conn: Connection, event: ConnectionEvent) -> None:
        on_event(conn, event)
        if dashboard is not None:
            dashboard.on_event(conn, event)
        if metrics is not None:
            metrics.on_event(conn, event)

    tune_gc()
    try:
        server = await serve(
            None if dashboard is None else dashboard.handler(echo),
            args.host,
            args.port,
            on_message=echo_message if dashboard is None else None,
            config=config,
            max_size=args.max_size,
            on_event=on_event if dashboard is None and metrics is None else on_any_event,
            http_handler=chain_http(
                None if metrics is None else metrics.http_handler,
                None if dashboard is None else dashboard.http_handler,
            ),
            process_request=None if dashboard is None else dashboard.process_request,
            reuse_port=cluster is not None,
        )
    except OSError as exc:
        what = exc.strerror or str(exc)
        return error(f"cannot listen on {args.host}:{args.port}: {what}")
    log(
        "listening",
        f"listening on {format_peer((args.host, server.port))} (mode {args.mode}, interval "
        f"{args.interval:g} s, timeout {args.timeout:g} s"
        + (f", probe every {args.probe_interval:g} s" if args.probe_interval else "")
        + f"; loop {args.loop_name}"
        + ("; a line per answered heartbeat" if log_rtt else "")
        + "); Ctrl-C to stop",
        host=args.host,
        port=server.port,
        mode=args.mode,
        interval=args.interval,
        timeout=args.timeout,
        probe_interval=args.probe_interval or None,
        loop=args.loop_name,
        rtt_log=log_rtt,
    )
    if metrics is not None:
        url = f"http://{format_peer((args.host, server.port))}{METRICS_PATH}"
        log("metrics", f"metrics on {url} (--no-metrics turns them off)", url=url)
    elif no_metrics is not None:
        log("warning", f"warning {no_metrics}", message=no_metrics)
    if dashboard is not None:
        url = f"http://{format_peer((args.host, server.port))}/"
        log("dashboard", f"dashboard on {url} (--no-dashboard turns it off)", url=url)
    for finding in config.findings():
        log("warning", f"warning {finding}", message=finding)
    if cluster is not None:
        await cluster.start(server.port, lost=stop.set)
    await stop.wait()
    count = len(server.connections)
    log(
        "shutdown",
        f"{got[0] if got else 'stop'}: closing {count} connection(s) with 1001",
        signal=got[0] if got else None,
        connections=count,
    )
    await server.close(1001, "going away", timeout=max(args.close_timeout, 0.1))
    await server.wait_closed()
    if cluster is not None:
        await cluster.close()
    if out.dropped:
        log("stopped", f"stopped ({out.dropped} log lines dropped)", dropped=out.dropped)
    else:
        log("stopped", "stopped")
    return EXIT_OK
