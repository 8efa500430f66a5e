"""What ``heartbeat serve`` adds for operators: ``/metrics``, private log lines, probes.

:func:`metrics_endpoint` makes the Prometheus exposition (a
:class:`heartbeat_metrics.HeartbeatMetrics` in a registry of its own, served at
:data:`METRICS_PATH` on the server's port), or says why it cannot (the
``metrics`` extra is not installed). :func:`chain_http` puts several
``http_handler`` hooks on one port. :func:`shown_target` is a request target as
the command's log lines and JSON events show it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from heartbeat_core.uri import log_queries, loggable
from heartbeat_core.wsevents import ConnectionEvent

__all__ = [
    "DEFAULT_PROBE_INTERVAL",
    "METRICS_PATH",
    "HttpAnswer",
    "MetricsEndpoint",
    "chain_http",
    "metrics_endpoint",
    "set_log_query",
    "shown_target",
]

#: Where ``heartbeat serve`` answers Prometheus' scrapes.
METRICS_PATH = "/metrics"
#: ``heartbeat serve``'s probe: a heartbeat at least this often on every connection, so
#: that its dashboard and metrics have an RTT for busy connections too (rule ``probe``).
DEFAULT_PROBE_INTERVAL = 3.0

HttpAnswer = tuple[int, list[tuple[str, str]], bytes]
HttpHook = Callable[[str], "HttpAnswer | None"]

_show_query = [False]


def set_log_query(show: bool) -> None:
    """``--log-query``: show query strings in this command's log lines and events, and in
    the library's (:func:`heartbeat_core.uri.log_queries`)."""
    _show_query[0] = show
    log_queries(show)


def shown_target(target: str) -> str:
    """``target`` as the command's log lines show it: the path alone (the query string
    often carries a token) unless ``--log-query``."""
    return target if _show_query[0] else loggable(target).removesuffix("?...")


class MetricsEndpoint:
    """The collector and the ``/metrics`` hook of one server."""

    def __init__(self) -> None:
        from heartbeat_metrics import HeartbeatMetrics
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        # (private: their types come from the metrics extra, which may not be installed)
        self._registry = CollectorRegistry()
        self._metrics = HeartbeatMetrics(registry=self._registry)
        self._generate = generate_latest
        self._content_type: str = CONTENT_TYPE_LATEST
        #: What a scrape gets instead of :meth:`exposition` (``heartbeat serve --workers N``
        #: adds the other workers' figures).
        self.merge: Callable[[bytes], bytes] | None = None

    def on_event(self, conn: Any, event: ConnectionEvent) -> None:
        self._metrics.on_event(conn, event)

    def exposition(self) -> bytes:
        """This server's figures in Prometheus' text format."""
        body: bytes = self._generate(self._registry)
        return body

    def http_handler(self, target: str) -> HttpAnswer | None:
        """The exposition at :data:`METRICS_PATH` (any query ignored); ``None`` otherwise."""
        if target.partition("?")[0] != METRICS_PATH:
            return None
        body = self.exposition() if self.merge is None else self.merge(self.exposition())
        return 200, [("Content-Type", self._content_type), ("Cache-Control", "no-cache")], body


def metrics_endpoint() -> tuple[MetricsEndpoint | None, str | None]:
    """``(endpoint, None)``, or ``(None, why)`` when prometheus_client is missing."""
    try:
        return MetricsEndpoint(), None
    except ImportError:
        return None, (
            "/metrics is off: prometheus_client is not installed "
            "(pip install 'heartbeat-core[metrics]'; --no-metrics hides this line)"
        )


def chain_http(*hooks: HttpHook | None) -> HttpHook | None:
    """One ``http_handler`` that asks each hook in turn (``None`` hooks are skipped);
    ``None`` when there is none."""
    present = [hook for hook in hooks if hook is not None]
    if not present:
        return None

    def handler(target: str) -> HttpAnswer | None:
        for hook in present:
            answer = hook(target)
            if answer is not None:
                return answer
        return None

    return handler
