"""What both drivers share, tested without a runtime: DriverBase, ServerPolicy, ConnectionOptions.

A fake driver records what the shared code asks of its runtime (write, close,
abort, pause, resume, file the timer); a client HeartbeatConnection plays the
peer. No socket, no clock: ``now`` is a number the test moves.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from heartbeat_core import (
    Abort,
    Accepted,
    Closed,
    CloseTransport,
    Closing,
    ConfigError,
    ConnectionOptions,
    DriverBase,
    HandshakeError,
    HeartbeatConfig,
    HeartbeatConnection,
    HttpRequest,
    Message,
    Request,
    Role,
    ServerPolicy,
)
from heartbeat_core.state import send_from
from heartbeat_core.timers import TimerWheel

QUIET = HeartbeatConfig(interval=30, timeout=10, close_timeout=2)
log = logging.getLogger("tests.driver")


class FakeDriver(DriverBase):
    """Records every request the shared code makes of its runtime."""

    def __init__(self, role: Role, config: HeartbeatConfig = QUIET, **kwargs: Any) -> None:
        options = ConnectionOptions(config=config, max_queue=2)
        super().__init__(options.new_core(role), options.new_queue(), logger=log, **kwargs)
        self.now = 0.0
        self.calls: list[Any] = []
        self.wire = b""

    def _rt_now(self) -> float:
        return self.now

    def _rt_write(self, data: bytes) -> None:
        self.wire += data

    def _rt_close(self) -> None:
        self.calls.append("close")

    def _rt_abort(self) -> None:
        self.calls.append("abort")

    def _rt_pause(self) -> None:
        self.calls.append("pause")

    def _rt_resume(self) -> None:
        self.calls.append("resume")

    def _rt_file(self, when: float | None) -> None:
        self.calls.append(("file", when))

    def _rt_deliver(self, data: str | bytes) -> bool:
        return self.queue.push(data)

    def _rt_stop_pausing(self) -> bool:
        return self.queue.stop_pausing()

    def _opened(self) -> None:
        self.calls.append("opened")

    def _refused(self, error: HandshakeError) -> None:
        self.calls.append(("refused", error.status))

    def _ping_answered(self, payload: bytes, rtt: float) -> None:
        self.calls.append(("answered", rtt))

    def take(self) -> bytes:
        data, self.wire = self.wire, b""
        return data


def upgraded(server: FakeDriver, *, subprotocols: tuple[str, ...] = ()) -> HeartbeatConnection:
    client = HeartbeatConnection(Role.CLIENT, QUIET)
    client.initiate("h", "/chat?token=secret", subprotocols=subprotocols)
    server._transport_made()
    server._received(client.data_to_send())
    client.receive_data(server.take(), server.now)
    return client


def test_a_server_connection_lives_through_the_shared_code() -> None:
    seen: list[tuple[str, int | None]] = []
    server = FakeDriver(
        Role.SERVER,
        on_event=lambda conn, event: seen.append((type(event).__name__, conn.close_code)),
        policy=ServerPolicy(logger=log),
    )
    client = upgraded(server)
    assert client.is_open and server.calls[:2] == [("file", 10.0), "opened"]
    assert (server.path, server.subprotocol) == ("/chat?token=secret", None)
    # Three messages: the queue (max_queue=2) pauses reading, and tells the core.
    for text in ("a", "b", "c"):
        client.send(text)
    server.now = 1.0
    server._received(client.data_to_send())
    assert "pause" in server.calls and server.core.reading_paused
    assert len(server.queue) == 3
    # The peer closes: no more messages, so reading resumes for its close frame.
    client.close(1.5, 1001, "bye")
    server.now = 1.5
    server._received(client.data_to_send())
    assert server.calls[-3:] == ["resume", "close", ("file", 3.5)]
    assert (server.close_code, server.close_reason, server.closed_by) == (1001, "bye", "remote")
    closed = server._transport_lost()
    assert closed == Closed(code=1001, reason="bye", by="remote")
    names = [name for name, _ in seen]
    assert names[:2] == ["Request", "Accepted"]
    assert names[2:5] == ["Message", "Message", "Message"]
    assert names[-3:] == ["Closing", "CloseTransport", "Closed"]
    assert dict(seen)["Closing"] == 1001  # carried out before on_event saw it


@pytest.mark.parametrize("watched", [False, True])
def test_one_message_per_read_is_delivered_alike_with_or_without_on_event(
    watched: bool,
) -> None:
    # Without on_event, a read of one message takes a shorter way through _process:
    # delivered, reading paused at max_queue (2), the timer filed after each read.
    seen: list[str] = []
    server = FakeDriver(
        Role.SERVER,
        on_event=(lambda conn, event: seen.append(type(event).__name__)) if watched else None,
        policy=ServerPolicy(logger=log),
    )
    client = upgraded(server)
    del server.calls[:]
    for i, text in enumerate(("a", "b", "c"), start=1):
        client.send(text)
        server.now = float(i)
        server._received(client.data_to_send())
    assert [server.queue.pop()[0] for _ in range(3)] == ["a", "b", "c"]
    assert server.core.reading_paused
    # (the second message fills the queue; interval 30 s after each message)
    assert server.calls == [("file", 31.0), "pause", ("file", 32.0), ("file", 33.0)]
    assert seen == (["Request", "Accepted"] + ["Message"] * 3 if watched else [])


@pytest.mark.parametrize("fixed_rate", [False, True])
def test_a_message_read_files_the_timer_again_only_for_a_fixed_rate(fixed_rate: bool) -> None:
    # A message is a sign of life: it moves wake_at later, never earlier, so a filed
    # connection stays filed where it is (and wakes early, harmlessly). A fixed-rate
    # heartbeat's schedule does not move with signs of life: its filing is checked.
    config = HeartbeatConfig(interval=30, timeout=10, close_timeout=2, fixed_rate=fixed_rate)
    server = WheelDriver(TimerWheel(), config=config)
    client = upgraded(server)
    assert server in server.wheel
    filed = server.wheel.next_wake
    del server.calls[:]
    client.send("a")
    server.now = 1.0
    server._received(client.data_to_send())
    assert server.queue.pop() == ("a", False)
    assert server.calls == ([("file", server.core.wake_at)] if fixed_rate else [])
    assert server.wheel.next_wake == filed
    # A ping and a message in one read: the message is delivered and the ping answered.
    client.ping(2.0)
    client.send("b")
    server.now = 2.0
    server._received(client.data_to_send())
    assert server.queue.pop() == ("b", False)
    answered = client.receive_data(server.take(), 2.5)
    assert [type(event).__name__ for event in answered] == ["PingAnswered"]


def test_on_event_that_closes_sees_the_events_in_the_cores_order() -> None:
    # on_event closes at the first of two messages read at once: the driver is already
    # carrying out that read's events, so the close's come after the second message.
    seen: list[str] = []

    def on_event(conn: Any, event: Any) -> None:
        seen.append(type(event).__name__ if not isinstance(event, Message) else event.data)
        if isinstance(event, Message) and event.data == "first":
            conn._process(conn.core.close(conn.now, 1000, "enough"), conn.now)

    server = FakeDriver(Role.SERVER, on_event=on_event, policy=ServerPolicy(logger=log))
    client = upgraded(server)
    client.send("first")
    client.send("second")
    server.now = 1.0
    server._received(client.data_to_send())
    assert seen[2:] == ["first", "second", "Closing"]
    assert server.calls[-1] == ("file", 3.0)  # filed once, after everything: close_timeout
    client.receive_data(server.take(), 1.0)  # the close frame, written once, after it all
    assert client.close_code == 1000 and client.close_reason == "enough"


def test_a_failing_on_event_is_logged_and_changes_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(conn: Any, event: Any) -> None:
        raise RuntimeError("boom")

    server = FakeDriver(Role.SERVER, on_event=broken, policy=ServerPolicy(logger=log))
    with caplog.at_level(logging.ERROR, logger="tests.driver"):
        client = upgraded(server)
    assert client.is_open
    assert any("on_event callback failed" in r.getMessage() for r in caplog.records)


class ShuttingDown(FakeDriver):
    def _refusing(self) -> bool:
        return True


def test_a_shutting_down_server_refuses_with_503() -> None:
    server = ShuttingDown(Role.SERVER, policy=ServerPolicy(logger=log))
    client = upgraded(server)
    assert not client.is_open and "close" in server.calls
    server.now = 2.0
    server._timer_due()
    assert server.calls[-2:] == ["abort", ("file", None)]  # close_timeout: aborted


def test_a_refused_client_is_told_why() -> None:
    client = FakeDriver(Role.CLIENT)
    client.core.initiate("h")
    client._transport_made()
    client._flush()
    client._received(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
    assert ("refused", 403) in client.calls and "close" in client.calls


def test_ping_answers_reach_the_driver() -> None:
    server = FakeDriver(Role.SERVER, policy=ServerPolicy(logger=log))
    client = upgraded(server)
    payload = server.core.ping(0.0)
    server._flush()
    server.now = 0.25
    client.receive_data(server.take(), 0.25)
    server._received(client.data_to_send())
    assert ("answered", 0.25) in server.calls
    del payload


# ----------------------------------------------------------------- policy


def answer(policy: ServerPolicy, head: bytes) -> tuple[list[Any], bytes]:
    core = HeartbeatConnection(Role.SERVER, QUIET)
    (request,) = core.receive_data(head, 0.0)
    assert isinstance(request, (Request, HttpRequest))
    events = policy.answer(core, request, 0.0)
    return events, core.data_to_send()


GET = b"GET /x?token=secret HTTP/1.1\r\nHost: h\r\n\r\n"
UPGRADE = (
    b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Protocol: chat\r\n\r\n"
)


@pytest.mark.parametrize(
    "handler",
    [
        lambda target: (99, [], b""),  # not a status
        lambda target: (200, [], "text"),  # not bytes
        lambda target: 42,  # not a tuple
        lambda target: 1 / 0,  # raises
    ],
)
def test_a_broken_http_handler_answers_500_and_logs_no_query(
    handler: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="tests.driver"):
        events, wire = answer(ServerPolicy(http_handler=handler, logger=log), GET)
    assert events == [CloseTransport()] and wire.startswith(b"HTTP/1.1 500 ")
    (record,) = caplog.records
    assert "/x?..." in record.getMessage() and "secret" not in record.getMessage()


def test_http_answers() -> None:
    _, wire = answer(ServerPolicy(http_handler=lambda target: None), GET)
    assert wire.startswith(b"HTTP/1.1 426 ")
    _, wire = answer(ServerPolicy(http_handler=lambda target: (204, [("x", "y")], b"")), GET)
    assert wire.startswith(b"HTTP/1.1 204 ") and b"x: y\r\n" in wire


def test_subprotocol_selection() -> None:
    events, wire = answer(ServerPolicy(select_subprotocol=lambda offered: "other"), UPGRADE)
    assert events == [CloseTransport()] and wire.startswith(b"HTTP/1.1 500 ")
    events, wire = answer(ServerPolicy(select_subprotocol=lambda offered: offered[0]), UPGRADE)
    assert events == [Accepted(subprotocol="chat", extra_headers=[])]
    events, wire = answer(ServerPolicy(select_subprotocol=lambda offered: None), UPGRADE)
    assert events == [Accepted(subprotocol=None, extra_headers=[])]


@pytest.mark.parametrize("name", ["select_subprotocol", "http_handler"])
def test_hooks_must_be_callable(name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        ServerPolicy(**{name: "nope"})


# ---------------------------------------------------------------- options


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"config": {"interval": 1}}, "config"),
        ({"codec": "json"}, "codec"),
        ({"max_size": 0}, "max_size"),
        ({"max_size": True}, "max_size"),
        ({"open_timeout": float("nan")}, "open_timeout"),
        ({"open_timeout": True}, "open_timeout"),
        ({"keepalive": 30}, "keepalive"),
        ({"max_queue": 0}, "max_queue"),
    ],
)
def test_options_are_checked_at_construction(options: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        ConnectionOptions(**options)


def test_options_make_cores_and_queues() -> None:
    options = ConnectionOptions(max_size=None, open_timeout=3)
    assert options.config == HeartbeatConfig()
    core = options.new_core(Role.SERVER)
    core.connection_made(1.0)
    assert core.wake_at == 4.0
    assert len(options.new_queue()) == 0


def test_events_without_a_message_are_not_delivered() -> None:
    # (Abort and CloseTransport end the transport; the rest only inform.)
    server = FakeDriver(Role.SERVER, policy=ServerPolicy(logger=log))
    server._process([Abort(), CloseTransport()], 0.0)
    assert server.calls == ["abort", ("file", None)]
    server = FakeDriver(Role.SERVER, policy=ServerPolicy(logger=log))
    server._process([Closing(code=1000, reason="", by_peer=True), Message(data="x")], 0.0)
    assert server.queue.pop() == ("x", False)


def test_the_open_line_is_logged_at_info_without_the_query(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = FakeDriver(Role.SERVER, policy=ServerPolicy(logger=log))
    with caplog.at_level(logging.INFO, logger="tests.driver"):
        upgraded(server)
    (line,) = [r.getMessage() for r in caplog.records if " open: " in r.getMessage()]
    assert "path=/chat" in line and "secret" not in line
    # Not enabled: no line (and no cost of making the path loggable).
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="tests.driver"):
        upgraded(FakeDriver(Role.SERVER, policy=ServerPolicy(logger=log)))
    assert not [r for r in caplog.records if " open: " in r.getMessage()]


@pytest.mark.parametrize("level", [logging.DEBUG, logging.INFO])
def test_each_round_trip_is_logged_only_if_debug_was_on_at_the_start(
    level: int, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(level, logger="tests.driver"):
        server = FakeDriver(Role.SERVER, policy=ServerPolicy(logger=log))
    client = upgraded(server)
    with caplog.at_level(logging.DEBUG, logger="tests.driver"):
        server.now = 30.0
        server._timer_due()
        client.receive_data(server.take(), 30.0)
        server.now = 30.25
        server._received(client.data_to_send())
    assert server.core.heartbeat.stats.last_rtt == 0.25
    logged = "heartbeat 1 rtt=0.250000" in caplog.text
    assert logged is (level == logging.DEBUG)


class WheelDriver(FakeDriver):
    """Files its timer in a real TimerWheel, as both adapters do."""

    def __init__(self, wheel: TimerWheel[Any], **kwargs: Any) -> None:
        super().__init__(Role.SERVER, policy=ServerPolicy(logger=log), **kwargs)
        self.wheel = wheel

    def _rt_file(self, when: float | None) -> None:
        super()._rt_file(when)
        self.wheel.file(self, when)


def wake_until_written(wheel: TimerWheel[Any], server: WheelDriver) -> bytes:
    """Deliver the wheel's wake-ups, each at its time, until the server writes something
    (the first wake-up may be the opening handshake's deadline, which writes nothing)."""
    written = b""
    while not written:
        due = wheel.next_wake
        assert due is not None
        (conn,) = wheel.pop_due(due)
        server.now = due
        conn._timer_due()
        written = server.take()
    return written


def test_a_fixed_rate_heartbeat_overdue_when_its_pong_comes_is_filed_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    wheel: TimerWheel[Any] = TimerWheel()
    with caplog.at_level(logging.INFO, logger="tests.driver"):  # (no RTT debug lines)
        server = WheelDriver(wheel, config=HeartbeatConfig(interval=1, timeout=5, fixed_rate=True))
    client = upgraded(server)
    ping = wake_until_written(wheel, server)
    sent_at = server.now
    # The next heartbeat's wake-up comes before the pong: nothing to do; filed at the timeout.
    due = wheel.next_wake
    assert due is not None and due <= sent_at + 1.001
    (conn,) = wheel.pop_due(due)
    server.now = due
    conn._timer_due()
    assert server.take() == b"" and (wheel.next_wake or 0.0) >= sent_at + 5
    # The pong: the next heartbeat is overdue, and the connection is filed for it at once.
    client.receive_data(ping, server.now)
    server.now += 0.5
    server._received(client.data_to_send())
    assert server.core.heartbeat.stats.pongs_received == 1
    assert (wheel.next_wake or 0.0) <= server.now + 0.001
    (conn,) = wheel.pop_due(server.now + 0.001)
    conn._timer_due()
    assert server.take()[:1] == b"\x89"  # the ping


def test_a_pong_leaves_a_filed_connection_where_it_is_and_heartbeats_keep_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    wheel: TimerWheel[Any] = TimerWheel()
    with caplog.at_level(logging.INFO, logger="tests.driver"):  # (no RTT debug lines)
        server = WheelDriver(wheel)
    client = upgraded(server)
    pong_at = None
    for beat in range(1, 4):
        ping = wake_until_written(wheel, server)  # the heartbeat goes out; filed again
        if pong_at is not None:
            # interval (30 s) after the last pong: up to timer_slack early (from its last
            # multiple before), 1 ms late at most
            start = send_from(pong_at + 30, server.core.config.slack)
            assert (
                pong_at + 30 - server.core.config.slack
                <= start
                <= server.now
                <= start + 0.001 + 1e-9
            )
        client.receive_data(ping, server.now)
        filed = wheel.next_wake
        server.calls.clear()
        server.now += 0.001
        server._received(client.data_to_send())  # the pong: no filing asked for
        pong_at = server.now
        assert server.calls == [] and wheel.next_wake == filed and server in wheel
        assert server.core.heartbeat.stats.pongs_received == beat
    # Not filed (it never is, say, while reading is paused): the pong files it.
    wheel.unfile(server)
    server.now = 200.0
    server._timer_due()
    client.receive_data(server.take(), server.now)
    wheel.unfile(server)
    server.now = 200.001
    server._received(client.data_to_send())
    assert server.calls[-1] == ("file", server.core.heartbeat.wake_at) and server in wheel


def test_a_read_with_a_pong_and_a_ping_writes_the_answer_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The short path for a pong nobody is told of must still write what the rest of the
    # read queued: here the answer to a ping that came with the pong.
    with caplog.at_level(logging.INFO, logger="tests.driver"):  # (no RTT debug lines)
        server = FakeDriver(Role.SERVER, policy=ServerPolicy(logger=log))
    client = upgraded(server)
    server.now = 30.0
    server._timer_due()
    client.receive_data(server.take(), 30.0)  # the heartbeat; the client queues its pong
    client.ping(30.001)  # ... and a ping of its own, in the same write
    server.now = 30.002
    server._received(client.data_to_send())
    assert server.core.heartbeat.stats.pongs_received == 1
    (answered,) = client.receive_data(server.take(), 30.003)  # written already
    assert type(answered).__name__ == "PingAnswered"
