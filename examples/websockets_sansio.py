"""Heartbeats for the websockets library's sans-IO protocols, on asyncio streams.

websockets parses the frames (and answers pings itself); heartbeat-core decides
when to ping and when the peer is dead. The same loop drives a
``ServerProtocol`` (``serve``: an echo server) and a ``ClientProtocol``
(``watch``: a client that prints what the server sends). Run it, then connect
any WebSocket client to ws://127.0.0.1:8765/ : it echoes text and pings every 20 s.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from heartbeat_core import (
    Abort,
    Action,
    BytesReceived,
    CloseReceived,
    CloseTransport,
    ConnectionClosed,
    ConnectionOpened,
    HeartbeatConfig,
    HeartbeatState,
    PeerDead,
    PingReceived,
    PongReceived,
    RttSample,
    SendClose,
    SendPing,
    TimerFired,
)

__all__ = ["drive", "serve", "watch"]

log = logging.getLogger("heartbeat_core.examples.websockets_sansio")
OnAction = Callable[[Action], None]


async def drive(
    protocol: ServerProtocol | ClientProtocol,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    config: HeartbeatConfig | None,
    on_action: OnAction,
    on_text: Callable[[str], str | None],
) -> None:
    """Run one connection until its socket is gone; ``on_text``'s answers are sent back."""
    loop = asyncio.get_running_loop()
    state = HeartbeatState(config)

    def flush() -> None:  # websockets queues bytes; b"" means "half-close", done by CloseTransport
        for data in protocol.data_to_send():
            if data:
                writer.write(data)

    def apply(actions: Iterable[Action]) -> None:
        for action in actions:
            if isinstance(action, SendPing):
                protocol.send_ping(action.payload)
            elif isinstance(action, SendClose) and protocol.state is State.OPEN:
                protocol.send_close(action.code, action.reason)
            elif isinstance(action, CloseTransport):
                flush()
                writer.close()  # asyncio flushes what was written, then closes
            elif isinstance(action, Abort):
                writer.transport.abort()
            elif isinstance(action, (RttSample, PeerDead)):
                on_action(action)
            # SendPong: websockets already answered the ping itself.
        flush()

    flush()  # a client's upgrade request
    while True:
        deadline = state.deadline
        timeout = None if deadline is None else max(0.0, deadline - loop.time())
        try:
            data = await asyncio.wait_for(reader.read(65536), timeout)
        except TimeoutError:
            assert deadline is not None
            apply(state.handle(TimerFired(now=max(deadline, loop.time()))))
            continue
        now = loop.time()
        if not data:  # EOF: the transport is gone
            state.handle(ConnectionClosed(now=now))
            writer.close()
            return
        if state.is_open:
            state.handle(BytesReceived(now=now))  # any inbound byte is a sign of life
        protocol.receive_data(data)
        for event in protocol.events_received():
            if isinstance(event, (Request, Response)):  # the opening handshake
                if isinstance(event, Request):  # server side: answer it
                    assert isinstance(protocol, ServerProtocol)
                    protocol.send_response(response := protocol.accept(event))
                else:
                    response = event
                if response.status_code != 101:  # refused (or not an upgrade): done
                    flush()
                    writer.close()
                    return
                state.handle(ConnectionOpened(now=now))
                continue
            assert isinstance(event, Frame)
            if event.opcode is Opcode.PING:
                apply(state.handle(PingReceived(now=now, payload=bytes(event.data))))
            elif event.opcode is Opcode.PONG:
                apply(state.handle(PongReceived(now=now, payload=bytes(event.data))))
            elif event.opcode is Opcode.CLOSE and protocol.close_rcvd is not None:
                close = protocol.close_rcvd
                apply(state.handle(CloseReceived(now=now, code=close.code, reason=close.reason)))
            elif event.opcode is Opcode.TEXT and protocol.state is State.OPEN:
                answer = on_text(bytes(event.data).decode())  # the application
                if answer is not None:
                    protocol.send_text(answer.encode())
        if protocol.parser_exc is not None and state.is_open:  # websockets failed the connection
            apply(state.handle(CloseReceived(now=now, code=1002, error=True)))
        flush()


def _echo(text: str) -> str:
    """The server's application: send every text message back."""
    return text


async def serve(
    host: str = "127.0.0.1",
    port: int = 8765,
    config: HeartbeatConfig | None = None,
    on_action: OnAction = lambda action: log.info("%s", action),
) -> asyncio.Server:
    """Start the echo server; ``on_action`` sees every ``RttSample`` and ``PeerDead``."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await drive(
            ServerProtocol(), reader, writer, config=config, on_action=on_action, on_text=_echo
        )

    return await asyncio.start_server(handle, host, port)


async def watch(
    uri: str,
    config: HeartbeatConfig | None = None,
    on_action: OnAction = lambda action: log.info("%s", action),
    on_text: Callable[[str], None] = print,
) -> None:
    """Connect to ``uri`` and hand every text message to ``on_text`` until the connection
    ends: closed by the server, or the server found dead by the heartbeat."""
    target = parse_uri(uri)
    reader, writer = await asyncio.open_connection(target.host, target.port)
    protocol = ClientProtocol(target)
    protocol.send_request(protocol.connect())
    await drive(protocol, reader, writer, config=config, on_action=on_action, on_text=on_text)


async def _main() -> None:
    server = await serve()
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    asyncio.run(_main())
