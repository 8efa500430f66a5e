"""heartbeat_core.pacing: the rate limit on repeated log lines and the accept loop's pauses."""

from __future__ import annotations

import errno
import math

import pytest

from heartbeat_core.errors import ConfigError, LocalProtocolError
from heartbeat_core.pacing import RESOURCE_ERRNOS, AcceptBackoff, AcceptPause, RateLimit


class TestRateLimit:
    def test_the_first_report_passes_then_one_per_period_with_the_count_held_back(self) -> None:
        limit = RateLimit(1.0)
        assert limit.allow(10.0) == 0
        assert [limit.allow(10.0 + i / 100) for i in range(1, 100)] == [None] * 99
        assert limit.held == 99
        assert limit.allow(11.0) == 99
        assert limit.held == 0
        assert limit.allow(11.5) is None
        assert limit.allow(12.0) == 1

    def test_a_thousand_failures_a_second_make_one_report_a_second(self) -> None:
        limit = RateLimit(1.0)
        reports = [t for t in range(10_000) if limit.allow(t / 1000) is not None]
        assert len(reports) == 10

    @pytest.mark.parametrize("period", [0, -1.0, math.inf, math.nan, True, "1"])
    def test_a_bad_period_is_refused(self, period: object) -> None:
        with pytest.raises(ConfigError, match="period must be"):
            RateLimit(period)  # type: ignore[arg-type]

    def test_time_running_backwards_is_refused_and_changes_nothing(self) -> None:
        limit = RateLimit(1.0)
        limit.allow(5.0)
        with pytest.raises(LocalProtocolError, match="backwards"):
            limit.allow(4.0)
        with pytest.raises(LocalProtocolError, match="finite"):
            limit.allow(math.nan)
        assert limit.held == 0
        assert limit.allow(6.0) == 0


class TestAcceptBackoff:
    def test_resource_errors(self) -> None:
        assert {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM} == RESOURCE_ERRNOS
        assert errno.ECONNABORTED not in RESOURCE_ERRNOS

    def test_pauses_double_up_to_the_maximum_and_start_again_after_a_success(self) -> None:
        backoff = AcceptBackoff(initial=0.001, maximum=0.02)
        delays = [backoff.failed(100.0 + i * 0.01).delay for i in range(8)]
        assert delays == [0.001, 0.002, 0.004, 0.008, 0.016, 0.02, 0.02, 0.02]
        assert backoff.failures == 8
        assert backoff.accepted(100.08) == 0  # (a line at 100.0 already: rate-limited)
        assert backoff.failures == 0
        assert backoff.accepted(100.09) == 0  # (nothing failed)
        assert backoff.failed(100.5) == AcceptPause(delay=0.001, log=False, failures=1)
        assert backoff.failed(101.0) == AcceptPause(delay=0.002, log=True, failures=2)

    def test_accepting_again_is_reported_once_the_rate_allows(self) -> None:
        backoff = AcceptBackoff()
        assert backoff.failed(0.0).log
        assert backoff.failed(0.5).failures == 2
        assert backoff.accepted(1.5) == 2
        assert backoff.failed(1.6) == AcceptPause(delay=0.001, log=False, failures=1)

    def test_a_long_exhaustion_stays_at_the_maximum_and_logs_once_a_second(self) -> None:
        backoff = AcceptBackoff()
        now, logged, calls = 0.0, 0, 0
        while now < 10.0:
            pause = backoff.failed(now)
            logged += pause.log
            calls += 1
            now += pause.delay
        assert pause.delay == 0.02
        assert logged == 10
        assert calls < 10 / 0.02 + 10  # a few dozen calls a second, never a spin

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"initial": 0}, "initial must be"),
            ({"maximum": math.inf}, "maximum must be"),
            ({"log_period": -1}, "period must be"),
            ({"initial": 0.5, "maximum": 0.1}, "must not exceed"),
        ],
    )
    def test_bad_arguments_are_refused(self, kwargs: dict[str, float], match: str) -> None:
        with pytest.raises(ConfigError, match=match):
            AcceptBackoff(**kwargs)
