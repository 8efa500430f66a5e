"""heartbeat_metrics: the heartbeat's figures as Prometheus metrics.

:class:`HeartbeatMetrics` is a collector for ``prometheus_client`` fed by the
``on_event`` hook that both drivers (and :class:`~heartbeat_core.DriverBase`,
so every integration built on it) call with ``(connection, event)``.

It needs ``prometheus_client``, which the ``metrics`` extra brings
(``pip install 'heartbeat-core[metrics]'``); nothing else of the package does.
See the metrics how-to for the series and a Grafana-ready list.
"""

from __future__ import annotations

from heartbeat_core import __version__
from heartbeat_metrics.collector import DEFAULT_BUCKETS, HeartbeatMetrics, code_label

__all__ = ["DEFAULT_BUCKETS", "HeartbeatMetrics", "code_label", "__version__"]
