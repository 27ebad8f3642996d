"""Prometheus metrics of one server (its own registry, so apps in one process stay apart)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from conveyor.serving.batcher import Batch
    from conveyor.serving.supervisor import Supervised

_LATENCY = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
_ROWS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096)


class ServerMetrics:
    """Request counts and latencies, per-stage times, predictions, auth failures, model."""

    def __init__(self, routes: set[str]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.routes = routes
        r = self.registry
        self.requests = Counter(
            "conveyor_requests",
            "HTTP requests by route and status.",
            ["route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "conveyor_request_seconds",
            "Request latency by route.",
            ["route"],
            buckets=_LATENCY,
            registry=r,
        )
        self.stage = Histogram(
            "conveyor_stage_seconds",
            "Time in each stage of a prediction: parse, validate, predict, serialise.",
            ["stage"],
            buckets=_LATENCY,
            registry=r,
        )
        self.batch_rows = Histogram(
            "conveyor_batch_rows",
            "Rows per model call (micro-batches).",
            buckets=_ROWS,
            registry=r,
        )
        self.predictions = Counter(
            "conveyor_predictions",
            "Predictions by model version and predicted class.",
            ["version", "label"],
            registry=r,
        )
        self.auth_failures = Counter(
            "conveyor_auth_failures",
            "Refused requests by reason (missing, invalid, revoked).",
            ["reason"],
            registry=r,
        )
        self.model_version = Gauge(
            "conveyor_model_version", "The model version being served.", ["model"], registry=r
        )
        self.swaps = Counter("conveyor_model_swaps", "Hot swaps of the served model.", registry=r)
        self.log_rows = Counter(
            "conveyor_prediction_log_rows", "Rows written to the prediction log.", registry=r
        )
        self.log_errors = Counter(
            "conveyor_prediction_log_errors", "Failed prediction log flushes.", registry=r
        )
        self.refused = Counter(
            "conveyor_model_refused",
            "Alias moves not followed: the new version could not be served.",
            registry=r,
        )
        self.task_failures = Gauge(
            "conveyor_background_failures",
            "Failed runs of a background task (key refresh, alias following) since start.",
            ["task"],
            registry=r,
        )
        self.task_healthy = Gauge(
            "conveyor_background_healthy",
            "1 when the background task's last run succeeded and it is not stale, else 0.",
            ["task"],
            registry=r,
        )

    def watch_task(self, task: Supervised) -> None:
        """Export ``task``'s health (read when /metrics is scraped)."""
        self.task_failures.labels(task.name).set_function(lambda: task.status().failures)
        self.task_healthy.labels(task.name).set_function(
            lambda: float(task.status().ok and not task.status().stale)
        )

    def observe_batch(self, batch: Batch, *, classification: bool) -> None:
        """Per model call: time, size and the predicted classes."""
        self.stage.labels("predict").observe(batch.seconds)
        self.batch_rows.observe(len(batch.predictions))
        if classification:
            version = str(batch.model.record.version)
            counts: dict[Any, int] = {}
            for label in batch.predictions.labels:
                counts[label] = counts.get(label, 0) + 1
            for label, n in counts.items():
                self.predictions.labels(version, str(label)).inc(n)

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """ASGI middleware counting every HTTP request by route and status, with latency."""

        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            path = scope.get("path", "")
            route = path if path in self.routes else "other"  # bounded label values
            status = 500
            start = time.perf_counter()

            async def send_status(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                await send(message)

            try:
                await app(scope, receive, send_status)
            finally:
                self.latency.labels(route).observe(time.perf_counter() - start)
                self.requests.labels(route, str(status)).inc()

        return wrapped
