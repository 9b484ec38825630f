"""The classifier a server keeps current: new model files swapped in, edited data retrained in
a child process (real `ivr intents train`), broken data refused without losing the model in use."""

from __future__ import annotations

import logging

import pytest

from ivr.intents import classifier as clf
from ivr.intents import data as data_mod
from ivr.intents.data import Example
from ivr.intents.live import NO_MODEL, TRAINING, LiveClassifier

RETRAIN = "retraining the intent model in the background"


@pytest.fixture
def live(small_config):
    """Factory: a LiveClassifier on the small config that records what it publishes."""
    made = []

    def make():
        published, problems = [], {}
        lc = LiveClassifier(small_config, small_config.base_dir + "/config.yaml", published.append, problems)
        lc.published, lc.problems_seen = published, problems
        made.append(lc)
        return lc

    yield make
    for lc in made:
        lc.wait(120)
        lc.close()


def _en_file(config):
    return config.path(config.classifier.data_dir) / "en.tsv"


def _retrains(caplog) -> int:
    return sum(r.getMessage() == RETRAIN for r in caplog.records)


def test_a_new_model_file_is_swapped_in_and_an_unusable_one_is_not(small_config, live, caplog):
    first = clf.load_classifier(small_config)
    lc = live().start(watch=False)
    assert lc.published and lc.published[-1].trained_at == first.trained_at
    assert not lc.problems_seen

    path = small_config.path(small_config.classifier.model_path)
    path.write_bytes(b"not a model at all" * 100)
    lc.check()
    assert lc.current.trained_at == first.trained_at and len(lc.published) == 1
    assert any("unusable" in r.getMessage() for r in caplog.records)
    assert NO_MODEL not in lc.problems_seen  # still answering with the good one

    correction = Example("en", "payment", "the shop took my money twice", "feedback:1")
    clf.train_from_config(small_config, [correction])  # what `ivr intents train --with-feedback` writes
    lc.check()
    assert len(lc.published) == 2 and lc.current is lc.published[-1]
    assert lc.current.feedback_count == 1
    assert lc.current.predict("the shop took my money twice", "en").category == "payment"


def test_edited_data_is_retrained_by_a_child_process_and_swapped_in(small_config, live, caplog):
    clf.load_classifier(small_config)
    lc = live().start(watch=False)
    old = lc.current
    with _en_file(small_config).open("a", encoding="utf-8") as fh:
        fh.write("payment\tthe app took money from my card for nothing\n")
    lc.check()
    lc.wait(120)
    assert _retrains(caplog) == 1
    assert lc.current is not old
    assert lc.current.data_hash == data_mod.data_hash(small_config.path(small_config.classifier.data_dir))
    assert clf.read_artifact(small_config.path(small_config.classifier.model_path))["data_hash"] == lc.current.data_hash
    assert not lc.problems_seen


def test_a_retrain_keeps_the_agents_corrections_the_model_had(small_config, live):
    from ivr.intents.feedback import record_correction
    from ivr.keys import Keys
    from ivr.store import open_store

    text = "the corner shop took my money twice"
    store = open_store(small_config)  # the embedded Redis the child will open again
    try:
        record_correction(store.client, Keys(small_config.redis.key_prefix), "CA1", "en", text,
                          "out_of_scope", "payment")
    finally:
        store.close()
    clf.train_from_config(small_config, [Example("en", "payment", text, "feedback:1")])
    lc = live().start(watch=False)
    assert lc.current.feedback_count == 1
    with _en_file(small_config).open("a", encoding="utf-8") as fh:
        fh.write("human\tcan i speak to somebody real\n")
    lc.check()
    lc.wait(120)
    assert not lc.problems_seen, lc.problems_seen
    assert lc.current.data_hash == data_mod.data_hash(small_config.path(small_config.classifier.data_dir))
    assert lc.current.feedback_count == 1  # the data edit did not undo the correction
    assert lc.current.predict(text, "en").category == "payment"


