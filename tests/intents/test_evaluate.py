"""Cross-validation keeps near-duplicates in one fold, so variations of a template cannot inflate it."""

from __future__ import annotations

import numpy as np

from ivr.intents import evaluate
from ivr.intents.data import Example


def test_near_duplicates_share_a_group_and_different_sentences_do_not():
    texts = ["my card keeps getting declined", "card keeps getting declined", "um my card keeps getting declined",
             "i want to talk to a person", "the game crashes on the loading screen", "人工服务", "人工 服务"]
    groups = evaluate.near_duplicate_groups(texts)
    assert groups[0] == groups[1] == groups[2]
    assert groups[5] == groups[6]
    assert len({groups[0], groups[3], groups[4], groups[5]}) == 4


def test_groups_are_the_same_whether_the_similarities_are_computed_in_one_block_or_many(monkeypatch):
    from ivr.intents import neardup

    texts = [f"{filler}my card {verb} getting declined {tail}".strip()
             for filler in ("", "um ", "uh so ") for verb in ("keeps", "kept") for tail in ("", "again", "at the shop")]
    texts += ["i want to talk to a person", "talk to a person", "the game crashes on start", "the app crashes on start"]
    whole = neardup.near_duplicate_groups(texts)
    monkeypatch.setattr(neardup, "_ROWS", 3)  # rows 0-2 against all, then 3-5, ...: pairs cross the blocks
    blocks = neardup.near_duplicate_groups(texts)
    partition = lambda groups: sorted(sorted(np.flatnonzero(groups == g).tolist()) for g in set(groups.tolist()))
    assert partition(whole) == partition(blocks)
    assert 1 < len(set(whole.tolist())) < len(texts)  # some texts linked, not all


def test_cross_validation_never_tests_on_a_near_duplicate_of_training_data():
    # Each "template" has three near-identical variants; if they were split across folds,
    # the variants would be recognised from memory. With groups, the model must generalise,
    # and unrelated templates of the same label are all it has.
    base = {"payment": ["i was charged twice for one order", "refund my money please now",
                        "the top up never arrived in my balance", "my card payment failed again"],
            "human": ["let me talk to a real person", "connect me to an operator now",
                      "agent please i need a human", "transfer me to customer service staff"]}
    examples = []
    for label, sentences in base.items():
        for s in sentences:
            for filler in ("", "um ", "uh yeah "):
                examples.append(Example("en", label, filler + s))
    [grouped] = evaluate.cross_validate(examples, folds=4)
    [ungrouped] = evaluate.cross_validate(examples, folds=4, near_duplicate=2.0)
    assert grouped.groups == 8 and ungrouped.groups == len(examples)
    assert ungrouped.accuracy == 1.0  # memorised variants
    assert grouped.accuracy < ungrouped.accuracy
    assert np.isclose(sum(m["support"] for m in grouped.per_category.values()), len(examples))


def test_calibration_error_is_zero_when_confidence_matches_accuracy_and_grows_with_overconfidence():
    y_true = ["a"] * 10
    honest = evaluate.Report("en", ["a", "b"], y_true, ["a"] * 8 + ["b"] * 2, [0.8] * 10)
    overconfident = evaluate.Report("en", ["a", "b"], y_true, ["a"] * 5 + ["b"] * 5, [0.99] * 10)
    assert honest.calibration_error() < 1e-9
    assert abs(overconfident.calibration_error() - 0.49) < 1e-9
