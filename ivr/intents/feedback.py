"""Agents' category corrections: stored in a Redis stream, folded into training on request.

The agent API calls :func:`record_correction` when an agent says a call was about
something else; ``ivr intents train --with-feedback`` reads them back with
:func:`read_corrections`. The text stored is the call record's transcript, already
masked, so no personal data reaches the training set.
"""

from __future__ import annotations

import time

from ivr.intents.data import OUT_OF_SCOPE, Example, base_language, clean_text

# Keep the stream bounded; a year of corrections at a busy hotline fits comfortably.
MAX_CORRECTIONS = 100_000


def record_correction(redis, keys, sid: str, language: str, text: str, predicted: str, corrected: str,
                      categories: list[str] | None = None) -> str:
    """Append one correction to ``keys.feedback()``; returns the stream entry id.

    Raises ``ValueError`` for an empty transcript or, when ``categories`` is given, a
    corrected category outside it (plus ``out_of_scope``).
    """
    if not clean_text(text or ""):
        raise ValueError("the call has no transcript to learn from")
    if not corrected:
        raise ValueError("corrected category is required")
    if categories is not None and corrected not in set(categories) | {OUT_OF_SCOPE}:
        raise ValueError(f"unknown category {corrected!r}; use one of {', '.join(categories)}")
    entry = {
        "sid": sid,
        "language": base_language(language),
        "text": text,
        "predicted": predicted or "",
        "corrected": corrected,
        "at": f"{time.time():.3f}",
    }
    entry_id = redis.xadd(keys.feedback(), entry, maxlen=MAX_CORRECTIONS, approximate=True)
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


def _str(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def read_corrections(redis, keys, batch: int = 1000) -> list[Example]:
    """Every stored correction as a training example; the latest one wins per (language, text)."""
    latest: dict[tuple[str, str], Example] = {}
    start = "-"
    while True:
        entries = redis.xrange(keys.feedback(), min=start, max="+", count=batch)
        for entry_id, fields in entries:
            f = {_str(k): _str(v) for k, v in fields.items()}
            text, corrected = f.get("text", ""), f.get("corrected", "")
            if not clean_text(text) or not corrected:
                continue
            lang = base_language(f.get("language", "en"))
            latest[(lang, clean_text(text))] = Example(lang, corrected, text, f"feedback:{_str(entry_id)}")
        if len(entries) < batch:
            break
        start = "(" + _str(entries[-1][0])
    return list(latest.values())
