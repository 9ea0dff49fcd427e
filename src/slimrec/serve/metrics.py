"""Prometheus metrics of the HTTP service, and the ASGI middleware that records them.

Each app has its own registry (several apps in one process, as in tests, do not mix). Process
figures (``process_resident_memory_bytes``, CPU seconds, open files) come from
``prometheus_client``'s process collector.
"""

from __future__ import annotations

import os
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from slimrec.env import peak_rss_bytes

# Requests to other paths share one label, so that scanners cannot grow the label set.
OTHER_ENDPOINT = "other"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


def current_rss_bytes() -> int:
    """Resident set size of this process now (Linux ``/proc``; the peak elsewhere)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return peak_rss_bytes()


class ServeMetrics:
    """The service's counters, histograms and gauges, in one registry."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, endpoints: tuple[str, ...]) -> None:
        self.endpoints = frozenset(endpoints)
        self.registry = CollectorRegistry()
        self.requests = Counter("slimrec_requests", "HTTP requests by endpoint and status",
                                ["endpoint", "status"], registry=self.registry)
        self.errors = Counter("slimrec_request_errors", "HTTP requests answered with a status "
                              ">= 400, by endpoint", ["endpoint"], registry=self.registry)
        self.latency = Histogram("slimrec_request_latency_seconds", "time from request to the "
                                 "end of the response, by endpoint", ["endpoint"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_size = Histogram("slimrec_batch_size", "queries (users or histories) scored "
                                    "by one matrix product", buckets=BATCH_BUCKETS,
                                    registry=self.registry)
        self.model_bytes = Gauge("slimrec_model_bytes", "bytes of the served model: as stored "
                                 "(embeddings, dense, model_total) and its fp32 tables "
                                 "(full_fp32_embeddings)", ["part"], registry=self.registry)
        self.reloads = Counter("slimrec_reloads", "model reloads by outcome", ["outcome"],
                               registry=self.registry)
        ProcessCollector(registry=self.registry)

    def endpoint(self, path: str) -> str:
        return path if path in self.endpoints else OTHER_ENDPOINT

    def observe_model(self, memory: dict[str, int]) -> None:
        for part, value in memory.items():
            self.model_bytes.labels(part).set(value)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class InstrumentMiddleware:
    """Counts requests and errors and times them, by endpoint (a pure ASGI middleware: no
    per-request task, unlike ``BaseHTTPMiddleware``)."""

    def __init__(self, app: ASGIApp, metrics: ServeMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status: dict[str, Any] = {"code": 500}

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            endpoint = self.metrics.endpoint(scope["path"])
            self.metrics.requests.labels(endpoint, str(status["code"])).inc()
            if status["code"] >= 400:
                self.metrics.errors.labels(endpoint).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - start)
