"""`ivr serve`: gunicorn with threaded workers (one thread per live Media Stream)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ivr import logs
from ivr.config import Config
from ivr.store import EmbeddedRedis, share_with_children

log = logging.getLogger(__name__)


def serve(config: Config, host: str | None = None, port: int | None = None,
          workers: int | None = None, threads: int | None = None, config_path: str | None = None) -> int:
    """``config_path``: the file ``config`` was read from; every worker reads it again."""
    from gunicorn.app.base import BaseApplication

    logs.configure(config.logging.level, config.logging.json_lines)
    embedded = None
    if not config.redis.url:
        embedded = EmbeddedRedis(config.path(config.redis.embedded_dir)).start()
        share_with_children(embedded.url)
    from ivr.ops import multiproc

    # Counters and histograms of every worker add up at /metrics (before any worker forks).
    multiproc.prepare(os.environ.get(multiproc.ENV) or config.path(multiproc.DEFAULT_DIR))
    bind = f"{host or config.server.host}:{port or config.server.port}"
    options = {
        "bind": bind,
        "workers": workers or config.server.workers,
        "worker_class": "gthread",
        "threads": threads or config.server.threads,
        # Media Streams are long-lived; a caller may talk for up to asr.max_listen_s.
        "timeout": 120,
        "graceful_timeout": 20,
        "keepalive": 75,
        "accesslog": None,
        "preload_app": False,
        "child_exit": lambda server, worker: multiproc.worker_exited(worker.pid),
    }
    config_path = str(Path(config_path).resolve()) if config_path else f"{config.base_dir}/config.yaml"

    class HotlineServer(BaseApplication):
        def load_config(self):
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self):
            # Each worker loads the config again so it sees the shared REDIS_URL.
            from ivr import config as config_mod
            from ivr.app import create_app
            from ivr.services import build_services

            cfg = config_mod.load(config_path)
            logs.configure(cfg.logging.level, cfg.logging.json_lines)
            # The classifier is kept current while serving, never trained before the first request.
            return create_app(cfg, build_services(cfg, config_path=config_path))

    log.info("serving", extra={"bind": bind, "workers": options["workers"], "threads": options["threads"]})
    print(f"Hotline listening on http://{bind}  (Ctrl-C to stop)", flush=True)
    try:
        HotlineServer().run()
    finally:
        if embedded is not None:
            embedded.stop()
    return 0
