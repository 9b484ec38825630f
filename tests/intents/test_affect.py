"""VADER's affect lexicon as a block of the English model: bare reactions read as upset."""

from __future__ import annotations

import importlib.util

import pytest

from ivr.intents import affect
from ivr.intents.model import Affect, IntentModel


def test_rated_words_give_coarse_tokens_and_unrated_words_none():
    assert len(affect.lexicon()) > 5000
    assert affect.tokens("pathetic") == ("A:neg", "A:neg2")
    assert affect.tokens("no") == ("A:neg",)  # mildly negative
    assert affect.tokens("thanks") == ("A:pos",)
    assert affect.tokens("router") == () and affect.tokens("okay") == ()  # unrated, or too mild
    assert Affect()("this is awful no thanks") == ["A:neg", "A:neg2", "A:neg", "A:pos"]


def test_a_missing_lexicon_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    affect.lexicon.cache_clear()
    try:
        with pytest.raises(affect.AffectLexiconMissing, match="make setup"):
            affect.lexicon()
    finally:
        affect.lexicon.cache_clear()


COMPLAINTS = ["this is terrible", "awful service", "you are useless", "i am so angry with you",
              "horrible experience", "your staff were rude"]
OTHER = ["what is the weather tomorrow", "book a table for two", "where is the station",
         "how tall is the tower", "play some music", "what time is it in tokyo"]


def test_a_reaction_never_seen_in_training_reads_as_a_complaint():
    texts, labels = COMPLAINTS + OTHER, ["complaint"] * 6 + ["out_of_scope"] * 6
    with_lexicons = IntentModel(calibration_folds=0, lexicons="on").fit(texts, labels)
    without = IntentModel(calibration_folds=0, lexicons="off").fit(texts, labels)
    assert "affect" in dict(with_lexicons.features_.transformer_list)
    complaint = list(with_lexicons.classes_).index("complaint")
    for probe in ("pathetic", "this is disgusting"):  # no word of either is in training
        assert with_lexicons.predict([probe])[0] == "complaint"
        assert with_lexicons.predict_proba([probe])[0, complaint] > without.predict_proba([probe])[0, complaint]
