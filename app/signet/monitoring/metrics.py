"""Prometheus metrics: requests, refusals and latency per endpoint (this node's, summed over
its gunicorn workers), and the counts every node agrees on, read from the database.

gunicorn runs several worker processes, each with its own memory: the per-request metrics use
prometheus_client's multiprocess mode (each worker writes its samples to files in
PROMETHEUS_MULTIPROC_DIR, which `signet serve` makes fresh at start; a scrape, answered by any
worker, sums them). Counts that must agree across nodes — signatures made, authorizations
refused, credentials locked — are not counted in memory at all: they are read from the audit
trail and the credentials table at scrape time (signet.monitoring.status), so every node, and
a node just restarted, reports the same totals."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from signet.monitoring.status import TrailCounts, credentials_locked
from signet.signing import Services

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"

REQUESTS = Counter(
    "signet_http_requests",
    "HTTP requests answered, by endpoint (route template), method and status",
    ["endpoint", "method", "status"],
)
REFUSALS = Counter(
    "signet_http_refusals",
    "Requests refused (4xx), by endpoint and CSC error code",
    ["endpoint", "error"],
)
LATENCY = Histogram(
    "signet_http_request_duration_seconds",
    "Time from the request's dispatch to its answer, by endpoint",
    ["endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


def observe(endpoint: str, method: str, status: int, seconds: float, error: str | None) -> None:
    REQUESTS.labels(endpoint, method, str(status)).inc()
    LATENCY.labels(endpoint).observe(seconds)
    if error is not None:
        REFUSALS.labels(endpoint, error).inc()


class DatabaseCounts(Collector):
    """The counts read from the database at each scrape (from a cursor over the audit trail,
    so a scrape reads only the records appended since the previous one in this process)."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.counts = TrailCounts()
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            self.counts.advance(self.services)
            locked = credentials_locked(self.services)
        made = CounterMetricFamily(
            "signet_signatures_made",
            "Signatures made by the cluster, from the audit trail, by operation",
            labels=["operation"],
        )
        for operation, count in sorted(self.counts.by_operation.items()):
            made.add_metric([operation], count)
        yield made
        yield CounterMetricFamily(
            "signet_authorizations_refused",
            "Credential authorizations refused (wrong or reused code, wrong PIN), from the "
            "audit trail",
            value=self.counts.authorizations_refused,
        )
        yield GaugeMetricFamily("signet_credentials_locked", "Credentials locked now", value=locked)


def registry_for(services: Services) -> CollectorRegistry:
    """The registry a scrape reads: every worker's samples (multiprocess mode) or this
    process's (one process: tests, the development server), and the database's counts."""
    registry = CollectorRegistry()
    if os.environ.get(MULTIPROCESS_DIR):
        MultiProcessCollector(registry)
    else:
        for collector in (REQUESTS, REFUSALS, LATENCY):
            registry.register(collector)
    registry.register(DatabaseCounts(services))
    return registry


def exposition(registry: CollectorRegistry) -> tuple[bytes, str]:
    return generate_latest(registry), CONTENT_TYPE_LATEST
