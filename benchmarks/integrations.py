"""The framework integrations against the frameworks' own keepalive, in the same run.

For each framework (websockets, aiohttp, an ASGI application under uvicorn), two servers
in turn, each in a process of its own: **own** (the framework's keepalive: websockets'
``ping_interval``/``ping_timeout``, aiohttp's ``heartbeat``, uvicorn's
``ws_ping_interval``/``ws_ping_timeout``) and **ours** (heartbeat_websockets,
heartbeat_aiohttp, heartbeat_asgi with the same interval and timeout; the framework's
keepalive off). One load client process opens N idle connections and answers every ping
frame and every ``{"type":"ping"}`` message. Measured:

* CPU per heartbeat round trip: the server's CPU time (utime + stime) over a window,
  divided by the heartbeats the client answered in it;
* detection: the client is frozen with SIGSTOP; for each connection, the time from the
  freeze until the server's handler learns the peer is gone (ours: ``PeerDead``; own: the
  handler's loop ends), first / median / last, against interval + timeout.

    python benchmarks/integrations.py -n 1000 --interval 1 --timeout 1 --window 10

Nothing here is a test; compare figures only within one run, on an idle machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import selectors
import signal
import socket
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [HERE, ROOT, os.path.join(ROOT, "adapters")]

from loadclient import raise_nofile_limit  # noqa: E402
from procs import Child, proc_cpu  # noqa: E402

FRAMEWORKS = ("websockets", "aiohttp", "asgi")
APP_PING, APP_PONG = b'{"type":"ping"}', b'{"type":"pong"}'
MASK = b"\x37\xfa\x21\x3d"


# ------------------------------------------------------------------- servers


def _gone(count: list[int]) -> None:
    """A handler learned its peer is gone: one line, the time on the shared clock."""
    count[0] += 1
    print(json.dumps({"gone": time.monotonic(), "n": count[0]}), flush=True)


async def serve(framework: str, variant: str, interval: float, timeout: float) -> None:
    from heartbeat_core import HeartbeatConfig, HeartbeatStyle, PeerDead

    style = HeartbeatStyle.APP if framework == "asgi" else HeartbeatStyle.PROTOCOL
    config = HeartbeatConfig(interval=interval, timeout=timeout, close_timeout=1.0, style=style)
    gone = [0]
    ours = variant == "ours"

    def on_event(conn: object, event: object) -> None:
        if isinstance(event, PeerDead):
            _gone(gone)

    sock = socket.create_server(("127.0.0.1", 0), backlog=1024)
    port = sock.getsockname()[1]
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)

    if framework == "websockets":
        import heartbeat_websockets
        from websockets.asyncio.server import serve as ws_serve

        async def handler(ws: object) -> None:
            with contextlib.suppress(Exception):
                async for _ in ws:  # type: ignore[attr-defined]
                    pass
            if not ours:
                _gone(gone)

        if ours:
            server = heartbeat_websockets.serve(
                handler, sock=sock, config=config, on_event=on_event
            )
        else:
            server = ws_serve(
                handler, sock=sock, ping_interval=interval, ping_timeout=timeout, close_timeout=1.0
            )
        async with server:
            print(f"READY {port}", flush=True)
            await stop.wait()
    elif framework == "aiohttp":
        import heartbeat_aiohttp
        from aiohttp import web

        async def aio_handler(request: web.Request) -> web.StreamResponse:
            if ours:
                ws: web.WebSocketResponse = heartbeat_aiohttp.HeartbeatWebSocketResponse(
                    config=config, on_event=on_event
                )
            else:
                ws = web.WebSocketResponse(heartbeat=interval)
            await ws.prepare(request)
            async for _ in ws:
                pass
            if not ours:
                _gone(gone)
            return ws

        app = web.Application()
        app.router.add_get("/", aio_handler)
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        print(f"READY {port}", flush=True)
        await stop.wait()
        await runner.cleanup()
    else:
        import uvicorn
        from heartbeat_asgi import HeartbeatMiddleware
        from starlette.applications import Starlette
        from starlette.routing import WebSocketRoute
        from starlette.websockets import WebSocket, WebSocketDisconnect

        async def endpoint(websocket: WebSocket) -> None:
            await websocket.accept()
            with contextlib.suppress(WebSocketDisconnect):
                while True:
                    await websocket.receive_text()
            if not ours:
                _gone(gone)

        asgi: object = Starlette(routes=[WebSocketRoute("/", endpoint)])
        if ours:
            asgi = HeartbeatMiddleware(asgi, config=config, on_event=on_event)  # type: ignore[arg-type]
        userver = uvicorn.Server(
            uvicorn.Config(
                asgi,  # type: ignore[arg-type]
                ws="websockets-sansio",
                ws_ping_interval=None if ours else interval,
                ws_ping_timeout=None if ours else timeout,
                lifespan="off",
                log_level="error",
                backlog=1024,
            )
        )
        userver.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        task = asyncio.create_task(userver.serve(sockets=[sock]))
        while not userver.started:
            await asyncio.sleep(0.01)
        print(f"READY {port}", flush=True)
        await stop.wait()
        userver.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 15)


# --------------------------------------------------------------- load client


def _masked(opcode: int, payload: bytes) -> bytes:
    body = bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))
    return bytes((0x80 | opcode, 0x80 | len(payload))) + MASK + body


def clients(port: int, n: int) -> None:
    """N idle connections answering ping frames and {"type":"ping"} messages; MARK on
    stdin prints how many heartbeats were answered."""
    raise_nofile_limit()
    request = (
        f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    app_pong = _masked(0x1, APP_PONG)
    sel = selectors.DefaultSelector()
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.sendall(request)
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(4096)
        assert head.startswith(b"HTTP/1.1 101"), head[:80]
        s.setblocking(False)
        socks.append(s)
        sel.register(s, selectors.EVENT_READ, [head.partition(b"\r\n\r\n")[2]])
    sel.register(sys.stdin, selectors.EVENT_READ, None)
    print(f"CONNECTED {n}", flush=True)
    answered = 0
    while True:
        for key, _ in sel.select(1.0):
            if key.data is None:
                line = sys.stdin.readline()
                if not line or line.strip() == "QUIT":
                    return
                print(json.dumps({"answered": answered}), flush=True)
                continue
            s = key.fileobj
            assert isinstance(s, socket.socket)
            try:
                data = s.recv(65536)
            except OSError:
                data = b""
            if not data:
                sel.unregister(s)
                continue
            buf = key.data[0] + data
            out = []
            while len(buf) >= 2 and len(buf) >= 2 + (buf[1] & 0x7F):
                opcode, size = buf[0] & 0x0F, buf[1] & 0x7F  # (server frames: small, unmasked)
                payload, buf = buf[2 : 2 + size], buf[2 + size :]
                if opcode == 0x9:
                    out.append(_masked(0xA, payload))
                    answered += 1
                elif opcode == 0x1 and payload == APP_PING:
                    out.append(app_pong)
                    answered += 1
            key.data[0] = buf
            if out:
                with contextlib.suppress(OSError):
                    s.send(b"".join(out))


# -------------------------------------------------------------------- runner


def measure(framework: str, variant: str, args: argparse.Namespace) -> dict[str, object]:
    me = [sys.executable, os.path.abspath(__file__)]
    server = Child([*me, "--serve", framework, variant, *_timing(args)])
    port = int(server.readline(30.0).split()[1])
    client = Child([*me, "--clients", str(port), "-n", str(args.n)])
    try:
        client.readline(60.0 + args.n / 100)
        time.sleep(args.warmup)
        client.send("MARK")
        before, cpu0 = json.loads(client.readline(10.0))["answered"], proc_cpu(server.pid)
        time.sleep(args.window)
        client.send("MARK")
        after, cpu1 = json.loads(client.readline(10.0))["answered"], proc_cpu(server.pid)
        rounds = after - before
        # Detection: freeze every peer at once; each handler reports when it knows.
        os.kill(client.pid, signal.SIGSTOP)
        frozen = time.monotonic()
        found: list[float] = []
        end = frozen + args.interval + args.timeout + 10.0
        while len(found) < args.n and time.monotonic() < end:
            try:
                line = server.readline(end - time.monotonic())
            except TimeoutError:
                break
            found.append(json.loads(line)["gone"] - frozen)
        result = {
            "framework": framework,
            "variant": variant,
            "n": args.n,
            "round_trips": rounds,
            "expected_round_trips": round(args.n * args.window / args.interval),
            "cpu_us_per_round_trip": round((cpu1 - cpu0) / rounds * 1e6, 1) if rounds else None,
            "detected": len(found),
            "detect_first_ms": round(min(found) * 1000) if found else None,
            "detect_median_ms": round(statistics.median(found) * 1000) if found else None,
            "detect_last_ms": round(max(found) * 1000) if found else None,
        }
    finally:
        client.kill()
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(20)
        except Exception:
            server.kill()
    return result


def _timing(args: argparse.Namespace) -> list[str]:
    return ["--interval", str(args.interval), "--timeout", str(args.timeout)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=1000, help="idle connections")
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=1.0)
    parser.add_argument("--window", type=float, default=10.0, help="CPU window, s")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--frameworks", nargs="+", default=list(FRAMEWORKS), choices=FRAMEWORKS)
    parser.add_argument("--json", help="append the results to this file, one JSON line each")
    parser.add_argument(
        "--serve", nargs=2, metavar=("FRAMEWORK", "VARIANT"), help=argparse.SUPPRESS
    )
    parser.add_argument("--clients", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        raise_nofile_limit()
        asyncio.run(serve(*args.serve, args.interval, args.timeout))
        return
    if args.clients:
        clients(args.clients, args.n)
        return
    print(
        f"N={args.n} idle connections, interval {args.interval:g} s, timeout "
        f"{args.timeout:g} s, window {args.window:g} s; load: {os.getloadavg()[0]:.2f}"
    )
    print("framework   variant  round trips   CPU/round trip   detected  first/median/last (ms)")
    for framework in args.frameworks:
        for variant in ("own", "ours"):
            r = measure(framework, variant, args)
            rounds = f"{r['round_trips']}/{r['expected_round_trips']}"
            print(
                f"{framework:<11} {variant:<7} {rounds:>13} "
                f"{r['cpu_us_per_round_trip']!s:>9} us   {r['detected']:>6}    "
                f"{r['detect_first_ms']}/{r['detect_median_ms']}/{r['detect_last_ms']}",
                flush=True,
            )
            if args.json:
                with open(args.json, "a") as f:
                    f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
