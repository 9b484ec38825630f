"""English word -> affect: whether a word says the caller is upset (or pleased).

At a hotline a bare reaction is a complaint: "pathetic", "this is ridiculous", "shame on
you". Held out of the training lines, though, "pathetic" shares no letters or words with
"terrible" or "awful", and the model sends it out of scope. VADER's lexicon (Hutto and
Gilbert 2014; about 7,500 English words, slang and emoticons, each rated from -4 to +4 by
ten people) gives every rated word a valence, which the model turns into a few coarse
tokens (negative, strongly negative, positive) in one more TF-IDF block beside WordNet's
concepts; the model keeps the two only when held-out folds of its training data say they
help.

The lexicon comes from the ``vaderSentiment`` package (3.3.2, MIT licence: its
``LICENSE.txt``); only its ``vader_lexicon.txt`` is read, not its sentence scorer.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
from pathlib import Path

NEGATIVE = -1.0   # valence at or below: "negative" (bad, wrong, annoyed, no)
STRONG = -2.0     # at or below: also "strongly negative" (awful, pathetic, furious)
POSITIVE = 1.0    # at or above: "positive" (thanks, great, nice)


class AffectLexiconMissing(RuntimeError):
    pass


def package_version() -> str:
    """The ``vaderSentiment`` package's version (its lexicon is part of what a model was built from)."""
    try:
        return importlib.metadata.version("vaderSentiment")
    except importlib.metadata.PackageNotFoundError:
        return "missing"


def lexicon_path() -> Path:
    spec = importlib.util.find_spec("vaderSentiment")
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = Path(folder) / "vader_lexicon.txt"
        if path.is_file():
            return path
    raise AffectLexiconMissing("VADER's lexicon not found (the 'vaderSentiment' package, 3.3.2): run "
                               "`make setup` to install the project's dependencies")


@functools.cache
def lexicon() -> dict[str, float]:
    """Word -> mean valence, for the lexicon's entries that are plain lower-case words."""
    words: dict[str, float] = {}
    with open(lexicon_path(), encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 2 or not fields[0].isalpha():
                continue  # emoticons and abbreviations with punctuation: transcripts have none
            try:
                words[fields[0].lower()] = float(fields[1])
            except ValueError:
                raise AffectLexiconMissing(f"{lexicon_path()}:{number}: no valence in {line.strip()!r}") from None
    return words


def tokens(word: str) -> tuple[str, ...]:
    """The affect tokens of one word: () for words the lexicon does not rate."""
    valence = lexicon().get(word)
    if valence is None:
        return ()
    if valence <= STRONG:
        return ("A:neg", "A:neg2")
    if valence <= NEGATIVE:
        return ("A:neg",)
    return ("A:pos",) if valence >= POSITIVE else ()
