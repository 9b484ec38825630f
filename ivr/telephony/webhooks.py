"""Blueprints of this surface (filled in by its issue)."""


def init_app(app) -> None:
    """Register this surface's routes on the app."""
