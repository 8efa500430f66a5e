"""Hypothesis strategies for heartbeat settings, links and fault schedules.

Needs `hypothesis <https://hypothesis.readthedocs.io>`_ (``pip install hypothesis``;
heartbeat-core itself does not depend on it). Every strategy takes bounds, so a
suite draws only what its deployment can meet, e.g.:

.. fragment: a test's first two lines; the page "Testing your heartbeat" shows whole
   test functions, and the tests run them

.. code-block:: python

    @given(config=heartbeat_configs(max_interval=30), link=links(max_rtt=0.3))
    def test_no_false_positive(config, link): ...

Times are seconds. Drawn values shrink toward the gentle end (short delays, no
loss, few and short stalls), so a failure comes back as its simplest example.
"""

from __future__ import annotations

from hypothesis import strategies as st

from heartbeat_core.config import HeartbeatConfig, HeartbeatStyle, Liveness
from heartbeat_core.testing.faults import Cut, Fault, Proxy, Side, Stall, StallKind, Vanish
from heartbeat_core.testing.network import Distribution, Link, Path
from heartbeat_core.testing.simulator import Scenario

__all__ = [
    "fault_schedules",
    "heartbeat_configs",
    "links",
    "paths",
    "proxies",
    "scenarios",
    "sides",
    "stalls",
]


def _seconds(low: float, high: float) -> st.SearchStrategy[float]:
    return st.floats(min_value=low, max_value=high, allow_nan=False, allow_infinity=False)


def sides() -> st.SearchStrategy[Side]:
    """The client or the server."""
    return st.sampled_from(Side)


def heartbeat_configs(
    *,
    min_interval: float = 0.5,
    max_interval: float = 120.0,
    min_timeout: float = 0.5,
    max_timeout: float = 60.0,
    max_jitter: float = 0.5,
    styles: tuple[HeartbeatStyle, ...] = tuple(HeartbeatStyle),
    liveness: tuple[Liveness, ...] = tuple(Liveness),
) -> st.SearchStrategy[HeartbeatConfig]:
    """Valid :class:`~heartbeat_core.HeartbeatConfig` objects within these bounds (the
    other fields keep their defaults)."""
    return st.builds(
        HeartbeatConfig,
        interval=_seconds(min_interval, max_interval),
        timeout=_seconds(min_timeout, max_timeout),
        jitter=_seconds(0.0, max_jitter),
        style=st.sampled_from(styles),
        liveness=st.sampled_from(liveness),
    )


def paths(
    *,
    max_delay: float = 0.5,
    max_jitter: float = 0.2,
    max_loss: float = 0.05,
    bandwidth: bool = False,
) -> st.SearchStrategy[Path]:
    """One direction: a delay up to ``max_delay`` with a spread up to ``max_jitter``,
    loss up to ``max_loss``, and (with ``bandwidth=True``) a rate of 1 KB/s-10 MB/s."""
    return st.builds(
        Path,
        delay=_seconds(0.0, max_delay),
        jitter=_seconds(0.0, max_jitter),
        distribution=st.sampled_from(Distribution),
        loss=_seconds(0.0, max_loss),
        bandwidth=st.floats(1e3, 1e7) if bandwidth else st.none(),
    )


def links(
    *,
    max_rtt: float = 1.0,
    max_jitter: float = 0.2,
    max_loss: float = 0.05,
    symmetric: bool = False,
) -> st.SearchStrategy[Link]:
    """Links whose round trip (before spreading) is at most ``max_rtt``; with
    ``symmetric=True`` both directions are the same path."""
    path = paths(max_delay=max_rtt / 2, max_jitter=max_jitter / 2, max_loss=max_loss)
    if symmetric:
        return path.map(lambda p: Link(up=p, down=p))
    return st.builds(Link, up=path, down=path)


def proxies(*, min_idle: float = 30.0, max_idle: float = 600.0) -> st.SearchStrategy[Proxy]:
    """Idle-cutting proxies with a limit in [``min_idle``, ``max_idle``]."""
    return st.builds(Proxy, idle_limit=_seconds(min_idle, max_idle))


def stalls(
    *,
    horizon: float,
    max_duration: float = 5.0,
    side: Side | None = None,
    kinds: tuple[StallKind, ...] = tuple(StallKind),
) -> st.SearchStrategy[Stall]:
    """A stall starting within ``[0, horizon)`` and lasting up to ``max_duration``, of
    ``side`` (or either)."""
    return st.builds(
        Stall,
        side=sides() if side is None else st.just(side),
        at=_seconds(0.0, horizon),
        duration=_seconds(0.001, max_duration),
        kind=st.sampled_from(kinds),
    )


def fault_schedules(
    *,
    horizon: float,
    max_stalls: int = 3,
    max_stall: float = 5.0,
    stall_side: Side | None = None,
    vanish: bool = False,
    cuts: bool = False,
) -> st.SearchStrategy[tuple[Fault, ...]]:
    """Up to ``max_stalls`` stalls within ``horizon``; with ``vanish=True`` also one side
    vanishing, with ``cuts=True`` also a one-way cut that heals (or, sometimes, not)."""

    @st.composite
    def schedule(draw: st.DrawFn) -> tuple[Fault, ...]:
        faults: list[Fault] = list(
            draw(
                st.lists(
                    stalls(horizon=horizon, max_duration=max_stall, side=stall_side),
                    max_size=max_stalls,
                )
            )
        )
        if vanish:
            faults.append(Vanish(side=draw(sides()), at=draw(_seconds(0.0, horizon))))
        if cuts:
            at = draw(_seconds(0.0, horizon))
            length = draw(st.none() | _seconds(0.001, horizon))
            until = None if length is None else at + length
            faults.append(Cut(sender=draw(sides()), at=at, until=until))
        return tuple(faults)

    return schedule()


def scenarios(
    *,
    duration: float = 600.0,
    configs: st.SearchStrategy[HeartbeatConfig] | None = None,
    link: st.SearchStrategy[Link] | None = None,
    faults: st.SearchStrategy[tuple[Fault, ...]] | None = None,
    proxy: bool = False,
) -> st.SearchStrategy[Scenario]:
    """Whole scenarios of ``duration`` seconds: the same drawn configuration at both
    ends (or ``None`` at one of them: it only answers), a link, faults, and with
    ``proxy=True`` an idle-cutting proxy."""
    config = heartbeat_configs() if configs is None else configs

    @st.composite
    def scenario(draw: st.DrawFn) -> Scenario:
        chosen = draw(config)
        client, server = draw(st.sampled_from(((chosen, chosen), (None, chosen), (chosen, None))))
        return Scenario(
            client=client,
            server=server,
            link=draw(links() if link is None else link),
            proxy=draw(proxies()) if proxy else None,
            faults=draw(fault_schedules(horizon=duration) if faults is None else faults),
            duration=duration,
        )

    return scenario()
