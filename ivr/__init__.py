"""Hotline: callers say what is wrong and are put straight through to the right agent."""

__version__ = "0.1.0"
