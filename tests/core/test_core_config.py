"""Validation of every configuration object: config, codec, backoff, TCP keepalive."""

from __future__ import annotations

import json
import math
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heartbeat_core import (
    JSON_CODEC,
    PROXY_IDLE_LIMITS,
    AppCodec,
    AppKind,
    Backoff,
    BackoffPolicy,
    ConfigError,
    ConfigWarning,
    ConnectionClosedError,
    HandshakeError,
    HeartbeatConfig,
    HeartbeatError,
    LocalProtocolError,
    TcpKeepalive,
)

BAD_SECONDS = [0, -1, math.inf, math.nan, "1", None]


class TestHeartbeatConfig:
    def test_defaults_are_valid_and_quiet(self) -> None:
        cfg = HeartbeatConfig()
        assert (cfg.interval, cfg.timeout, cfg.close_timeout) == (20.0, 10.0, 5.0)
        assert cfg.findings() == []

    def test_frozen(self) -> None:
        cfg = HeartbeatConfig()
        with pytest.raises(AttributeError):
            cfg.interval = 1  # type: ignore[misc]

    @pytest.mark.parametrize("field", ["interval", "timeout", "min_timeout"])
    @pytest.mark.parametrize("value", BAD_SECONDS)
    def test_positive_seconds(self, field: str, value: object) -> None:
        with pytest.raises(ConfigError, match=f"{field} must be a finite number of seconds > 0"):
            HeartbeatConfig(**{field: value})  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        "field",
        [
            "close_timeout",
            "stall_threshold",
            "stall_grace",
            "peer_ping_min_interval",
        ],
    )
    @pytest.mark.parametrize("value", [-0.1, math.inf, math.nan, "0", None])
    def test_non_negative_seconds(self, field: str, value: object) -> None:
        with pytest.raises(ConfigError, match=f"{field} must be a finite number of seconds >= 0"):
            HeartbeatConfig(**{field: value})  # type: ignore[arg-type]

    def test_zero_is_fine_where_documented(self) -> None:
        HeartbeatConfig(
            close_timeout=0,
            stall_threshold=0,
            stall_grace=0,
            peer_ping_min_interval=0,
            timer_slack=0,
        )

    @pytest.mark.parametrize("value", [-0.1, math.inf, math.nan])
    def test_timer_slack_is_finite_and_not_negative(self, value: float) -> None:
        with pytest.raises(
            ConfigError, match="timer_slack must be a finite number of seconds >= 0"
        ):
            HeartbeatConfig(timer_slack=value)

    @pytest.mark.parametrize("value", ["0", True, b"1"])
    def test_timer_slack_is_none_or_a_number(self, value: object) -> None:
        with pytest.raises(
            ConfigError, match=r"timer_slack must be None \(the default\) or a number"
        ):
            HeartbeatConfig(timer_slack=value)  # type: ignore[arg-type]

    @pytest.mark.parametrize("value", [1e-310, 1e-9, 9.9e-7])
    def test_a_timer_slack_too_small_to_divide_by_is_refused(self, value: float) -> None:
        with pytest.raises(ConfigError, match="timer_slack must be 0 or at least 1 µs"):
            HeartbeatConfig(timer_slack=value)

    @pytest.mark.parametrize(("interval", "slack"), [(1.0, 0.5), (1.0, 0.75), (0.01, 0.02)])
    def test_timer_slack_is_less_than_half_the_interval(
        self, interval: float, slack: float
    ) -> None:
        with pytest.raises(
            ConfigError, match=r"timer_slack \(.*\) must be less than half the interval"
        ):
            HeartbeatConfig(interval=interval, timer_slack=slack)

    def test_timer_slack_is_less_than_half_the_probe_interval(self) -> None:
        with pytest.raises(
            ConfigError, match=r"timer_slack \(5 s\) must be less than half the probe_interval"
        ):
            HeartbeatConfig(interval=20, timer_slack=5, probe_interval=3)

    @pytest.mark.parametrize(
        ("interval", "slack", "expected"),
        [
            (1.0, None, 0.02),
            (20.0, None, 0.02),
            (0.1, None, 0.002),
            (0.1, 0.0, 0.0),
            (20.0, 0.5, 0.5),
        ],
    )
    def test_slack_in_force(self, interval: float, slack: float | None, expected: float) -> None:
        """``None`` is 2 % of the interval, at most 20 ms; a number is kept as given."""
        assert HeartbeatConfig(interval=interval, timer_slack=slack).slack == pytest.approx(
            expected
        )

    @pytest.mark.parametrize(
        ("probe", "expected"), [(0.01, 0.0002), (0.5, 0.01), (5.0, 0.02), (1e-5, 0.0)]
    )
    def test_the_default_slack_follows_a_shorter_probe_interval(
        self, probe: float, expected: float
    ) -> None:
        """(Below 1 µs the default is 0: heartbeats and probes go out when due.)"""
        assert HeartbeatConfig(interval=1.0, probe_interval=probe).slack == pytest.approx(expected)

    def test_enums(self) -> None:
        with pytest.raises(ConfigError, match="style must be a HeartbeatStyle"):
            HeartbeatConfig(style="app")  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match="liveness must be a Liveness"):
            HeartbeatConfig(liveness="pong-only")  # type: ignore[arg-type]

    @pytest.mark.parametrize("jitter", [-0.01, 0.51, "0.1", None, math.nan])
    def test_jitter_range(self, jitter: object) -> None:
        with pytest.raises(
            ConfigError, match=r"jitter must be a fraction of the interval in \[0, 0.5\]"
        ):
            HeartbeatConfig(jitter=jitter)  # type: ignore[arg-type]

    @pytest.mark.parametrize("strikes", [-1, True, 1.5, "3"])
    def test_strikes(self, strikes: object) -> None:
        with pytest.raises(ConfigError, match="peer_ping_max_strikes must be an int >= 0"):
            HeartbeatConfig(peer_ping_max_strikes=strikes)  # type: ignore[arg-type]

    @pytest.mark.parametrize("prefix", [b"x" * 65, "abc", bytearray(b"a")])
    def test_prefix(self, prefix: object) -> None:
        with pytest.raises(ConfigError, match="payload_prefix must be at most 64 bytes"):
            HeartbeatConfig(payload_prefix=prefix)  # type: ignore[arg-type]

    def test_adaptive_floor_above_timeout(self) -> None:
        with pytest.raises(ConfigError, match=r"min_timeout \(5\) must not exceed timeout \(2\)"):
            HeartbeatConfig(timeout=2, min_timeout=5, adaptive_timeout=True)
        HeartbeatConfig(timeout=2, min_timeout=5)  # irrelevant without adaptive_timeout

    def test_config_error_is_a_value_error(self) -> None:
        with pytest.raises(ValueError):
            HeartbeatConfig(interval=-1)

    def test_findings(self) -> None:
        found = HeartbeatConfig(interval=60, timeout=90).findings()
        assert "timeout (90 s) exceeds interval (60 s)" in found[0]
        # 2 x 60 s reaches every limit but Azure's (240 s and 300 s).
        assert len(found) == 1 + len(PROXY_IDLE_LIMITS) - 2
        assert any("nginx" in f for f in found) and any("ALB" in f for f in found)
        assert len(HeartbeatConfig(interval=150).findings()) == len(PROXY_IDLE_LIMITS)
        assert HeartbeatConfig(interval=27.4, timeout=27.4).findings() == []

    def test_every_proxy_limit_leaves_room_for_a_lost_heartbeat(self) -> None:
        """The rule of docs/explanation/choosing.rst: twice the longest wait before a
        heartbeat (interval, times 1 + jitter) must stay below each limit."""
        for name, limit in PROXY_IDLE_LIMITS:
            just_below = HeartbeatConfig(interval=limit / 2 * 0.999, timeout=1)
            assert not [f for f in just_below.findings() if f"the {name} (" in f], name
            half = HeartbeatConfig(interval=limit / 2, timeout=1)  # the next one at the limit
            (finding,) = [f for f in half.findings() if f"the {name} (" in f]
            assert finding == (
                f"interval ({limit / 2:g} s) leaves no room for a lost heartbeat under the "
                f"{name} ({limit:g} s): keep it below {limit / 2:.3g} s, half the limit"
            )

    def test_a_55_s_interval_is_flagged_under_a_60_s_proxy(self) -> None:
        """Below the limit itself, but no room for one lost heartbeat."""
        found = HeartbeatConfig(interval=55, timeout=5).findings()
        assert any("nginx proxy_read_timeout default (60 s)" in f for f in found)
        assert any("Heroku router idle window (55 s)" in f for f in found)

    def test_jitter_lengthens_the_longest_wait(self) -> None:
        assert HeartbeatConfig(interval=27, timeout=5).findings() == []
        (finding,) = HeartbeatConfig(interval=27, timeout=5, jitter=0.1).findings()
        assert finding == (
            "interval (27 s, up to 29.7 s with jitter 0.1) leaves no room for a lost heartbeat "
            "under the Heroku router idle window (55 s): keep it below 25 s, half the limit "
            "less the jitter"
        )

    def test_the_default_and_the_documented_limits(self) -> None:
        assert HeartbeatConfig().findings() == []
        limits = dict(PROXY_IDLE_LIMITS)
        assert limits["Heroku router idle window"] == 55
        assert limits["AWS ALB idle timeout default"] == 60
        assert limits["Azure Front Door WebSocket idle timeout"] == 300
        assert list(limits.values()) == sorted(limits.values())  # smallest first

    def test_warn(self) -> None:
        with pytest.warns(ConfigWarning, match="exceeds interval") as record:
            HeartbeatConfig(interval=1, timeout=2).warn(stacklevel=1)
        assert len(record) == 1
        assert record[0].filename == __file__  # stacklevel=1: the line calling warn()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            HeartbeatConfig().warn()


