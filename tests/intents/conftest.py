"""Fixtures for the intents room: a scratch config with the shipped data, and small data sets."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr import config as config_mod

SMALL = {
    "en": [
        ("account_security", "i forgot my password"), ("account_security", "someone hacked my account"),
        ("account_security", "reset my password please"), ("account_security", "my account got stolen"),
        ("payment", "i was charged twice"), ("payment", "i want a refund"),
        ("payment", "my payment failed"), ("payment", "top up not credited"),
        ("human", "let me talk to a person"), ("human", "agent please"),
        ("human", "real human please"), ("human", "connect me to an operator"),
        ("out_of_scope", "whats the weather"), ("out_of_scope", "my neighbour is noisy"),
        ("out_of_scope", "tell me a joke"), ("out_of_scope", "i want a pizza"),
    ],
}


def write_small_data(folder: Path) -> None:
    """A tiny but valid data folder (reuses the shipped taxonomy)."""
    root = Path(__file__).resolve().parents[2]
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.tsv"):
        old.unlink()
    (folder / "categories.yaml").write_text((root / "intents" / "categories.yaml").read_text(encoding="utf-8"),
                                            encoding="utf-8")
    for lang, rows in SMALL.items():
        (folder / f"{lang}.tsv").write_text("".join(f"{c}\t{t}\n" for c, t in rows), encoding="utf-8")


@pytest.fixture
def small_data_dir(tmp_path):
    folder = tmp_path / "intents"
    write_small_data(folder)
    return folder


@pytest.fixture
def config(config_file, clean_env):
    """The shipped config and data, in a scratch folder (the model is saved there too)."""
    return config_mod.load(config_file)


@pytest.fixture
def small_config(config_file, clean_env):
    write_small_data(config_file.parent / "intents")
    return config_mod.load(config_file)
