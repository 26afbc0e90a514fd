"""Prometheus metrics of the API, in a registry of its own (one per app instance), so that
several apps in one process (tests) or the worker's registry never collide.

Requests are labelled by route *template* (``/v1/orgs/{org_id}/...``), never by the raw path,
so the number of series stays bounded whatever ids callers send.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "em_api_requests_total",
            "HTTP requests, by method, route template and status code",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "em_api_request_seconds",
            "Time to answer a request, by method and route template",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.commands = Counter(
            "em_api_commands_total",
            "Write commands published to Kafka, by topic and command type",
            ["topic", "type"],
            registry=self.registry,
        )
        self.auth_failures = Counter(
            "em_api_auth_failures_total",
            "Refused requests, by reason (missing, unknown token, forbidden role)",
            ["reason"],
            registry=self.registry,
        )
        self.webhook = Counter(
            "em_api_webhook_events_total",
            "Provider webhook events (SPEC §7.5), by provider and what became of them "
            "(published, ignored, dead_lettered)",
            ["provider", "outcome"],
            registry=self.registry,
        )
        self.webhook_refusals = Counter(
            "em_api_webhook_refused_total",
            "Provider webhook requests refused for a missing or wrong signature",
            ["provider"],
            registry=self.registry,
        )

    def webhook_events(self, provider: str, published: int, ignored: int, dead: int) -> None:
        for outcome, n in (("published", published), ("ignored", ignored), ("dead_lettered", dead)):
            if n:
                self.webhook.labels(provider, outcome).inc(n)

    def webhook_refused(self, provider: str) -> None:
        self.webhook_refusals.labels(provider).inc()


def route_label(scope: Scope) -> str:
    route: Any = scope.get("route")
    # The template without convertors: /v1/orgs/{org_id}/..., not {org_id:id}.
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    if isinstance(path, str):
        return path
    return "unmatched"


class MetricsMiddleware:
    """Pure ASGI middleware (no per-request task like BaseHTTPMiddleware): counts and times."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = route_label(scope)
            method = str(scope.get("method", ""))
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - started)
