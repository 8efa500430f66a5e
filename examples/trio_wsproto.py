"""A third runtime: heartbeats on trio, with wsproto parsing the frames.

The whole driver is ``TrioHeartbeat`` (how trio and wsproto carry out each of the
core's actions: ``ActionRunner`` does the dispatch) and the loop in ``handle``: read
until the core's deadline, hand wsproto's events to the runner. Run it,
then connect to ws://127.0.0.1:8766/ : it echoes text and pings every 20 s.
"""

from __future__ import annotations

import logging
import math
from functools import partial

import trio
from wsproto import ConnectionType, WSConnection
from wsproto import events as ws
from wsproto.connection import ConnectionState
from wsproto.utilities import RemoteProtocolError

import heartbeat_core as hb

__all__ = ["TrioHeartbeat", "handle", "serve"]

log = logging.getLogger("heartbeat_core.examples.trio_wsproto")
_CAN_CLOSE = (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING)


class TrioHeartbeat(hb.ActionRunner):
    """The core's actions on trio and wsproto: frames go to ``out`` (sent once per
    step), the timer is the deadline the loop waits until, releasing ends the loop."""

    def __init__(
        self, conn: WSConnection, config: hb.HeartbeatConfig | None, on_event: hb.EventCallback
    ) -> None:
        super().__init__(config, on_event=on_event)
        self.conn, self.out, self.wake, self.done = conn, bytearray(), math.inf, False

    def now(self) -> float:
        return trio.current_time()

    def file_timer(self, when: float | None) -> None:
        self.wake = math.inf if when is None else when

    def send_ping(self, payload: bytes) -> None:
        self.out.extend(self.conn.send(ws.Ping(payload=payload)))

    def send_pong(self, payload: bytes) -> None:
        if self.conn.state is ConnectionState.OPEN:
            self.out.extend(self.conn.send(ws.Pong(payload=payload)))

    def send_close(self, code: int, reason: str) -> None:
        if self.conn.state in _CAN_CLOSE:
            self.out.extend(self.conn.send(ws.CloseConnection(code=code, reason=reason)))

    def close_transport(self) -> None:
        self.done = True  # the loop ends and closes the stream once `out` is sent

    abort = close_transport


async def handle(
    stream: trio.SocketStream, config: hb.HeartbeatConfig | None, on_event: hb.EventCallback
) -> None:
    """Serve one connection: an echo, with heartbeats; ``on_event`` sees RTTs, deaths, closes."""
    conn = WSConnection(ConnectionType.SERVER)
    beat = TrioHeartbeat(conn, config, on_event)

    def receive(data: bytes) -> None:
        """Feed wsproto, and its events to the core."""
        beat.received()  # any inbound byte is a sign of life
        conn.receive_data(data)
        for event in conn.events():
            if isinstance(event, ws.Request):
                beat.out.extend(conn.send(ws.AcceptConnection()))
                beat.opened()
            elif isinstance(event, ws.Ping):
                beat.ping_received(bytes(event.payload))
            elif isinstance(event, ws.Pong):
                beat.pong_received(bytes(event.payload))
            elif isinstance(event, ws.CloseConnection):
                beat.close_received(event.code, event.reason or "")
            elif isinstance(event, ws.TextMessage) and conn.state is ConnectionState.OPEN:
                echo = ws.Message(data=event.data, message_finished=event.message_finished)
                beat.out.extend(conn.send(echo))  # the application: an echo

    try:
        while not beat.done:
            data: bytes | None = None
            with trio.move_on_at(beat.wake):
                data = await stream.receive_some(65536)
            if data is None:  # the deadline came first (early by a hair: the core waits)
                beat.timer_due()
            elif not data:  # EOF
                break
            else:
                receive(data)
            if beat.out:
                await stream.send_all(bytes(beat.out))
                beat.out.clear()
    except (RemoteProtocolError, trio.BrokenResourceError):
        pass  # not a WebSocket handshake, or the peer vanished mid-write
    finally:
        beat.lost()
        await stream.aclose()


async def serve(
    port: int = 8766,
    config: hb.HeartbeatConfig | None = None,
    on_event: hb.EventCallback = lambda conn, event: log.info("%s", event),
    *,
    task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve on 127.0.0.1 until cancelled; ``task_status`` gets the listeners."""
    handler = partial(handle, config=config, on_event=on_event)
    await trio.serve_tcp(handler, port, host="127.0.0.1", task_status=task_status)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    trio.run(serve)
