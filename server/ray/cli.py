"""`ggserve ray [--address auto] [--replicas N | --min-replicas A --max-replicas B] [server flags]`:
run ggserve as a Ray Serve application on an existing cluster (or a local one) and keep serving."""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from engine import ConfigError

from ..app import load_config
from ..settings import parse_args

log = logging.getLogger(__name__)


def ray_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ggserve ray", add_help=False,
                                description="Serve on Ray Serve; every other flag is ggserve's own (ggserve --help).")
    p.add_argument("--address", default=None, help="Ray cluster address ('auto': the one this node joined; "
                                                   "default: start a local cluster)")
    p.add_argument("--replicas", type=int, default=1, help="model replicas (without autoscaling)")
    p.add_argument("--min-replicas", type=int, default=None, help="autoscale from this many replicas ...")
    p.add_argument("--max-replicas", type=int, default=None, help="... up to this many, on queue depth")
    p.add_argument("--target-ongoing", type=float, default=4.0, help="requests per replica the autoscaler aims at")
    p.add_argument("--replica-cpus", type=float, default=1.0, help="CPUs each replica reserves in Ray")
    p.add_argument("--replica-gpus", type=float, default=0.0, help="GPUs each replica reserves in Ray")
    p.add_argument("--routing", choices=("prefix", "round_robin"), default="prefix",
                   help="prefix affinity (default), or round robin to compare against")
    p.add_argument("--ray-help", action="help", help="show this help")
    return p


def main(argv: list[str]) -> int:
    args, rest = ray_parser().parse_known_args(argv)
    settings = parse_args(rest)
    logging.basicConfig(level=settings.log_level.upper())
    try:
        config = load_config(settings)
    except ConfigError as exc:
        raise SystemExit(f"ggserve: {exc}") from None
    if args.min_replicas is not None and not args.max_replicas:
        raise SystemExit("ggserve ray: --min-replicas needs --max-replicas")
    if args.replicas < 1 or (args.max_replicas is not None and not 1 <= (args.min_replicas or 1) <= args.max_replicas):
        raise SystemExit("ggserve ray: need 1 <= --replicas, and 1 <= --min-replicas <= --max-replicas")
    import ray
    from ray import serve

    from .app import ClusterSpec, build

    ray.init(address=args.address, include_dashboard=False)
    serve.start(http_options={"host": settings.host, "port": settings.port})
    cluster = ClusterSpec(replicas=args.replicas, min_replicas=args.min_replicas, max_replicas=args.max_replicas,
                          target_ongoing=args.target_ongoing, replica_cpus=args.replica_cpus,
                          replica_gpus=args.replica_gpus, policy=args.routing, max_queued=settings.max_queue)
    serve.run(build(config, settings, cluster), name="ggserve", route_prefix="/")
    log.info("ggserve on Ray Serve: http://%s:%d/", settings.host, settings.port)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    serve.delete("ggserve")
    return 0
