"""The training data files: validation errors name file and line, the shipped data is sound."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from ivr.intents import data

ROOT = Path(__file__).resolve().parents[2]

LABELS = {"payment", "human", "out_of_scope"}


def problems(text: str) -> list[str]:
    _, found = data.parse_lines(text.splitlines(), "x.tsv", "en", LABELS)
    return found


def test_unknown_category_is_refused_with_file_and_line():
    found = problems("payment\ti was charged twice\npaymnet\trefund please\n")
    assert len(found) == 1
    assert found[0].startswith("x.tsv:2: unknown category 'paymnet'")


def test_duplicate_utterance_names_both_lines():
    found = problems("payment\ti was charged twice\nhuman\tagent\npayment\tI was  charged TWICE\n")
    assert found == ["x.tsv:3: duplicate of line 1 ('I was  charged TWICE'); remove one of them"]


def test_empty_line_and_empty_text_are_refused():
    found = problems("payment\tok then\n\nhuman\t   \n")
    assert found[0].startswith("x.tsv:2: empty line")
    assert found[1].startswith("x.tsv:3: empty text")


def test_line_without_tab_is_refused():
    assert problems("payment i was charged\n")[0].startswith("x.tsv:1: expected category<TAB>text")


def test_comment_lines_are_skipped_and_line_numbers_stay_true():
    examples, found = data.parse_lines(["# comment", "human\tagent", "bogus\tx"], "x.tsv", "en", LABELS)
    assert [e.text for e in examples] == ["agent"]
    assert examples[0].source == "x.tsv:2"
    assert found[0].startswith("x.tsv:3:")


@pytest.fixture
def data_dir(small_data_dir):
    return small_data_dir


def test_bad_file_raises_data_error_listing_all_problems(data_dir):
    (data_dir / "zh.tsv").write_text("payment\t退款\nwrong\t你好\npayment\t退款\n", encoding="utf-8")
    with pytest.raises(data.DataError) as err:
        data.load_examples(data_dir)
    assert len(err.value.problems) == 2
    assert "zh.tsv:2: unknown category 'wrong'" in str(err.value)
    assert "zh.tsv:3: duplicate of line 1" in str(err.value)


def test_taxonomy_needs_a_spoken_name_per_language(data_dir):
    text = (data_dir / "categories.yaml").read_text(encoding="utf-8")
    (data_dir / "categories.yaml").write_text(text.replace("ko: 결제", "ko: ''"), encoding="utf-8")
    with pytest.raises(data.DataError) as err:
        data.load_taxonomy(data_dir)
    assert "categories.yaml:" in str(err.value) and "payment" in str(err.value) and "ko" in str(err.value)


def test_data_hash_changes_with_any_utterance(data_dir):
    before = data.data_hash(data_dir)
    with open(data_dir / "en.tsv", "a", encoding="utf-8") as f:
        f.write("payment\tanother refund question\n")
    assert data.data_hash(data_dir) != before


def test_shipped_data_is_valid_and_covers_every_category_in_every_language():
    taxonomy = data.load_taxonomy(ROOT / "intents")
    examples = data.load_examples(ROOT / "intents", taxonomy)
    for lang in data.LANGUAGES:
        counts = Counter(e.category for e in examples if e.language == lang)
        assert sum(counts.values()) >= 300, lang
        assert set(counts) == taxonomy.labels, lang
        assert min(counts.values()) >= 30, (lang, counts)


def test_shipped_data_is_written_like_the_recognizer_writes():
    for ex in data.load_examples(ROOT / "intents"):
        assert ex.text == ex.text.lower(), ex.source
        assert not any(ch in ex.text for ch in ".,?!;:。，？！"), ex.source


def test_spoken_names_come_from_the_taxonomy():
    taxonomy = data.load_taxonomy(ROOT / "intents")
    assert taxonomy.spoken_name("payment", "ko") == "결제"
    assert taxonomy.spoken_name("payment", "en-US") == "a payment"
    assert taxonomy.spoken_name("account_security", "zh") == "账号安全"
    with pytest.raises(KeyError):
        taxonomy.spoken_name("weather", "en")


def test_chinese_with_and_without_recognizer_spaces_is_one_utterance():
    found = problems("human\t人工 服务\npayment\t退款\nhuman\t人工服务\n")
    assert found == ["x.tsv:3: duplicate of line 1 ('人工服务'); remove one of them"]
    assert data.clean_text("转 人工 please  Agent") == "转人工 please agent"
