"""Agents' corrections go to the Redis stream and come back as training data."""

from __future__ import annotations

import pytest

from ivr.intents import classifier as clf
from ivr.intents.feedback import read_corrections, record_correction
from ivr.keys import Keys


def test_correction_is_stored_with_every_field(redis):
    keys = Keys("t")
    entry_id = record_correction(redis, keys, "CA1", "ko-KR", "결제 했는데 **** 안 됐어요", "technical_fault", "payment")
    [(stored_id, fields)] = redis.xrange(keys.feedback())
    assert stored_id == entry_id  # the client decodes responses
    assert fields["sid"] == "CA1" and fields["language"] == "ko"
    assert fields["text"] == "결제 했는데 **** 안 됐어요"
    assert fields["predicted"] == "technical_fault" and fields["corrected"] == "payment"
    assert float(fields["at"]) > 0


def test_correction_without_transcript_or_to_unknown_category_is_refused(redis):
    keys = Keys("t")
    with pytest.raises(ValueError, match="no transcript"):
        record_correction(redis, keys, "CA1", "en", "  ", "payment", "human")
    with pytest.raises(ValueError, match="unknown category 'billing'"):
        record_correction(redis, keys, "CA1", "en", "my bill", "payment", "billing", categories=["payment"])
    assert redis.xlen(keys.feedback()) == 0


def test_latest_correction_of_the_same_text_wins(redis):
    keys = Keys("t")
    record_correction(redis, keys, "CA1", "en", "the thing with my card", "payment", "human")
    record_correction(redis, keys, "CA2", "en", "The thing with my card", "human", "payment")
    record_correction(redis, keys, "CA3", "zh", "那个 卡 的 事情", "payment", "payment")
    corrections = read_corrections(redis, keys, batch=1)  # paging through the stream
    assert sorted((c.language, c.category) for c in corrections) == [("en", "payment"), ("zh", "payment")]
    assert all(c.source.startswith("feedback:") for c in corrections)


def test_training_with_feedback_learns_the_correction(redis, small_config):
    keys = Keys(small_config.redis.key_prefix)
    text = "the blue widget thing went wobbly"
    before = clf.load_classifier(small_config).predict(text, "en")
    assert before.category != "human"
    for i in range(3):
        record_correction(redis, keys, f"CA{i}", "en", f"{text} {'again ' * i}".strip(), before.category, "human")
    model = clf.train_from_config(small_config, read_corrections(redis, keys))
    assert model.feedback_count == 3
    assert model.predict(text, "en").category == "human"
    # The saved model keeps the corrections: loading it does not retrain them away.
    assert clf.staleness(small_config) is None
    assert clf.load_classifier(small_config).predict(text, "en").category == "human"
