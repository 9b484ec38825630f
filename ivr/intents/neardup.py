"""Near-duplicate utterances: "my card keeps getting declined" / "um my card keeps getting declined".

Held-out estimates must keep such pairs on one side of a split: scored on a sentence whose
twin it trained on, any model looks good, and the features that memorise wording look
better than those that generalise. ``ivr intents eval`` folds by these groups.
"""

from __future__ import annotations

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from ivr.intents.model import normalize

# Cosine similarity of character 2-4-gram TF-IDF at or above which two utterances count as
# near-duplicates (a filler, an article or a particle apart).
NEAR_DUPLICATE = 0.8
# Rows of the similarity matrix computed at a time (memory: about ROWS x n floats).
_ROWS = 2000


def near_duplicate_groups(texts: list[str], threshold: float = NEAR_DUPLICATE) -> np.ndarray:
    """A group id per text; texts linked by a chain of near-duplicate pairs share one."""
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), dtype=np.float32)
    matrix = vectorizer.fit_transform([normalize(t) for t in texts])
    parent = np.arange(len(texts))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    transposed = matrix.T.tocsc()
    for start in range(0, len(texts), _ROWS):
        block = (matrix[start:start + _ROWS] @ transposed).tocoo()
        rows = block.row + start
        keep = (block.data >= threshold) & (rows < block.col)
        for i, j in zip(rows[keep].tolist(), block.col[keep].tolist()):
            parent[root(i)] = root(j)
    return np.array([root(i) for i in range(len(texts))])