class TestCodec:
    @pytest.mark.parametrize(
        ("text", "kind"),
        [
            ('{"type":"ping"}', AppKind.PING),
            ('{"type":"pong"}', AppKind.PONG),
            ('{ "type" : "ping", "ts": 1 }', AppKind.PING),
            ('{"ts": 1, "type": "pong"}', AppKind.PONG),
            ('{"type":"chat","text":"ping"}', None),
            ('{"data":{"type":"ping"}}', None),  # nested: not a heartbeat
            ('["type", "ping"]', None),
            ('{"type": "ping"', None),  # not JSON
            ("hello", None),
            ("", None),
            ('{"type":"ping","pad":"' + "x" * 300 + '"}', None),  # too long to look at
            ('{"type":"data","v":1}', None),  # ordinary traffic: no "ping" in it, no parse
            ('{"type":"p\\u0069ng"}', AppKind.PING),  # an escape: parsed after all
            ('{"type":"\\u0070ong"}', AppKind.PONG),
            ('{"type":"chat","text":"\\n"}', None),
        ],
    )
    def test_classify(self, text: str, kind: AppKind | None) -> None:
        assert JSON_CODEC.classify(text) is kind

    @settings(max_examples=300, deadline=None)
    @given(
        value=st.dictionaries(
            st.sampled_from(["type", "ts", "text", "op"]),
            st.one_of(
                st.sampled_from(["ping", "pong", "data", "pingpong", " ping"]),
                st.integers(),
                st.text(max_size=8),
            ),
            max_size=4,
        ),
        ascii_only=st.booleans(),
    )
    def test_classify_agrees_with_parsing_every_candidate(
        self, value: dict[str, object], ascii_only: bool
    ) -> None:
        # The shortcut that skips the JSON parse must never change the answer.
        text = json.dumps(value, ensure_ascii=ascii_only)
        tag = value.get("type") if len(text) <= JSON_CODEC.max_length else None
        want = {"ping": AppKind.PING, "pong": AppKind.PONG}.get(tag)  # type: ignore[call-overload]
        assert JSON_CODEC.classify(text) is want

    def test_exact_only(self) -> None:
        codec = AppCodec(ping_text="PING", pong_text="PONG", json_type_key=None)
        assert codec.classify("PING") is AppKind.PING
        assert codec.classify("PONG") is AppKind.PONG
        assert codec.classify('{"type":"ping"}') is None

    def test_other_key(self) -> None:
        codec = AppCodec(json_type_key="op")
        assert codec.classify('{"op":"ping"}') is AppKind.PING
        assert codec.classify('{"type":"ping"}') is AppKind.PING  # the exact text still is
        assert codec.classify('{"type":"pong","x":1}') is None

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"ping_text": ""}, "two different non-empty"),
            ({"pong_text": ""}, "two different non-empty"),
            ({"ping_text": "a", "pong_text": "a"}, "two different non-empty"),
            ({"max_length": 3}, "max_length must be at least"),
        ],
    )
    def test_validation(self, kwargs: dict[str, object], match: str) -> None:
        with pytest.raises(ConfigError, match=match):
            AppCodec(**kwargs)  # type: ignore[arg-type]