def test_broken_data_keeps_the_model_in_use_and_says_why(small_config, live, caplog):
    clf.load_classifier(small_config)
    lc = live().start(watch=False)
    good = lc.current
    en = _en_file(small_config)
    original = en.read_text(encoding="utf-8")
    en.write_text(original + "paymnt\ta label with a typo\n", encoding="utf-8")
    lc.check()
    lc.wait(120)
    assert lc.current is good
    problem = lc.problems_seen[TRAINING]
    assert f"en.tsv:{original.count(chr(10)) + 1}" in problem and "unknown category 'paymnt'" in problem
    assert NO_MODEL not in lc.problems_seen

    en.write_text(original + "paymnt\ta label with a typo\n", encoding="utf-8")  # touched, same bytes
    lc.check()
    lc.wait(120)
    assert _retrains(caplog) == 1  # the same broken data is not retrained again and again

    en.write_text(original, encoding="utf-8")  # fixed: back to what the model in use learned
    lc.check()
    assert TRAINING not in lc.problems_seen and lc.current is good


def test_without_a_model_it_is_not_ready_until_the_retrain_is_in(small_config, live):
    lc = live().start(watch=False)
    assert lc.current is None and not lc.published
    assert "no saved model" in lc.problems_seen[NO_MODEL]
    lc.wait(120)
    assert lc.current is not None and lc.published == [lc.current]
    assert NO_MODEL not in lc.problems_seen
    assert lc.current.predict("i forgot my password", "en").category == "account_security"


def test_an_intact_file_that_will_not_load_is_retrained_not_trusted(small_config, live, caplog):
    # Header, length and checksum all whole, and still it does not unpickle (say, written by
    # code whose classes have since moved): with no model in use, the worker must retrain
    # rather than take the header's word that the file on disk is current.
    import pickle
    import zlib

    clf.load_classifier(small_config)
    path = small_config.path(small_config.classifier.model_path)
    header = clf.read_artifact(path, header_only=True)
    body = b"\x80\x05 not a pickle of any models"
    path.write_bytes(pickle.dumps({**header, "body_bytes": len(body), "body_crc32": zlib.crc32(body)}) + body)
    assert clf.staleness(small_config) is None  # the quick look cannot tell
    lc = live().start(watch=False)
    assert lc.current is None and "unreadable" in lc.problems_seen[NO_MODEL]
    lc.wait(120)
    assert _retrains(caplog) == 1
    assert lc.current is not None and lc.current.predict("i forgot my password", "en").category == "account_security"
    assert clf.read_artifact(path)["models"]  # replaced by a file that loads


def test_two_workers_finding_the_model_stale_train_it_once(small_config, live, caplog):
    clf.load_classifier(small_config)
    with _en_file(small_config).open("a", encoding="utf-8") as fh:
        fh.write("payment\tmy top up never showed up in the wallet\n")
    digest = data_mod.data_hash(small_config.path(small_config.classifier.data_dir))
    a, b = live().start(watch=False), live().start(watch=False)
    a.wait(120)
    b.wait(120)
    assert _retrains(caplog) == 1
    assert a.current.data_hash == b.current.data_hash == digest


def _trainer_child(timeout_s: float = 30.0) -> int:
    """The pid of the `ivr intents train` child this process started (from /proc)."""
    import os
    import time
    from pathlib import Path

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                cmdline = (stat.parent / "cmdline").read_bytes()
            except OSError:
                continue
            if int(fields[1]) == os.getpid() and b"intents\0train" in cmdline:
                return int(stat.parent.name)
        time.sleep(0.1)
    raise AssertionError("no trainer child started")


def test_a_killed_retrain_is_tried_again_not_taken_for_broken_data(small_config, live, monkeypatch):
    """The OOM killer or a deploy kills the trainer: that says nothing about the data, so it is
    not recorded as this data's failure (a restart would never train it again), and this worker
    tries again after RETRY_AFTER_S."""
    import os
    import signal

    from ivr.intents import live as live_mod

    lc = live().start(watch=False)  # no model yet: the retrain starts at once
    os.kill(_trainer_child(), signal.SIGKILL)
    lc.wait(120)
    assert lc.current is None
    assert "did not finish" in lc.problems_seen[TRAINING] and "trying again" in lc.problems_seen[TRAINING]
    assert not lc._failure_path.exists()  # so a restart, or another worker, trains this data afresh
    lc.check()
    assert lc._training is None or not lc._training.is_alive()  # nothing changed: not before the retry is due
    monkeypatch.setattr(live_mod.time, "monotonic", lambda: float("inf"))  # ...which it now is
    lc.check()
    lc.wait(120)
    assert lc.current is not None and TRAINING not in lc.problems_seen
