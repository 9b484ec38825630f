"""WordNet concepts: what an English word is, read from the real WordNet 3.0 files."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from ivr.intents import wordnet
from ivr.intents.model import Concepts, IntentModel


def test_a_word_gets_its_senses_files_and_hypernyms_through_its_inflections():
    tomatoes = set(wordnet.concepts("tomatoes"))  # plural -> tomato
    assert {"L:noun.food", "L:noun.plant", "H:n:vegetable", "H:n:food"} <= tomatoes
    assert "H:n:worker" in wordnet.concepts("mechanic") and "H:n:worker" in wordnet.concepts("plumbers")
    assert "L:verb.possession" in wordnet.concepts("refunded")  # suffix rule -ed
    assert set(wordnet.concepts("went")) & set(wordnet.concepts("go"))  # irregular: the exception list
    # a word in the index keeps its own senses beside its exception's: "found" (a company) and "find"
    assert {"L:verb.creation", "L:verb.perception"} <= set(wordnet.concepts("found"))
    assert "L:noun.attribute" in wordnet.concepts("stamina")  # its own sense, beside its exception "stamen"
    assert wordnet.concepts("xqzt") == ()


def test_concepts_skip_stopwords_and_non_latin_words():
    assert Concepts()("the tomatoes") == list(wordnet.concepts("tomatoes"))
    assert Concepts()("我的 账号 被盗了") == [] and Concepts()("비밀번호 를 잊어버렸어요") == []


TRAIN = (["how do i cook rice", "how do i bake bread", "what goes in a soup", "how long do i boil pasta"],
         ["how do i send a file", "how do i make a group chat", "how do i share a photo", "where is the settings menu"])


def _fit(**params) -> IntentModel:
    texts = TRAIN[0] + TRAIN[1]
    labels = ["out_of_scope"] * 4 + ["product_usage"] * 4
    return IntentModel(calibration_folds=0, **params).fit(texts, labels)


def test_a_word_never_seen_in_training_is_understood_by_what_it_is():
    with_concepts, without = _fit(), _fit(lexicons="off")
    assert "concepts" in [name for name, _ in with_concepts.features_.transformer_list]
    assert "concepts" not in [name for name, _ in without.features_.transformer_list]
    probe = "how do i peel carrots"  # neither word in training; carrots are food like rice and bread
    oos = list(with_concepts.classes_).index("out_of_scope")
    assert with_concepts.predict([probe])[0] == "out_of_scope"
    assert with_concepts.predict_proba([probe])[0, oos] > without.predict_proba([probe])[0, oos]
    np.testing.assert_allclose(with_concepts.proba_one(probe), with_concepts.predict_proba([probe])[0], atol=1e-12)


def test_the_block_is_made_for_latin_script_data_only_unless_asked():
    chinese = IntentModel(calibration_folds=0).fit(["我要退款", "钱没到账", "转人工", "我要找人工客服"],
                                                   ["payment", "payment", "human", "human"])
    assert not chinese.uses_lexicons  # neither WordNet's concepts nor VADER's affect
    with pytest.raises(ValueError, match="lexicons must be"):
        IntentModel(lexicons="maybe").fit(["a b", "c d"], ["x", "y"])


@pytest.mark.parametrize("stacking", ["on", "off"])
def test_a_dropped_block_leaves_a_consistent_model(monkeypatch, stacking):
    monkeypatch.setattr(IntentModel, "LEXICONS_MIN_Z", float("inf"))  # the gate always drops it
    texts = TRAIN[0] + TRAIN[1] + ["how do i fry an egg", "how do i roast a chicken",
                                   "how do i send a voice message", "how do i pin a chat"]
    labels = ["out_of_scope"] * 4 + ["product_usage"] * 4 + ["out_of_scope"] * 2 + ["product_usage"] * 2
    model = IntentModel(calibration_folds=3, stacking=stacking).fit(texts, labels)
    plain = IntentModel(calibration_folds=3, stacking=stacking, lexicons="off").fit(texts, labels)
    assert not model.uses_lexicons and not np.isnan(model.lexicons_z_)
    width = sum(len(vec.vocabulary_) for _, vec in model.features_.transformer_list)
    assert model.coef_t_.shape == (width, 2)
    probe = ["how do i peel carrots", "how do i mute a group"]
    np.testing.assert_allclose(np.vstack([model.proba_one(t) for t in probe]), model.predict_proba(probe), atol=1e-12)
    np.testing.assert_allclose(model.predict_proba(probe), plain.predict_proba(probe), atol=1e-9)


def test_words_wordnet_does_not_know_give_no_block_and_on_says_why():
    texts, labels = ["zorp qwix", "qwix zorpy", "vorp blarg", "blarg vorpy"], ["a", "a", "b", "b"]
    assert not IntentModel(calibration_folds=0).fit(texts, labels).uses_lexicons
    with pytest.raises(ValueError, match="no training utterance has a word WordNet or VADER knows"):
        IntentModel(calibration_folds=0, lexicons="on").fit(texts, labels)


def test_missing_wordnet_data_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(wordnet.WordNetMissing, match="make setup"):
        wordnet.data_dir()


def test_auto_keeps_the_block_only_when_held_out_folds_say_it_helps():
    texts = TRAIN[0] + TRAIN[1] + ["how do i fry an egg", "how do i roast a chicken",
                                   "how do i send a voice message", "how do i pin a chat"]
    labels = ["out_of_scope"] * 4 + ["product_usage"] * 4 + ["out_of_scope"] * 2 + ["product_usage"] * 2
    model = IntentModel(calibration_folds=3).fit(texts, labels)
    kept = "concepts" in [name for name, _ in model.features_.transformer_list]
    assert kept == (model.lexicons_z_ >= 1)
    width = sum(len(vec.vocabulary_) for _, vec in model.features_.transformer_list)
    assert model.coef_t_.shape == (width, 2)  # the weights match the blocks kept
    np.testing.assert_allclose(model.proba_one("how do i peel carrots"),
                               model.predict_proba(["how do i peel carrots"])[0], atol=1e-12)


def test_the_hotline_trains_and_evaluates_english_with_its_own_parameters(monkeypatch):
    from pathlib import Path

    from ivr.intents import classifier, evaluate, model as model_mod
    from ivr.intents.data import Example, load_taxonomy

    assert model_mod.params_for("en")["lexicons"] == "on"
    assert model_mod.params_for("zh") == {} and model_mod.params_for("en", {"lexicons": "off"})["lexicons"] == "off"
    monkeypatch.setitem(model_mod.LANGUAGE_PARAMS, "en", {"lexicons": "bogus"})
    examples = [Example("en", label, text, f"t:{i}") for i, (label, text) in
                enumerate([("payment", t) for t in TRAIN[0] * 2] + [("human", t) for t in TRAIN[1] * 2])]
    with pytest.raises(ValueError, match="lexicons must be"):
        evaluate.cross_validate(examples, folds=2, near_duplicate=2)
    with pytest.raises(ValueError, match="lexicons must be"):
        classifier.train(examples, load_taxonomy(Path(__file__).resolve().parents[2] / "intents"))


def test_the_hotline_english_model_uses_the_blocks_on_words_it_never_saw():
    from pathlib import Path

    from ivr.intents.data import load_examples
    from ivr.intents.model import params_for

    root = Path(__file__).resolve().parents[2]
    english = [ex for ex in load_examples(root / "intents") if ex.language == "en"]
    model = IntentModel(**params_for("en")).fit([ex.text for ex in english], [ex.category for ex in english])
    blocks = dict(model.features_.transformer_list)
    assert {"concepts", "affect"} <= set(blocks)
    # "carrots" is in no English line; its concepts (food, vegetable) are in the model's vocabulary
    concepts = blocks["concepts"]
    assert "carrots" not in " ".join(ex.text for ex in english)
    assert concepts.transform(["how do i peel carrots"]).nnz >= 3
