"""`ivr` subcommands for telephony (filled in by its issue)."""

from __future__ import annotations


def register(sub) -> None:
    """Add this package's subcommands to the `ivr` parser."""
