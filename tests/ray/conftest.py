"""A local Ray cluster (127.0.0.1) with ggserve's Serve application: two replicas of the default
model with a small context, started once for the module."""

from __future__ import annotations

import dataclasses
import time

import httpx
import pytest

from engine import ModelSpec, builtin_default
from tests.e2e.conftest import free_port

ray = pytest.importorskip("ray")
serve = pytest.importorskip("ray.serve")

from server.ray.app import ClusterSpec, build  # noqa: E402  (needs ray)
from server.settings import Settings  # noqa: E402


def small_config():
    cfg = builtin_default()
    # One thread a replica: two replicas share this machine's two cores.
    text = dataclasses.replace(cfg.models[0], n_ctx=2048, parallel=2, n_threads=1)
    embed = ModelSpec(id="embed", source=text.source, embedding=True, n_ctx=256, parallel=2, n_threads=1)
    return dataclasses.replace(cfg, models=(text, embed))


class Cluster:
    def __init__(self, port: int):
        self.base_url = f"http://127.0.0.1:{port}"

    def deploy(self, cluster: ClusterSpec) -> None:
        serve.run(build(small_config(), Settings(), cluster), name="ggserve", route_prefix="/")
        deadline = time.monotonic() + 120
        while httpx.get(f"{self.base_url}/health", timeout=30).status_code != 200:
            assert time.monotonic() < deadline, "the ingress never became healthy"
            time.sleep(0.5)

    def replicas_running(self) -> int:
        status = serve.status().applications["ggserve"].deployments["ggserve-replica"]
        return status.replica_states.get("RUNNING", 0)

    def stats(self) -> dict:
        return httpx.get(f"{self.base_url}/stats", timeout=30).json()["smollm2-135m"]

    def kill_replica(self, unique_id: str) -> None:
        for actor in ray.util.list_named_actors(all_namespaces=True):
            if actor["name"].endswith(unique_id):
                ray.kill(ray.get_actor(actor["name"], namespace=actor["namespace"]), no_restart=True)
                return
        raise AssertionError(f"no replica actor named after {unique_id}")


@pytest.fixture(scope="module")
def cluster():
    port = free_port()
    ray.init(address="local", num_cpus=4, include_dashboard=False, logging_level="WARNING",
             object_store_memory=200 << 20)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        c = Cluster(port)
        c.deploy(ClusterSpec(replicas=2))
        yield c
    finally:
        serve.shutdown()
        ray.shutdown()
