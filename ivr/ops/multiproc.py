"""Metrics across gunicorn workers: prometheus-client's multiprocess mode, set up by ``ivr serve``.

Kept apart from :mod:`ivr.ops.metrics` on purpose: the gunicorn master must set
``PROMETHEUS_MULTIPROC_DIR`` *before* anything creates a metric, so this module does
not import prometheus-client at the top.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "PROMETHEUS_MULTIPROC_DIR"
DEFAULT_DIR = "var/prometheus"


def prepare(folder: str | Path) -> Path:
    """Empty ``folder`` of an earlier run's metric files and point the workers at it.

    Called once in the master before the workers fork (a counter left by a previous
    server would otherwise add up forever)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink(missing_ok=True)
    os.environ[ENV] = str(folder)
    return folder


def worker_exited(pid: int) -> None:
    """Gunicorn's ``child_exit`` hook: drop the dead worker's live gauges (its counts stay)."""
    if not os.environ.get(ENV):
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)
