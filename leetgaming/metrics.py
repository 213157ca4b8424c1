"""Prometheus metrics of one app.

Invariants:

- Each app owns its :class:`prometheus_client.CollectorRegistry`; nothing is registered in the
  process-wide default registry, so two apps in one process (tests) never collide.
- Request metrics are labelled by the route *template* (``/users/{id}``), never the raw path,
  so the number of series stays bounded whatever clients send. A request that matched no
  route is labelled ``<unmatched>``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

UNMATCHED_ROUTE: Final = "<unmatched>"
CONTENT_TYPE: Final = CONTENT_TYPE_LATEST

# Seconds. Covers a fast health check (sub-millisecond) up to a slow report (10 s).
_LATENCY_BUCKETS_S: Final = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
# Seconds. Queueing one publication: microseconds for a few subscribers, up to seconds.
_FANOUT_BUCKETS_S: Final = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)


@dataclass(slots=True)
class Metrics:
    """The metrics of one app, in a registry of their own."""

    registry: CollectorRegistry = field(
        default_factory=lambda: CollectorRegistry(auto_describe=True)
    )
    http_requests: Counter = field(init=False)
    http_request_duration: Histogram = field(init=False)
    hub_fanout: Histogram = field(init=False)
    hub_fanout_subscribers: Counter = field(init=False)

    def __post_init__(self) -> None:
        self.http_requests = Counter(
            "leetgaming_http_requests",
            "HTTP requests served, by method, route template and status.",
            labelnames=("method", "route", "status"),
            registry=self.registry,
        )
        self.http_request_duration = Histogram(
            "leetgaming_http_request_duration_seconds",
            "Time from request start to the end of the response, in seconds.",
            labelnames=("method", "route", "status"),
            buckets=_LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.hub_fanout = Histogram(
            "leetgaming_hub_fanout_seconds",
            "Time to queue one publication for every subscriber of its channel on this "
            "process (the socket writes follow in each connection's writer), in seconds.",
            buckets=_FANOUT_BUCKETS_S,
            registry=self.registry,
        )
        self.hub_fanout_subscribers = Counter(
            "leetgaming_hub_fanout_subscribers",
            "Subscribers on this process that publications were queued for (one per "
            "subscriber per publication).",
            registry=self.registry,
        )

    def observe_fanout(self, duration_s: float, subscribers: int) -> None:
        """Record one publication's fan-out on this process (see ``HubNode.observe_fanout``)."""
        self.hub_fanout.observe(duration_s)
        self.hub_fanout_subscribers.inc(subscribers)

    def observe_request(self, method: str, route: str, status: int, duration_s: float) -> None:
        """Count one finished HTTP request and record how long it took."""
        labels = (method, route, str(status))
        self.http_requests.labels(*labels).inc()
        self.http_request_duration.labels(*labels).observe(duration_s)

    def watch_ledger(self, read: Callable[[], Mapping[str, int]]) -> None:
        """Export the ledger writer's counters (read at each scrape)."""
        self.registry.register(_LedgerCollector(read))

    def render(self) -> bytes:
        """The registry in the Prometheus text exposition format."""
        return generate_latest(self.registry)


class _LedgerCollector(Collector):
    """``leetgaming_ledger_*``: transfers and batches written, requests waiting."""

    def __init__(self, read: Callable[[], Mapping[str, int]]) -> None:
        self._read = read

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        stats = self._read()
        yield CounterMetricFamily(
            "leetgaming_ledger_transfers_written",
            "Transfers in batches this process committed (every result, ok or not).",
            value=stats.get("transfers_written", 0),
        )
        yield CounterMetricFamily(
            "leetgaming_ledger_batches_written",
            "Batches (database transactions) this process committed.",
            value=stats.get("batches_written", 0),
        )
        yield GaugeMetricFamily(
            "leetgaming_ledger_queued_requests",
            "Requests waiting for this process's ledger writer.",
            value=stats.get("queued_requests", 0),
        )
