"""Whole-document and whole-collection answers (rag.survey) through `RAG` with stand-in
components: every entry of a list spread over chunks, the documents that discuss a topic, a
summary touching every section, each entry cited to a chunk that holds it, the coverage said,
budgets that stop the reading said too, and no model loaded for any of it."""

import re

import numpy as np
import pytest

from rag import RAG
from rag.present import coverage_line
from rag.survey import document_lines, lists_of
from rag.testing import HashEmbedder, MemoryStore, ScriptedGenerator
from rag.types import Chunk, Progress

pytestmark = pytest.mark.unit

EMBEDDER = HashEmbedder(dim=512)
BAKING = "# Baking\n\n## Oven\n\nPreheat the oven for twenty minutes before baking any bread loaf.\n\n" \
         "Steps of baking a sourdough loaf:\n" + "".join(
             f"- Step {i}: {w} the dough carefully and wait a while before the next step.\n"
             for i, w in enumerate(["mix", "knead", "fold", "shape", "proof", "score", "bake", "cool"], 1)) + \
         "\n## Storage\n\nKeep the bread in a linen bag so the crust stays crisp for two days.\n"
DOCS = {
    "baking.md": BAKING,
    "garden.md": "# Garden\n\nTomatoes need full sun. Sourdough starter is not a garden topic, but compost is.\n"
                 "\n## Pests\n\nAphids gather under the leaves of young plants in spring.\n",
    "travel.md": "# Travel\n\nPack light for trains. A sourdough loaf travels well in a linen bag.\n",
}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("docs")
    for name, text in DOCS.items():
        (root / name).write_text(text)
    store = MemoryStore()
    # small chunks, so the list of steps spreads over several of them, with overlap
    rag = RAG(embedder=EMBEDDER, generator=ScriptedGenerator([]), store=store, corpus=str(root),
              chunk_size=40, chunk_overlap=10)
    assert rag.index().n_chunks >= 6
    return store


def make(store, outputs=(), **settings):
    return RAG(embedder=EMBEDDER, generator=ScriptedGenerator(list(outputs)), store=store, min_score=0.05,
               chunk_size=40, chunk_overlap=10, **settings)


def chunk_of(store, chunk_id):
    return next(c for c in store.open().chunks if c.id == chunk_id)


def test_a_list_spread_over_chunks_is_read_whole_and_each_entry_cited_to_its_chunk(store):
    rag = make(store)
    assert len({c.id for c in store.open().chunks if c.source == "baking.md"}) >= 3
    answer = rag.ask("List all the steps of baking a sourdough loaf")
    assert answer.scope == "list" and not answer.abstained
    words = ["mix", "knead", "fold", "shape", "proof", "score", "bake", "cool"]
    assert [w for w in words if any(f": {w} the dough" in i.text for i in answer.items)] == words
    assert len(answer.items) == 8  # the overlap of two chunks is read once
    for item in answer.items:
        assert item.text in chunk_of(store, item.chunk_id).text
        cite = answer.citations[item.n - 1]
        assert cite.chunk_id == item.chunk_id and f"[{item.n}]" in answer.text
    assert [c.n for c in answer.citations] == list(range(1, len(answer.citations) + 1))
    assert answer.coverage.complete and answer.coverage.chunks_read == answer.coverage.chunks_total
    assert coverage_line(answer.coverage).startswith(f"Searched {answer.coverage.chunks_read} chunks in 3 documents")


def test_which_documents_lists_every_file_with_the_topic_and_only_those(store):
    answer = make(store).ask("Which files mention sourdough loaf?")
    assert answer.scope == "documents"
    assert sorted(i.text for i in answer.items) == ["baking.md", "travel.md"]  # garden.md: not as one phrase
    for item in answer.items:
        assert chunk_of(store, item.chunk_id).source == item.text
    assert answer.coverage.documents_found == 2 and "the topic is in 2" in coverage_line(answer.coverage)
    assert answer.text.startswith("2 of 3 documents discuss sourdough loaf:")


def test_which_documents_with_no_match_is_an_honest_refusal(store):
    answer = make(store).ask("Which files mention quantum chromodynamics?")
    assert answer.abstained and answer.abstain_code == "nothing_found"
    assert "quantum chromodynamics" in answer.abstain_reason and answer.coverage.items == 0


def test_a_summary_touches_every_section_in_order_and_cites_each_sentence(store):
    answer = make(store).ask("Summarise baking.md")
    assert answer.scope == "summary" and answer.coverage.document == "baking.md"
    text = answer.text
    assert text.index("Oven") < text.index("Storage")
    assert all(chunk_of(store, i.chunk_id).source == "baking.md" for i in answer.items)
    for item in answer.items:
        assert item.text in chunk_of(store, item.chunk_id).text.replace("\n", " ")
    assert coverage_line(answer.coverage) == (f"Read {answer.coverage.chunks_total} of "
                                              f"{answer.coverage.chunks_total} chunks of baking.md.")


