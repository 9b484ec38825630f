"""The early decision on the call path: the words so far settle the call when the real
classifier would route them at once (not out of scope, not a re-prompt)."""

from __future__ import annotations

from types import SimpleNamespace

from ivr.telephony.media import StreamTurn


def turn(classifier, config):
    return StreamTurn(SimpleNamespace(services=SimpleNamespace(classifier=classifier), config=config))


def test_confident_words_settle_and_vague_or_off_topic_ones_do_not(trained_classifier, speech_config):
    settles = turn(trained_classifier, speech_config)._settles("ko")
    for text in ("결제가 안 돼요", "비밀번호를 잊어버렸어요", "상담원 연결해 주세요"):
        p = trained_classifier.predict(text, "ko")
        assert settles(text) == (p.decision == "route" and p.category != "out_of_scope")
    assert settles("결제가 안 돼요")
    assert not settles("음")
    assert not settles("오늘 날씨 어때요")  # out of scope: let the caller finish


def test_no_settling_without_a_classifier_or_when_switched_off(trained_classifier, speech_config):
    assert turn(None, speech_config)._settles("ko") is None
    endpointing = speech_config.asr.endpointing.model_copy(update={"settled_silence_s": 0})
    off = speech_config.model_copy(update={"asr": speech_config.asr.model_copy(update={"endpointing": endpointing})})
    assert turn(trained_classifier, off)._settles("ko") is None