class TestBackoff:
    def test_exponential_capped_without_jitter(self) -> None:
        b = Backoff(BackoffPolicy(initial=1, multiplier=2, maximum=10, full_jitter=False))
        assert [b.next_delay(float(i)) for i in range(6)] == [1, 2, 4, 8, 10, 10]
        assert b.attempt == 6

    def test_huge_attempt_counts_do_not_overflow(self) -> None:
        b = Backoff(BackoffPolicy(initial=1, multiplier=10, maximum=5, full_jitter=False))
        for i in range(500):
            assert b.next_delay(float(i)) <= 5

    def test_full_jitter_draws_below_the_bound(self) -> None:
        draws = iter([0.0, 0.5, 0.999])
        b = Backoff(BackoffPolicy(initial=2, multiplier=2, maximum=30), random=lambda: next(draws))
        assert [b.next_delay(0.0) for _ in range(3)] == [0.0, 2.0, pytest.approx(7.992)]

    def test_full_jitter_without_random_draws_from_the_shared_source(self) -> None:
        b = Backoff()  # full jitter by default
        delays = [b.next_delay(0.0) for _ in range(8)]
        bounds = [min(30.0, 0.5 * 2.0**n) for n in range(8)]
        assert all(0.0 <= d < bound for d, bound in zip(delays, bounds, strict=True))
        assert len(set(delays)) > 1  # drawn, not fixed

    def test_reset_after_a_stable_connection(self) -> None:
        b = Backoff(BackoffPolicy(initial=1, reset_after=10, full_jitter=False))
        b.next_delay(0.0)
        b.next_delay(1.0)
        b.connected(5.0)
        assert b.next_delay(9.0) == 4  # up for 4 s only: keeps growing
        b.connected(20.0)
        assert b.next_delay(30.0) == 1  # up for 10 s: starts again
        assert b.attempt == 1

    def test_time_checks(self) -> None:
        b = Backoff(BackoffPolicy(full_jitter=False))
        b.connected(10.0)
        with pytest.raises(LocalProtocolError, match="backwards"):
            b.next_delay(9.0)
        for bad in (math.nan, math.inf):
            with pytest.raises(LocalProtocolError, match="finite"):
                b.next_delay(bad)
        assert b.attempt == 0

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"initial": 0}, "initial"),
            ({"maximum": math.inf}, "maximum"),
            ({"reset_after": -1}, "reset_after"),
            ({"multiplier": 0.5}, "multiplier must be >= 1"),
            ({"multiplier": "2"}, "multiplier must be >= 1"),
            ({"initial": 5, "maximum": 1}, r"maximum \(1\) must be at least initial \(5\)"),
        ],
    )
    def test_policy_validation(self, kwargs: dict[str, object], match: str) -> None:
        with pytest.raises(ConfigError, match=match):
            BackoffPolicy(**kwargs)  # type: ignore[arg-type]