def test_source_names_the_document_and_whole_off_answers_from_top_k(store):
    answer = make(store).ask("Summarise this", source="garden.md")
    assert answer.scope == "summary" and {i.source for i in answer.items} == {"garden.md"}
    # switched off, the same question takes the ordinary path: top-k passages and the model
    answer = make(store, ["Mix the dough carefully [1]."], whole="off").ask("List all the steps of baking a sourdough loaf")
    assert answer.scope == "" and answer.coverage is None and answer.template != "survey"


def test_a_chunk_budget_stops_the_reading_and_says_so(store):
    answer = make(store, whole_chunks=2).ask("Which files mention sourdough loaf?")
    assert not answer.coverage.complete and answer.coverage.chunks_read == 2
    line = coverage_line(answer.coverage)
    assert "Stopped early (the budget of 2 chunks)" in line and "may be incomplete" in line


def test_progress_lines_reach_a_consumer_of_drafts_only(store):
    stream = make(store).stream("Summarise baking.md", drafts=True)
    pieces = list(stream)
    assert any(isinstance(p, Progress) for p in pieces)
    assert pieces[-1] == stream.answer.text and not isinstance(pieces[-1], Progress)
    plain = list(make(store).stream("Summarise baking.md"))
    assert plain == [stream.answer.text]


def test_lists_of_reads_runs_with_their_lead_and_joins_wrapped_entries():
    chunk = Chunk(id="a#0", source="a", title="a", headings=(), text=(
        "Intro sentence.\nKey features:\n- one\n- two that wraps\nonto this line\n- three\nAfter."))
    (lst,) = lists_of(document_lines([(0, chunk)]))
    assert lst.lead == "Key features:"
    assert [e.text for e in lst.entries] == ["- one", "- two that wraps onto this line", "- three"]


def test_headings_end_a_list_that_the_next_chunk_would_continue():
    a = Chunk(id="a#0", source="a", title="a", headings=("Kinds",), text="Kinds:\n- x\n- y")
    b = Chunk(id="a#1", source="a", title="a", headings=("Why",), text="- p\n- q")
    runs = lists_of(document_lines([(0, a), (1, b)]))
    assert [(r.lead, len(r.entries)) for r in runs] == [("Kinds:", 2), ("Why", 2)]


def test_a_summary_of_each_shipped_document_touches_every_section_and_cites_every_sentence(tmp_path):
    from rag.config import PROJECT_ROOT
    from rag.survey import BULLET, _by_document, _clean, _sections

    store = MemoryStore()
    rag = RAG(embedder=EMBEDDER, generator=ScriptedGenerator([]), store=store,
              corpus=str(PROJECT_ROOT / "corpus"), min_score=0.05)
    rag.index()
    chunks = store.open().chunks
    by_doc = _by_document(chunks, list(range(len(chunks))))
    assert len(by_doc) == 5
    for doc, pairs in by_doc.items():
        answer = rag.ask(f"Summarise {doc}")
        assert answer.scope == "summary" and answer.coverage.complete, doc
        # every sentence shown is copied from the chunk its marker cites
        for item in answer.items:
            chunk = next(c for c in chunks if c.id == item.chunk_id)
            plain = " ".join(_clean(BULLET.sub("", ln)) for ln in chunk.text.split("\n"))
            assert " ".join(item.text.split()) in " ".join(plain.split()), (doc, item.text)
            assert f"[{item.n}]" in answer.text
        lines = [ln for ln in answer.text.split("\n")[1:] if ln.strip()]
        assert all(ln.rstrip().endswith("]") for ln in lines), doc  # no sentence without its marker
        sections = _sections(document_lines(pairs))
        if len(sections) >= 3:  # titled: one sentence per section that has one
            missing = [name for name, _ in sections if name and f"- {name.rstrip(': ')}: " not in answer.text
                       and f"- {name} " not in answer.text]  # (a title ending in "?" takes no colon)
            assert not missing, (doc, missing)


def test_an_empty_index_and_a_document_that_is_not_there(store, tmp_path):
    empty = MemoryStore()
    rag = RAG(embedder=EMBEDDER, generator=ScriptedGenerator([]), store=empty, corpus=str(tmp_path), min_score=0.05)
    rag.index()
    answer = rag.ask("List all the steps of baking")  # the ordinary path: nothing indexed, an honest refusal
    assert answer.abstained and answer.scope == ""
    answer = make(store).ask("Summarise this", source="nope.md")
    assert answer.abstained and answer.abstain_code == "document_not_found" and "nope.md" in answer.abstain_reason


