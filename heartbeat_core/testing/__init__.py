"""Prove heartbeat settings before production does: a simulated network run by the real rules.

:func:`simulate` plays one connection between a client and a server, each running a
:class:`~heartbeat_core.HeartbeatState`, across a :class:`Link` (delay with a
distribution, loss as TCP sees it, bandwidth) with faults (:class:`Stall`,
:class:`Vanish`, :class:`Cut`) and an optional idle-cutting :class:`Proxy`, all on a
virtual clock: a day of a connection takes milliseconds, and the same seed gives the
same run. :func:`survey` runs many and sums them up (false positives, detection
times, proxy cuts, bytes and wake-ups per hour), as ``heartbeat simulate`` prints.
The ``assert_*`` functions check what a user's suite cares about, and
:mod:`heartbeat_core.testing.strategies` (needs hypothesis) draws configurations,
links and fault schedules.

Pure like the rest of the core: no clock, no sockets, no threads.
"""

from __future__ import annotations

from heartbeat_core.testing.assertions import (
    assert_detected_within,
    assert_no_false_positive,
    assert_no_proxy_cut,
)
from heartbeat_core.testing.faults import Cut, Fault, Proxy, Side, Stall, StallKind, Vanish
from heartbeat_core.testing.network import Distribution, Link, Path
from heartbeat_core.testing.shaper import Direction, IdleWatch, LinkShaper
from heartbeat_core.testing.simulator import (
    Ending,
    EndpointReport,
    Scenario,
    SimEvent,
    SimResult,
    Verdict,
    simulate,
)
from heartbeat_core.testing.survey import StallPlan, SurveyResult, detection_bound, survey

__all__ = [
    "Cut",
    "Direction",
    "Distribution",
    "EndpointReport",
    "Ending",
    "Fault",
    "IdleWatch",
    "Link",
    "LinkShaper",
    "Path",
    "Proxy",
    "Scenario",
    "Side",
    "SimEvent",
    "SimResult",
    "Stall",
    "StallKind",
    "StallPlan",
    "SurveyResult",
    "Vanish",
    "Verdict",
    "assert_detected_within",
    "assert_no_false_positive",
    "assert_no_proxy_cut",
    "detection_bound",
    "simulate",
    "survey",
]
