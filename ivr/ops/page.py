"""Placeholder: being written (issue 6)."""


def init_app(app) -> None:
    pass
