"""A third runtime: heartbeats on trio, with wsproto parsing the frames.

The whole driver is the loop in ``handle``: read until the core's deadline,
turn wsproto's events into core events, carry out the core's actions. Run it,
then connect to ws://127.0.0.1:8766/ : it echoes text and pings every 20 s.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from functools import partial

import trio
from wsproto import ConnectionType, WSConnection
from wsproto import events as ws
from wsproto.connection import ConnectionState
from wsproto.utilities import RemoteProtocolError

import heartbeat_core as hb

__all__ = ["handle", "serve"]

log = logging.getLogger("heartbeat_core.examples.trio_wsproto")
OnAction = Callable[[hb.Action], None]
_CAN_CLOSE = (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING)


async def handle(
    stream: trio.SocketStream, config: hb.HeartbeatConfig | None, on_action: OnAction
) -> None:
    """Serve one connection: an echo, with heartbeats."""
    conn = WSConnection(ConnectionType.SERVER)
    state = hb.HeartbeatState(config)
    out = bytearray()

    def apply(actions: Iterable[hb.Action]) -> bool:
        """Queue what the actions send; False when the transport must close now."""
        for action in actions:
            if isinstance(action, hb.SendPing):
                out.extend(conn.send(ws.Ping(payload=action.payload)))
            elif isinstance(action, hb.SendPong) and conn.state is ConnectionState.OPEN:
                out.extend(conn.send(ws.Pong(payload=action.payload)))
            elif isinstance(action, hb.SendClose) and conn.state in _CAN_CLOSE:
                out.extend(conn.send(ws.CloseConnection(code=action.code, reason=action.reason)))
            elif isinstance(action, (hb.CloseTransport, hb.Abort)):
                return False
            elif isinstance(action, (hb.RttSample, hb.PeerDead)):
                on_action(action)
        return True

    def receive(data: bytes, now: float) -> bool:
        """Feed wsproto, and its events to the core; False when the transport must close."""
        if state.is_open:
            state.handle(hb.BytesReceived(now=now))  # any inbound byte is a sign of life
        conn.receive_data(data)
        keep = True
        for event in conn.events():
            if isinstance(event, ws.Request):
                out.extend(conn.send(ws.AcceptConnection()))
                state.handle(hb.ConnectionOpened(now=now))
            elif isinstance(event, ws.Ping):
                keep &= apply(state.handle(hb.PingReceived(now=now, payload=bytes(event.payload))))
            elif isinstance(event, ws.Pong):
                keep &= apply(state.handle(hb.PongReceived(now=now, payload=bytes(event.payload))))
            elif isinstance(event, ws.CloseConnection):
                closed = hb.CloseReceived(now=now, code=event.code, reason=event.reason or "")
                keep &= apply(state.handle(closed))
            elif isinstance(event, ws.TextMessage) and conn.state is ConnectionState.OPEN:
                echo = ws.Message(data=event.data, message_finished=event.message_finished)
                out.extend(conn.send(echo))  # the application: an echo
        return keep

    try:
        while True:
            deadline = state.deadline
            data: bytes | None = None
            with trio.move_on_at(math.inf if deadline is None else deadline):
                data = await stream.receive_some(65536)
            now = trio.current_time()
            if data is None:  # the deadline came first (early by a hair: the core waits)
                keep = apply(state.handle(hb.TimerFired(now=now)))
            elif not data:  # EOF
                break
            else:
                keep = receive(data, now)
            if out:
                await stream.send_all(bytes(out))
                out.clear()
            if not keep:
                break
    except (RemoteProtocolError, trio.BrokenResourceError):
        pass  # not a WebSocket handshake, or the peer vanished mid-write
    finally:
        state.handle(hb.ConnectionClosed(now=trio.current_time()))
        await stream.aclose()


async def serve(
    port: int = 8766,
    config: hb.HeartbeatConfig | None = None,
    on_action: OnAction = lambda action: log.info("%s", action),
    *,
    task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve on 127.0.0.1 until cancelled; ``task_status`` gets the listeners."""
    handler = partial(handle, config=config, on_action=on_action)
    await trio.serve_tcp(handler, port, host="127.0.0.1", task_status=task_status)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    trio.run(serve)
