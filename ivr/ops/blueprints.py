"""The ops surface's HTTP routes: the live page (/ops) and Prometheus metrics (/metrics)."""

from __future__ import annotations


def init_app(app) -> None:
    """Register the ops routes on the app."""
    from ivr.ops import metrics, page

    metrics.init_app(app)
    page.init_app(app)
