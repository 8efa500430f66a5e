"""Assertions for a user's own test suite, over a :class:`SimResult` or a :class:`SurveyResult`.

Each raises :class:`AssertionError` with what happened (so pytest shows it) and
returns nothing. For example:

.. fragment: two lines with the scenario elided; the page "Testing your heartbeat" shows
   whole tests, and the tests run them

.. code-block:: python

    result = simulate(Scenario(..., faults=(Vanish(side=Side.CLIENT, at=600),)))
    assert_detected_within(result, detection_bound(config))
"""

from __future__ import annotations

from heartbeat_core.testing.simulator import Ending, SimResult
from heartbeat_core.testing.survey import SurveyResult

__all__ = ["assert_detected_within", "assert_no_false_positive", "assert_no_proxy_cut"]


def _describe(result: SimResult) -> str:
    v = result.verdict
    if v is not None:
        return (
            f"the {v.side.value} declared its peer dead at t={v.at:.3f} s after waiting "
            f"{v.waited:.3f} s for heartbeat {v.seq}"
        )
    if result.ending is Ending.PROXY_CUT:
        return f"the proxy cut the idle connection at t={result.proxy_cut_at:.3f} s"
    if result.closed is not None:
        side, code, reason = result.closed
        return (
            f"the {side.value} closed the connection with {code} {reason!r} at t={result.end:.3f} s"
        )
    return f"the connection was still open at t={result.end:.3f} s"


def assert_detected_within(result: SimResult, bound: float) -> None:
    """The peer that vanished (or was cut off) was declared dead at most ``bound``
    seconds after it went (e.g. ``bound=detection_bound(config)``)."""
    if result.detection is None:
        raise AssertionError(f"no gone peer was detected: {_describe(result)}")
    if result.detection > bound:
        raise AssertionError(
            f"the gone peer was detected {result.detection:.3f} s after it went, "
            f"later than the bound of {bound:.3f} s: {_describe(result)}"
        )


def assert_no_false_positive(result: SimResult | SurveyResult) -> None:
    """No peer that was still there was ever declared dead."""
    if isinstance(result, SurveyResult):
        if result.false_positives:
            raise AssertionError(
                f"{result.false_positives} healthy peers declared dead in "
                f"{result.runs_with_false_positive} of {result.runs} runs"
            )
        return
    if result.false_positive:
        raise AssertionError(f"a healthy peer was declared dead: {_describe(result)}")


def assert_no_proxy_cut(result: SimResult | SurveyResult) -> None:
    """The proxy never cut a connection for idleness."""
    if isinstance(result, SurveyResult):
        if result.proxy_cuts:
            raise AssertionError(
                f"the proxy cut {result.proxy_cuts} of {result.connections} connections"
            )
        return
    if result.ending is Ending.PROXY_CUT:
        raise AssertionError(_describe(result))
