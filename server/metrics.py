"""GET /metrics in Prometheus format: traffic from the access layer, engine state at scrape time."""

from __future__ import annotations

from typing import Iterator

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from engine import Registry

ROUTES = {"/v1/chat/completions", "/api/v1/chat/completions", "/v1/completions", "/v1/embeddings",
          "/v1/responses", "/v1/responses/input_tokens",
          "/v1/messages", "/v1/messages/count_tokens", "/v1/models", "/health", "/stats", "/metrics",
          "/tokenize", "/detokenize", "/apply-template", "/v1/chat/completions/input_tokens", "/"}

router = APIRouter()


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("ggserve_requests", "HTTP requests", ["route", "status"], registry=self.registry)
        self.prompt_tokens = Counter("ggserve_prompt_tokens", "Prompt tokens", ["model"], registry=self.registry)
        self.completion_tokens = Counter("ggserve_completion_tokens", "Completion tokens", ["model"],
                                         registry=self.registry)
        self.duration = Histogram("ggserve_request_duration_seconds", "Request duration", ["route"],
                                  registry=self.registry, buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))
        self.ttft = Histogram("ggserve_time_to_first_token_seconds", "Time to first streamed token", ["model"],
                              registry=self.registry, buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))

    def observe_request(self, path: str, status: int, seconds: float, model: str, prompt: int, completion: int) -> None:
        route = path if path in ROUTES or path.startswith(("/v1/models/", "/v1/responses/")) else "other"
        route = "/v1/models/{id}" if route.startswith("/v1/models/") else route
        route = "/v1/responses/{id}" if route.startswith("/v1/responses/") and route not in ROUTES else route
        self.requests.labels(route, str(status)).inc()
        self.duration.labels(route).observe(seconds)
        if model != "-":
            self.prompt_tokens.labels(model).inc(prompt)
            self.completion_tokens.labels(model).inc(completion)

    def watch(self, models: Registry) -> None:
        self.registry.register(EngineCollector(models))


class EngineCollector:
    """Reads each loaded engine's counters when Prometheus scrapes, so the step loop never pays."""

    def __init__(self, models: Registry):
        self._models = models

    def collect(self) -> Iterator[Metric]:
        gauges = {name: GaugeMetricFamily(f"ggserve_{name}", doc, labels=["model"]) for name, doc in (
            ("queue_depth", "Requests waiting for a sequence slot"),
            ("running_sequences", "Sequences holding a slot"),
            ("kv_cache_tokens", "KV cells held by running sequences"),
            ("kv_cache_cached_tokens", "KV cells kept in idle slots for prefix reuse"),
            ("tokens_per_decode_step", "Average tokens per llama_decode since start"),
            ("model_load_seconds", "Time the model took to load"),
            ("model_loaded", "1 when the model is loaded"))}
        steps = CounterMetricFamily("ggserve_decode_steps", "llama_decode calls", labels=["model"])
        restarts = CounterMetricFamily("ggserve_model_restarts", "Worker restarts after a crash", labels=["model"])
        reused = CounterMetricFamily("ggserve_prompt_cache_reused_tokens", "Prompt tokens served from the cache",
                                     labels=["model"])
        for spec in self._models.specs:
            engine = self._models.loaded(spec.id)
            gauges["model_loaded"].add_metric([spec.id], 1 if engine else 0)
            crashes = self._models.crashes.get(spec.id)
            restarts.add_metric([spec.id], crashes.count if crashes else 0)
            if spec.id in self._models.load_seconds:
                gauges["model_load_seconds"].add_metric([spec.id], self._models.load_seconds[spec.id])
            if engine is None or spec.embedding:
                continue
            s = engine.stats()
            gauges["queue_depth"].add_metric([spec.id], s.waiting)
            gauges["running_sequences"].add_metric([spec.id], s.running)
            gauges["kv_cache_tokens"].add_metric([spec.id], s.kv_tokens)
            gauges["kv_cache_cached_tokens"].add_metric([spec.id], s.cached_tokens)
            gauges["tokens_per_decode_step"].add_metric([spec.id], s.decoded_tokens / s.steps if s.steps else 0)
            steps.add_metric([spec.id], s.steps)
            reused.add_metric([spec.id], s.reused_tokens)
        yield from gauges.values()
        yield steps
        yield restarts
        yield reused


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
