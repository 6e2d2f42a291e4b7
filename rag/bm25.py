"""BM25 over the chunks' text: the lexical half of hybrid retrieval, and the index a vector store
saves beside each version so that a fresh process reads it instead of rebuilding it.

Built from the texts, or loaded (memory-mapped) from what `save` wrote: rebuilding took 20 s at
100k chunks and 129 s at 1M on every start.
"""
from __future__ import annotations

import difflib
import logging
import re
import unicodedata
from pathlib import Path

import numpy as np

# a token bm25s's tokenizer never yields (it keeps runs of two or more word characters)
_NO_TERM = "\x00"

# A word is known when the index holds it with an "s" more or less (`BM25Index.unknown`): the
# stemmer leaves acronyms' plurals alone ("MLPs" stays "mlps"), so a question about "MLP" read
# as naming something the notes never mention. False: the word's own forms only.
PLURAL_FORMS = True


class BM25:
    """bm25s over the chunks' embedded text (headings included), English stopwords, stemmed."""

    def __init__(self, texts: list[str] | None = None, *, saved: str | Path | None = None) -> None:
        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs every index build at DEBUG
        self._stem = _stemmer()
        self._bm25s = bm25s
        if saved is not None:
            self.model = bm25s.BM25.load(str(saved), mmap=True, show_progress=False)
        else:
            self.model = bm25s.BM25()
            tokens = bm25s.tokenize(texts or [], stopwords="en", stemmer=self._stem, show_progress=False)
            if texts and not tokens.vocab:
                # no chunk has a word to index (a collection of emoji or signs only), and bm25s
                # cannot build an empty vocabulary: one token that no query yields stands in
                tokens = [[_NO_TERM]] + [[] for _ in texts[1:]]
            self.model.index(tokens, show_progress=False)
        self._folded: set[str] | None = None

    def save(self, folder: str | Path) -> None:
        self.model.save(str(folder), show_progress=False)

    def terms(self, text: str) -> list[str]:
        return self._bm25s.tokenize([text], stopwords="en", stemmer=self._stem, show_progress=False,
                                    return_ids=False)[0]

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every chunk for `query`; all 0 when it has no terms (bm25s raises
        IndexError on an empty term list)."""
        terms = self.terms(query)
        if not terms:
            return np.zeros(int(self.model.scores["num_docs"]), dtype=np.float32)
        return np.asarray(self.model.get_scores(terms), dtype=np.float32)

    def unknown(self, words: list[str], *, fuzzy: bool = True) -> list[str]:
        """The words with a term that occurs nowhere in the indexed chunks, even misspelt a little.

        Accents are ignored ("Herve" finds "Hervé") and, `fuzzy`, a term of five letters or more
        matches a vocabulary term that differs by a letter or two ("Scotish", "Hatmanis"): people
        misspell the names they ask about, and a typo must not read as "not in your documents".
        The stem is compared too, because the index holds stems: "charecterized" stems to
        "charecter", a letter from "character", but is four letters longer than that entry.
        """
        if self._folded is None:
            self._folded = {_fold(term) for term in self.model.vocab_dict}
        from bm25s.stopwords import STOPWORDS_EN

        def known(token: str) -> bool:
            # the stemmer treats "herve" and "hervé" differently, so both forms are looked up
            forms = {_fold(token)} | {_fold(t) for t in self.terms(token)}
            if PLURAL_FORMS:  # the stemmer leaves an acronym's plural alone: "MLP" is in notes that say "MLPs"
                forms |= {f + "s" for f in forms} | {f[:-1] for f in forms if len(f) > 3 and f.endswith("s")}
            if forms & self._folded:
                return True
            return fuzzy and len(token) >= 5 and any(close(form) for form in forms)

        def close(form: str) -> bool:
            return len(form) >= 5 and bool(difflib.get_close_matches(
                form, [v for v in self._folded if abs(len(v) - len(form)) <= 2 and v[:1] == form[:1]],
                n=1, cutoff=0.85))

        return [w for w in words if any(not known(t) for t in re.findall(r"\w\w+", w.lower())
                                        if t not in STOPWORDS_EN)]


def _stemmer():
    try:
        import Stemmer

        return Stemmer.Stemmer("english").stemWords
    except ImportError:  # stemming helps recall a little; BM25 works without it
        return None


def bm25_params() -> dict:
    """What a saved BM25 depends on besides the chunk texts; one saved under other parameters
    (no stemmer then, another bm25s) is rebuilt rather than read."""
    import importlib.metadata

    return {"format": 1, "stopwords": "en", "stemmer": "english" if _stemmer() else "",
            "bm25s": importlib.metadata.version("bm25s"), "text": "embed_text"}


def _fold(term: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", term) if not unicodedata.combining(c))