def test_a_time_budget_stops_the_reading_and_says_so(store, monkeypatch):
    from rag import survey as survey_mod

    ticks = iter(range(0, 10_000, 100))  # each look at the clock is 100 s later
    monkeypatch.setattr(survey_mod.time, "perf_counter", lambda: float(next(ticks)))
    answer = make(store, whole_seconds=150).ask("Which files mention sourdough loaf?")
    assert not answer.coverage.complete and answer.coverage.chunks_read < answer.coverage.chunks_total
    assert "Stopped early (the 150 s budget)" in coverage_line(answer.coverage)


def test_a_complete_reading_is_not_called_incomplete_however_long_it_took(store, monkeypatch):
    from rag import survey as survey_mod

    ticks = iter([0.0] * 3 + [1e6] * 1000)  # the clock passes the budget after the reading
    monkeypatch.setattr(survey_mod.time, "perf_counter", lambda: next(ticks))
    answer = make(store, whole_seconds=1).ask("Summarise baking.md")
    assert answer.coverage.chunks_read == answer.coverage.chunks_total or not answer.coverage.complete


def test_an_entry_wrapping_into_the_next_chunk_is_cited_only_with_what_its_chunk_holds():
    a = Chunk(id="a#0", source="a", title="a", headings=(), text="Steps:\n- Knead the dough for ten")
    b = Chunk(id="a#1", source="a", title="a", headings=(), text="minutes until smooth\n- Bake it")
    (lst,) = lists_of(document_lines([(0, a), (1, b)]))
    assert [(e.text, e.row) for e in lst.entries] == [("- Knead the dough for ten", 0), ("- Bake it", 1)]


def test_which_documents_names_any_of_several_code_words_and_reads_a_shouted_question_as_words(store):
    from rag.scope import Scope
    from rag.survey import Budget, survey

    chunks = [Chunk(id=f"{s}#0", source=s, title=s, headings=(), text=t) for s, t in
              [("a.md", "BERT reads text both ways."), ("b.md", "An LSTM keeps state."), ("c.md", "Bread.")]]
    vecs = EMBEDDER.embed([c.text for c in chunks])
    def terms(text):  # a stand-in for BM25's terms
        return re.findall(r"\w+", text.lower())

    def run(topic, question=None):
        gen = survey(Scope("documents", topic=topic), question or f"Which files mention {topic}?", chunks=chunks,
                     vectors=lambda rows: vecs[rows], lexical=lambda text: np.zeros(3), terms=terms, embed=EMBEDDER.embed,
                     budget=Budget())
        try:
            while True:
                next(gen)
        except StopIteration as stop:
            return stop.value

    assert sorted(i.text for i in run("BERT or LSTM").items) == ["a.md", "b.md"]
    assert [i.text for i in run("BREAD", "WHICH FILES MENTION BREAD?").items] == ["c.md"]


def test_the_central_pick_takes_the_sentences_closest_to_the_sections_mean_in_their_order(monkeypatch):
    from rag import survey as survey_mod

    line = Chunk(id="a#0", source="a", title="a", headings=(), text="x")
    ss = [(t, survey_mod._Line(t, line, 0)) for t in (
        "Bread needs flour and water and salt.", "Unrelated words about trains.",
        "Flour and water make bread dough.", "Salt and flour and water again.")]
    monkeypatch.setattr(survey_mod, "SUMMARY_PICK", "first")
    assert [s for s, _ in survey_mod._pick(ss, 1, EMBEDDER.embed)] == [ss[0][0]]
    monkeypatch.setattr(survey_mod, "SUMMARY_PICK", "central")
    picked = [s for s, _ in survey_mod._pick(ss, 2, EMBEDDER.embed)]
    assert "Unrelated words about trains." not in picked and len(picked) == 2
    assert picked == sorted(picked, key=[s for s, _ in ss].index)  # in the section's order


def test_a_plain_text_line_marked_with_a_hash_starts_a_section_whatever_its_end(monkeypatch):
    from rag import survey

    text = ("Ovens vary a lot between brands and models.\n#Why Bake At Home?\n- Fresh bread every day.\n"
            "#Shaping the loaf.\nFold the dough twice before it rests overnight.")
    lines = document_lines([(0, Chunk("b.txt#0", "b.txt", "B", (), text))])
    assert [name for name, _ in survey._sections(lines)] == ["", "Why Bake At Home?", "Shaping the loaf"]
    monkeypatch.setattr(survey, "MARKED_TITLES", False)  # a question mark or a full stop: not a title
    assert [name for name, _ in survey._sections(lines)] == [""]