class TestTcpKeepalive:
    def test_options(self) -> None:
        assert TcpKeepalive().socket_options() == [
            ("SOL_SOCKET", "SO_KEEPALIVE", 1),
            ("IPPROTO_TCP", "TCP_KEEPIDLE", 30),
            ("IPPROTO_TCP", "TCP_KEEPINTVL", 10),
            ("IPPROTO_TCP", "TCP_KEEPCNT", 3),
        ]
        opts = TcpKeepalive(idle=1.4, interval=2.6, count=5, user_timeout=0.0005).socket_options()
        assert opts[1:] == [
            ("IPPROTO_TCP", "TCP_KEEPIDLE", 1),
            ("IPPROTO_TCP", "TCP_KEEPINTVL", 3),
            ("IPPROTO_TCP", "TCP_KEEPCNT", 5),
            ("IPPROTO_TCP", "TCP_USER_TIMEOUT", 1),
        ]
        assert TcpKeepalive(user_timeout=12.5).socket_options()[-1][2] == 12500

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"idle": 0.5}, "idle must be >= 1"),
            ({"interval": math.nan}, "interval must be >= 1"),
            ({"idle": "30"}, "idle must be >= 1"),
            ({"count": 0}, "count must be an int >= 1"),
            ({"count": True}, "count must be an int >= 1"),
            ({"count": 2.0}, "count must be an int >= 1"),
            ({"user_timeout": 0}, "user_timeout must be > 0"),
            ({"user_timeout": math.inf}, "user_timeout must be > 0"),
            ({"user_timeout": "1"}, "user_timeout must be > 0"),
        ],
    )
    def test_validation(self, kwargs: dict[str, object], match: str) -> None:
        with pytest.raises(ConfigError, match=match):
            TcpKeepalive(**kwargs)  # type: ignore[arg-type]


class TestErrors:
    def test_hierarchy(self) -> None:
        for cls in (ConfigError, LocalProtocolError, ConnectionClosedError, HandshakeError):
            assert issubclass(cls, HeartbeatError)
        assert issubclass(HandshakeError, ConnectionClosedError)
        assert issubclass(ConfigWarning, UserWarning)

    def test_attributes(self) -> None:
        err = ConnectionClosedError("gone", 1001, "bye")
        assert (str(err), err.code, err.reason) == ("gone", 1001, "bye")
        assert ConnectionClosedError("gone").code == 1006
        hs = HandshakeError("refused", status=403)
        assert (hs.status, hs.code, hs.reason) == (403, 1006, "")
        assert HandshakeError("no response").status is None
