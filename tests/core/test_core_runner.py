"""ActionRunner: the core's actions carried out through a subclass's hooks, with an
injected clock (no sleeps, no sockets)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from heartbeat_core import (
    Abort,
    ActionRunner,
    AppCodec,
    Closed,
    CloseTransport,
    Closing,
    ConfigError,
    HeartbeatConfig,
    HeartbeatPhase,
    HeartbeatStyle,
    LocalProtocolError,
    PeerDead,
    RttSample,
    SendPong,
)

CONFIG = HeartbeatConfig(interval=1.0, timeout=0.5, close_timeout=0.25)
APP = HeartbeatConfig(interval=1.0, timeout=0.5, close_timeout=0.25, style=HeartbeatStyle.APP)


class Fake(ActionRunner):
    """Every hook appends what it was asked to ``calls``; the clock is ``clock``."""

    __slots__ = ("calls", "clock", "filed")

    def __init__(self, config: HeartbeatConfig = CONFIG, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.clock = 0.0
        self.calls: list[tuple[Any, ...]] = []
        self.filed: float | None = None

    def now(self) -> float:
        return self.clock

    def file_timer(self, when: float | None) -> None:
        self.filed = when

    def send_ping(self, payload: bytes) -> None:
        self.calls.append(("ping", payload))

    def send_pong(self, payload: bytes) -> None:
        self.calls.append(("pong", payload))

    def send_text(self, text: str) -> None:
        self.calls.append(("text", text))

    def send_close(self, code: int, reason: str) -> None:
        self.calls.append(("close", code, reason))

    def close_transport(self) -> None:
        self.calls.append(("close_transport",))

    def abort(self) -> None:
        self.calls.append(("abort",))

    def fire(self) -> None:
        """The filed timer goes off, on time."""
        assert self.filed is not None
        self.clock = self.filed
        self.timer_due()


def events_of(runner: Fake) -> list[tuple[object, object]]:
    seen: list[tuple[object, object]] = []
    runner._on_event = lambda owner, event: seen.append((owner, event))
    return seen


def test_protocol_heartbeat_round_trip_reports_rtt_and_files_the_timer() -> None:
    owner = object()
    seen: list[object] = []
    runner = Fake(on_event=lambda conn, event: seen.append((conn, event)), owner=owner)
    assert runner.owner is owner
    runner.opened()
    assert runner.is_open and runner.filed == 1.0
    runner.fire()
    assert runner.calls == [("ping", b"1")]
    assert runner.filed == 1.5  # the timeout's deadline
    runner.clock = 1.25
    runner.received()
    runner.pong_received(b"1")
    assert seen == [(owner, RttSample(seq=1, rtt=0.25))]
    assert runner.latency == 0.25 and runner.stats.pongs_received == 1
    # interval after the pong, from the last multiple of the timer slack (20 ms) before
    assert runner.filed == 2.24
    assert runner.config is CONFIG


def test_peer_dead_closes_1011_and_releases_at_once() -> None:
    runner = Fake()
    seen = events_of(runner)
    runner.opened()
    runner.fire()
    runner.fire()  # the timeout: nobody answered
    assert runner.calls == [
        ("ping", b"1"),
        ("close", 1011, "heartbeat-timeout"),
        ("close_transport",),
    ]
    kinds = [type(event) for _, event in seen]
    assert kinds == [PeerDead, Closing, CloseTransport]
    assert (runner.close_code, runner.close_reason, runner.closed_by) == (
        1011,
        "heartbeat-timeout",
        "local",
    )
    assert not runner.ended
    closed = runner.lost()
    assert runner.ended
    assert closed == Closed(code=1011, reason="heartbeat-timeout", by="local")
    assert seen[-1] == (runner, closed)
    assert runner.filed is None
    # Once lost, every input is ignored and nothing more is reported.
    runner.timer_due()
    runner.pause_reading()
    runner.resume_reading()
    runner.close()
    runner.fail()
    runner.close_received(1000)
    runner.close_started(1000)
    assert runner.lost() == closed
    assert len(seen) == 4


def test_app_style_messages_are_classified_answered_and_consumed() -> None:
    runner = Fake(APP)
    assert runner.text_received('{"type":"ping"}') is True  # before opening: consumed, no answer
    assert runner.calls == []
    runner.opened()
    assert runner.text_received("hello") is False
    assert runner.text_received('{"type":"ping"}') is True
    assert runner.calls == [("text", '{"type":"pong"}')]
    runner.fire()
    assert runner.calls[-1] == ("text", '{"type":"ping"}')
    runner.clock += 0.1
    assert runner.text_received('{"type":"pong"}') is True
    assert runner.stats.pongs_received == 1


def test_custom_codec() -> None:
    codec = AppCodec(ping_text="p", pong_text="q", json_type_key=None)
    runner = Fake(APP, codec=codec)
    runner.opened()
    assert runner.text_received("p") is True
    assert runner.calls == [("text", "q")]


def test_peer_pings_are_answered_and_pongs_of_our_own_pings_are_solicited() -> None:
    runner = Fake(HeartbeatConfig(peer_ping_max_strikes=0, peer_ping_min_interval=1.0))
    runner.ping_received(b"x")  # not open yet: ignored
    runner.pong_received(b"x")
    assert runner.calls == []
    runner.opened()
    runner.ping_received(b"x")
    assert runner.calls == [("pong", b"x")]
    runner.pong_received(b"mine", solicited=True)  # not a strike, however soon
    runner.pong_received(b"mine", solicited=True)
    assert runner.is_open
    runner.pong_received(b"stray")
    runner.pong_received(b"stray")  # the second stray one within the second: a flood
    assert runner.calls[-2:] == [("close", 1008, "too many pongs"), ("close_transport",)]


def test_peer_close_is_echoed_and_recorded() -> None:
    runner = Fake()
    runner.close_received(1000)  # before opening: ignored
    runner.opened()
    seen = events_of(runner)
    runner.close_received(4000, "bye")
    assert runner.calls == [("close", 4000, ""), ("close_transport",)]
    assert (runner.close_code, runner.closed_by) == (4000, "remote")
    assert seen[0][1] == Closing(code=4000, reason="bye", by_peer=True)
    runner.close_received(4000, "again")  # draining: nothing more
    assert len(runner.calls) == 2


def test_local_close_then_the_peers_answer() -> None:
    runner = Fake()
    runner.opened()
    runner.close(1001, "going away")
    assert runner.calls == [("close", 1001, "going away")]
    assert runner.state.phase is HeartbeatPhase.CLOSING
    runner.clock = 0.1
    runner.close_received(1001)
    assert runner.calls[-1] == ("close_transport",)
    assert runner.closed_by == "local"


def test_close_timeout_aborts() -> None:
    runner = Fake()
    runner.opened()
    runner.close()
    runner.fire()
    assert runner.calls[-1] == ("abort",)


def test_fail_and_bad_close_codes() -> None:
    runner = Fake()
    runner.opened()
    with pytest.raises(LocalProtocolError):
        runner.close(1005)
    with pytest.raises(LocalProtocolError):
        runner.close_started(1006)
    assert runner.calls == [] and runner.close_code is None  # nothing changed
    runner.fail(1011, "internal")
    assert runner.calls == [("close", 1011, "internal"), ("close_transport",)]


def test_close_started_by_the_framework_sends_no_close_frame() -> None:
    runner = Fake()
    runner.close_started(1000)  # not open: ignored
    runner.opened()
    seen = events_of(runner)
    runner.close_started(1000, "done")
    assert runner.calls == []
    assert [e for _, e in seen] == [Closing(code=1000, reason="done", by_peer=False)]
    runner.close_started(1001)  # recorded once
    assert runner.close_code == 1000
    runner.fire()  # close_timeout: the framework's close took too long
    assert runner.calls == [("abort",)]
    assert [type(e) for _, e in seen][-1] is Abort

    peer = Fake()
    peer.opened()
    peer.close_started(1001, "bye", by_peer=True)
    assert peer.calls == [("close_transport",)]  # the framework answered; release
    assert peer.closed_by == "remote"


def test_lost_without_a_close_is_1006() -> None:
    runner = Fake()
    runner.opened()
    runner.received()
    assert runner.lost() == Closed(code=1006, reason="", by="remote")
    runner.received()  # after the end: ignored


def test_reading_paused_suspends_the_verdict() -> None:
    runner = Fake()
    runner.opened()
    runner.fire()
    runner.pause_reading()
    assert runner.filed is None  # no deadline while the peer cannot be heard
    runner.clock = 5.0
    runner.resume_reading()
    assert runner.filed == 5.5
    assert runner.is_open


def test_on_event_errors_are_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    def broken(conn: object, event: object) -> None:
        raise RuntimeError("boom")

    logger = logging.getLogger("test.runner")
    runner = Fake(on_event=broken, logger=logger)
    runner.opened()
    with caplog.at_level(logging.ERROR, logger="test.runner"):
        runner.fire()
        runner.fire()
    assert "on_event callback failed" in caplog.text
    assert runner.close_code == 1011


def test_bad_arguments_raise() -> None:
    with pytest.raises(ConfigError, match="codec"):
        Fake(codec="json")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="on_event"):
        Fake(on_event=42)  # type: ignore[arg-type]


def test_unoverridden_hooks_raise() -> None:
    runner = ActionRunner()
    for call in (
        runner.now,
        lambda: runner.file_timer(None),
        lambda: runner.send_ping(b""),
        lambda: runner.send_pong(b""),
        lambda: runner.send_text(""),
        lambda: runner.send_close(1000, ""),
        runner.close_transport,
        runner.abort,
    ):
        with pytest.raises(NotImplementedError):
            call()


def test_every_action_has_a_handler() -> None:
    from heartbeat_core.actions import __all__ as actions

    assert {kind.__name__ for kind in ActionRunner._ACTIONS} == set(actions) - {"Action"}
    assert SendPong in ActionRunner._ACTIONS


def test_a_hook_that_ends_the_connection_stops_the_filing() -> None:
    class EndsAtOnce(Fake):
        __slots__ = ()

        def close_transport(self) -> None:
            super().close_transport()
            self.lost()  # e.g. a framework that reports the end synchronously

    runner = EndsAtOnce()
    runner.opened()
    runner.fire()
    runner.fire()
    assert runner.filed is None
    assert runner.calls[-1] == ("close_transport",)


@pytest.mark.parametrize("level", [logging.DEBUG, logging.INFO])
def test_each_round_trip_is_logged_only_if_debug_was_on_at_the_start(
    level: int, caplog: pytest.LogCaptureFixture
) -> None:
    logger = logging.getLogger("test.runner.rtt")
    with caplog.at_level(level, logger="test.runner.rtt"):
        runner = Fake(logger=logger)
    runner.opened()
    with caplog.at_level(logging.DEBUG, logger="test.runner.rtt"):
        runner.fire()
        runner.clock = 1.25
        runner.pong_received(b"1")
    assert runner.latency == 0.25
    logged = "heartbeat 1 rtt=0.250000" in caplog.text
    assert logged is (level == logging.DEBUG)
