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
from collections.abc import Callable

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from heartbeat_core import ActionRunner, EventCallback, HeartbeatConfig

__all__ = ["SansioHeartbeat", "drive", "serve", "watch"]

log = logging.getLogger("heartbeat_core.examples.websockets_sansio")


class SansioHeartbeat(ActionRunner):
    """The core's actions carried out with websockets' sans-IO protocol and an asyncio
    stream (``ActionRunner`` does the dispatch): frames through ``protocol.send_*``,
    the timer is the deadline ``drive()`` reads until."""

    def __init__(
        self,
        protocol: ServerProtocol | ClientProtocol,
        writer: asyncio.StreamWriter,
        config: HeartbeatConfig | None,
        on_event: EventCallback,
    ) -> None:
        super().__init__(config, on_event=on_event)
        self.protocol, self.writer = protocol, writer
        self.loop = asyncio.get_running_loop()
        self.wake: float | None = None

    def now(self) -> float:
        return self.loop.time()

    def file_timer(self, when: float | None) -> None:
        self.wake = when

    def flush(self) -> None:  # websockets queues bytes; b"" (half-close) is CloseTransport's
        for data in self.protocol.data_to_send():
            if data:
                self.writer.write(data)

    def send_ping(self, payload: bytes) -> None:
        self.protocol.send_ping(payload)

    def send_pong(self, payload: bytes) -> None:
        """Nothing: websockets answers every ping itself (the core only counts them)."""

    def send_text(self, text: str) -> None:
        self.protocol.send_text(text.encode())

    def send_close(self, code: int, reason: str) -> None:
        if self.protocol.state is State.OPEN:
            self.protocol.send_close(code, reason)

    def close_transport(self) -> None:
        self.flush()
        self.writer.close()  # asyncio flushes what was written, then closes

    def abort(self) -> None:
        self.writer.transport.abort()


async def drive(
    protocol: ServerProtocol | ClientProtocol,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    config: HeartbeatConfig | None,
    on_event: EventCallback,
    on_text: Callable[[str], str | None],
) -> None:
    """Run one connection until its socket is gone; ``on_text``'s answers are sent back."""
    beat = SansioHeartbeat(protocol, writer, config, on_event)
    beat.flush()  # a client's upgrade request
    try:
        while True:
            wake = beat.wake
            timeout = None if wake is None else max(0.0, wake - beat.now())
            try:
                data = await asyncio.wait_for(reader.read(65536), timeout)
            except TimeoutError:
                beat.timer_due()  # (early by a hair: the core waits)
                beat.flush()
                continue
            if not data:  # EOF: the transport is gone
                writer.close()
                return
            beat.received()  # any inbound byte is a sign of life
            protocol.receive_data(data)
            for event in protocol.events_received():
                if isinstance(event, (Request, Response)):  # the opening handshake
                    if isinstance(event, Request):  # server side: answer it
                        assert isinstance(protocol, ServerProtocol)
                        protocol.send_response(response := protocol.accept(event))
                    else:
                        response = event
                    if response.status_code != 101:  # refused (or not an upgrade): done
                        beat.flush()
                        writer.close()
                        return
                    beat.opened()
                    continue
                assert isinstance(event, Frame)
                if event.opcode is Opcode.PING:
                    beat.ping_received(bytes(event.data))
                elif event.opcode is Opcode.PONG:
                    beat.pong_received(bytes(event.data))
                elif event.opcode is Opcode.CLOSE and protocol.close_rcvd is not None:
                    beat.close_received(protocol.close_rcvd.code, protocol.close_rcvd.reason)
                elif event.opcode is Opcode.TEXT and protocol.state is State.OPEN:
                    answer = on_text(bytes(event.data).decode())  # the application
                    if answer is not None:
                        protocol.send_text(answer.encode())
            if protocol.parser_exc is not None:  # websockets failed the connection
                beat.fail(1002)
            beat.flush()
    finally:
        beat.lost()


def _echo(text: str) -> str:
    """The server's application: send every text message back."""
    return text


async def serve(
    host: str = "127.0.0.1",
    port: int = 8765,
    config: HeartbeatConfig | None = None,
    on_event: EventCallback = lambda conn, event: log.info("%s", event),
) -> asyncio.Server:
    """Start the echo server; ``on_event`` sees every RTT sample, death and close."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await drive(
            ServerProtocol(), reader, writer, config=config, on_event=on_event, on_text=_echo
        )

    return await asyncio.start_server(handle, host, port)


async def watch(
    uri: str,
    config: HeartbeatConfig | None = None,
    on_event: EventCallback = lambda conn, event: log.info("%s", event),
    on_text: Callable[[str], None] = print,
) -> None:
    """Connect to ``uri`` and hand every text message to ``on_text`` until the connection
    ends: closed by the server, or the server found dead by the heartbeat."""
    target = parse_uri(uri)
    reader, writer = await asyncio.open_connection(target.host, target.port)
    protocol = ClientProtocol(target)
    protocol.send_request(protocol.connect())
    await drive(protocol, reader, writer, config=config, on_event=on_event, on_text=on_text)


async def _main() -> None:
    server = await serve()
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    asyncio.run(_main())
