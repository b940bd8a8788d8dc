"""ggserve on Ray Serve (the optional extra `ggserve[ray]`): model replicas behind one ingress that
runs server/'s routes unchanged, with prefix-affinity routing between the replicas.

    app.py      the Serve application: the Ingress and Replica deployments, ClusterSpec
    replica.py  a replica: a Registry of its own (a worker process per model)
    remote.py   the ingress's Registry over the replicas, retrying requests a dead replica held
    router.py   the request router: prefix affinity, else the least-loaded replica
    cli.py      `ggserve ray ...`
"""
