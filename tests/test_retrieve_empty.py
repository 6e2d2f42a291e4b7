"""Questions with no search terms ("???", "and the", emoji only): bm25s raises IndexError on an
empty term list, which reached the chat as "unexpected IndexError", `rag ask` the same and
`rag serve` as a 500. Retrieval now finds nothing for them, in every mode, and the pipeline
abstains with its usual answer before the model runs."""
import subprocess
import sys

import numpy as np
import pytest

from rag import RAG
from rag.bm25 import BM25
from rag.prompts import ABSTAIN_TEXT
from rag.retrieve import MODES, Retriever, has_terms
from rag.testing import HashEmbedder, MemoryStore, ScriptedGenerator

EMBEDDER = HashEmbedder(dim=512)
DOCS = {
    "tyres.md": "# Tyres\n\nRoad tyres should be pumped to between 6 and 8 bar. Check the pressure once a week.\n",
    "chain.md": "# Chain\n\nClean the chain every 300 kilometres and oil it lightly afterwards.\n",
    "bread.md": "# Bread\n\nBake the sourdough loaf at 230 degrees for 40 minutes.\n",
}
NO_TERMS = ["???", "and the", "🙂🙂", "", "\u200b", " ... !!! "]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("docs")
    for name, text in DOCS.items():
        (root / name).write_text(text)
    store = MemoryStore()
    rag = RAG(embedder=EMBEDDER, generator=ScriptedGenerator([]), store=store, corpus=str(root))
    assert rag.index().n_chunks == 3
    return store


def test_bm25s_itself_fails_on_an_empty_term_list():
    """Why the guard exists: the library, not this code, raises."""
    bm25 = BM25(["Road tyres need air.", "Chains need oil."])
    with pytest.raises(IndexError):
        bm25.model.get_scores([])


@pytest.mark.parametrize("query", NO_TERMS)
def test_a_query_without_search_terms_scores_zero_instead_of_raising(query):
    bm25 = BM25(["Road tyres need air.", "Chains need oil."])
    assert bm25.terms(query) == [] and not has_terms(query)
    scores = bm25.scores(query)
    assert scores.shape == (2,) and not scores.any()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("query", NO_TERMS)
def test_a_query_without_search_terms_retrieves_nothing(store, mode, query):
    retriever = Retriever(store.open(), EMBEDDER, mode=mode)
    assert retriever.search(query) == []
    assert retriever.search(query, source="tyres") == []


@pytest.mark.parametrize("mode", MODES)
def test_a_query_with_terms_still_retrieves(store, mode):
    retriever = Retriever(store.open(), EMBEDDER, mode=mode)
    assert has_terms("How often should I check the tyres?")
    assert retriever.search("How often should I check the tyres?", k=1)[0].chunk.source == "tyres.md"


@pytest.mark.parametrize("query", ["猫", "犬は?", "à la"])
def test_a_word_of_a_script_without_spaces_or_a_short_accented_one_counts(query):
    # bm25s keeps only tokens of two or more characters; a one-character CJK word is still a
    # question the dense side can answer, so it must not be turned away before retrieval
    assert has_terms(query)


def test_hybrid_mixing_with_no_bm25_match_ranks_by_the_dense_score(store):
    """A term that no chunk holds: every BM25 score is 0, its z-score 0 (no division by a zero
    spread), and the dense cosine alone orders the mix. The hashed embedding reads the stopwords
    BM25 leaves out, so the cosines differ."""
    retriever = Retriever(store.open(), EMBEDDER, mode="hybrid")
    assert len(retriever.bm25.terms("the and at xyzzy")) == 1  # "xyzzy", stemmed
    hits = retriever.search("the and at xyzzy", k=3)
    assert len(hits) == 3 and all(h.lexical == 0.0 for h in hits)
    assert all(np.isfinite(h.score) for h in hits)
    dense = [h.dense for h in hits]
    assert dense == sorted(dense, reverse=True) and dense[0] > dense[-1]


def test_documents_without_any_search_term_still_index_and_answer(tmp_path):
    """bm25s cannot build an empty vocabulary: a collection of emoji-only files once failed the
    BM25 build, here and where a FAISS version saves its BM25."""
    bm25 = BM25(["🙂🙂", "???"])
    assert not bm25.scores("tyres").any() and not bm25.scores("🙂").any()
    bm25.save(tmp_path / "bm25")
    assert not BM25(saved=tmp_path / "bm25").scores("tyres").any()
    corpus = tmp_path / "docs"
    corpus.mkdir()
    (corpus / "smile.txt").write_text("🙂 🙂 🙂\n\n!!! ???\n")
    rag = RAG(embedder=EMBEDDER, generator=ScriptedGenerator([]), index=str(tmp_path / "index"), corpus=str(corpus))
    assert rag.index().n_chunks == 1  # the FAISS store, with its saved BM25
    answer = rag.ask("🙂")
    assert answer.abstained and answer.text == ABSTAIN_TEXT


@pytest.mark.parametrize("question", ["???", "and the", "🙂🙂", "\u200b"])
def test_the_pipeline_abstains_before_the_model_runs(store, question):
    gen = ScriptedGenerator([])  # raises if it is asked to generate
    rag = RAG(embedder=EMBEDDER, generator=gen, store=store, min_score=0.05)
    answer = rag.ask(question)
    assert answer.abstained and answer.text == ABSTAIN_TEXT and answer.hits == []
    assert answer.abstain_code == "low_retrieval_score"
    assert answer.abstain_reason == "the question has no words to search for"
    assert gen.calls == []
    assert rag.search(question) == []
    assert "".join(p for p in rag.stream(question)) == ABSTAIN_TEXT


def test_a_follow_up_of_stopwords_searches_with_its_history(store):
    """The words come from the conversation then ("and the" after a question about tyres)."""
    from rag.types import Turn

    gen = ScriptedGenerator(["Check the pressure once a week [1]."])
    rag = RAG(embedder=EMBEDDER, generator=gen, store=store, min_score=0.05, guards="capable")
    answer = rag.ask("and the", history=[Turn("How often should I check the tyre pressure?", "Weekly [1].")])
    assert answer.abstain_reason != "the question has no words to search for"
    assert answer.hits and answer.hits[0].chunk.source == "tyres.md"


@pytest.mark.e2e
def test_rag_ask_abstains_on_the_shipped_models(real_rag):
    """The shipped path: MiniLM, FAISS and its saved BM25; the question never reaches the model."""
    for question in ("???", "and the", "🙂🙂"):
        answer = real_rag.ask(question)
        assert answer.abstained and answer.text == ABSTAIN_TEXT
        assert answer.abstain_reason == "the question has no words to search for"
    out = subprocess.run([sys.executable, "-m", "rag", "ask", "???", "--index", str(real_rag.settings.index)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[:2] == [ABSTAIN_TEXT, "(the question has no words to search for)"]
