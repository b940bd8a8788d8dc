"""ggserve as a Ray Serve application: an ingress deployment running server/'s FastAPI app over a
RayRegistry, and a deployment of model replicas behind it, routed by prefix affinity."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ray import serve
from ray.serve.config import RequestRouterConfig

from engine import ModelsConfig

from ..app import create_app
from ..settings import Settings
from .remote import RayRegistry
from .replica import Replica
from .router import PrefixAffinityRouter


@dataclass(frozen=True)
class ClusterSpec:
    """How the replicas run: a fixed count, or autoscaled between min and max on queue depth."""

    replicas: int = 1
    min_replicas: int | None = None  # with max_replicas: Ray Serve's autoscaler decides
    max_replicas: int | None = None
    target_ongoing: float = 4.0  # requests per replica the autoscaler aims at
    replica_cpus: float = 1.0  # Ray resources each replica declares
    replica_gpus: float = 0.0
    max_ongoing: int | None = None  # per replica; None: twice the largest model's `parallel`
    max_queued: int = 64  # requests waiting in the ingress for the replicas, beyond their room
    policy: str = "prefix"  # or "round_robin"
    upscale_delay_s: float = 5.0
    downscale_delay_s: float = 60.0


class Ingress:
    """The HTTP side; Ray Serve builds its app once the deployment's replica starts."""

    def __init__(self, replicas: Any, config: ModelsConfig, settings: Settings):
        self._app = create_app(settings, registry=RayRegistry(config, replicas))

    def __serve_build_asgi_app__(self) -> Any:
        return self._app


def replica_options(config: ModelsConfig, cluster: ClusterSpec) -> dict[str, Any]:
    options: dict[str, Any] = {
        "ray_actor_options": {"num_cpus": cluster.replica_cpus, "num_gpus": cluster.replica_gpus},
        "max_ongoing_requests": cluster.max_ongoing or 2 * max(s.parallel for s in config.models),
        "request_router_config": RequestRouterConfig(request_router_class=PrefixAffinityRouter,
                                                     request_router_kwargs={"policy": cluster.policy}),
        # Requests beyond the replicas' room wait in the ingress, up to this many; then
        # a 503 at once (Ray's BackPressureError, server/ray/stream.py), as --max-queue does.
        "max_queued_requests": cluster.max_queued,
        "health_check_period_s": 5,
        # Loading the default model again is part of the check (Replica.check_health).
        "health_check_timeout_s": 300,
        # A replica being scaled down finishes its streams first (requests it had not started
        # go back to the ingress at once, which sends them elsewhere).
        "graceful_shutdown_timeout_s": 600,
    }
    if cluster.max_replicas:
        options["autoscaling_config"] = {
            "min_replicas": cluster.min_replicas or 1, "max_replicas": cluster.max_replicas,
            "initial_replicas": cluster.min_replicas or 1, "target_ongoing_requests": cluster.target_ongoing,
            "upscale_delay_s": cluster.upscale_delay_s, "downscale_delay_s": cluster.downscale_delay_s,
            "metrics_interval_s": 1.0, "look_back_period_s": 5.0,
        }
    else:
        options["num_replicas"] = cluster.replicas
    return options


def build(config: ModelsConfig, settings: Settings, cluster: ClusterSpec = ClusterSpec()) -> Any:
    """The bound application, for serve.run."""
    replicas = serve.deployment(Replica, name="ggserve-replica", **replica_options(config, cluster))
    ingress = serve.deployment(serve.ingress()(Ingress), name="ggserve-ingress", max_ongoing_requests=10_000,
                               ray_actor_options={"num_cpus": 0})
    budget = settings.memory_budget_mb * 1024 * 1024 or None
    replica = replicas.bind(config, settings.max_queue, settings.log_level.upper(), budget)
    return ingress.bind(replica, config, settings)
