"""`/healthz`, `/readyz` and `/metrics` of the simulator, like every whoop-sync HTTP process.

The metrics are the simulator's own counters (calls by endpoint and status, 429s), in Prometheus'
text format, from a registry of this app's own.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.simulator.gate import json_response, sim_of
from services.simulator.limits import Counters


class _SimCollector(Collector):
    """Reads the simulator's counters at each scrape."""

    def __init__(self, counters: Counters) -> None:
        self.counters = counters

    def collect(self) -> Iterator[Metric]:
        calls = CounterMetricFamily(
            "whoopsync_sim_calls",
            "WHOOP API calls the simulator served, by endpoint",
            labels=["endpoint"],
        )
        for endpoint, count in self.counters.by_endpoint.items():
            calls.add_metric([endpoint], count)
        statuses = CounterMetricFamily(
            "whoopsync_sim_responses", "Responses by HTTP status", labels=["status"]
        )
        for status, count in self.counters.by_status.items():
            statuses.add_metric([str(status)], count)
        limited = CounterMetricFamily("whoopsync_sim_rate_limited", "429 answers sent")
        limited.add_metric([], self.counters.rate_limited)
        yield from (calls, statuses, limited)


async def healthz(request: Request) -> Response:
    """The process lives."""
    return json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready as soon as it lives: the simulator depends on nothing."""
    return json_response({"status": "ok"})


async def metrics(request: Request) -> Response:
    """The counters in Prometheus' text format."""
    registry = CollectorRegistry()
    registry.register(_SimCollector(sim_of(request).counters))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def routes() -> list[Route]:
    """The operations routes."""
    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
