"""The source viewer: the supporting sentence found and marked, the passage's neighbours without
the overlap, the page of a PDF, unsupported answer sentences marked, everything escaped."""
from rag.transcript import answer_html, answer_messages, view_html
from rag.testing import MemoryVersion
from rag.types import Answer, Chunk, Citation, Hit, SentenceSupport
from rag.viewer import claims_for, source_view, supporting_span

PASSAGE = ("Fine-tuning a whole model is costly. LoRA freezes the pretrained weights and trains two small "
           "low-rank matrices per layer. It was introduced by Hu et al. in 2021.")


def test_the_supporting_sentence_is_the_one_sharing_most_of_the_claim():
    start, end = supporting_span("LoRA trains small low-rank matrices [1].", PASSAGE)
    assert PASSAGE[start:end] == ("LoRA freezes the pretrained weights and trains two small low-rank "
                                  "matrices per layer.")
    start, end = supporting_span("It was introduced in 2021 [2].", PASSAGE)
    assert PASSAGE[start:end].startswith("It was introduced by Hu et al.")  # "et al." ends no sentence
    assert supporting_span("Bananas are yellow.", PASSAGE) is None  # nothing marked rather than a guess
    assert supporting_span("Bananas cost money.", PASSAGE, minimum=0) is None  # nothing shared at all


def _version(chunks):
    import numpy as np

    return MemoryVersion("v1", {"documents": {}}, chunks, np.zeros((len(chunks), 4), np.float32))


def test_a_view_shows_the_neighbours_without_the_overlap_and_the_page():
    c0 = Chunk("paper.pdf#0", "paper.pdf", "Paper", ("page 2",), "Adapters came first. " + PASSAGE[:36])
    c1 = Chunk("paper.pdf#1", "paper.pdf", "Paper", ("page 3",), PASSAGE)
    c2 = Chunk("paper.pdf#2", "paper.pdf", "Paper", ("page 3",), PASSAGE[-40:] + " Later work quantised it.")
    other = Chunk("notes.md#0", "notes.md", "Notes", (), "Unrelated notes.")
    cite = Citation(n=1, source="paper.pdf", chunk_id="paper.pdf#1", score=0.7, snippet="...", heading="page 3")
    answer = Answer(question="What is LoRA?", text="LoRA trains small low-rank matrices [1].", citations=[cite],
                    hits=[Hit(c1, 0.7)], sentences=[SentenceSupport("LoRA trains small low-rank matrices [1].",
                                                                    1, 0.8, True)])
    view = source_view(answer, cite, _version([other, c0, c1, c2]))
    assert view.page == "page 3"
    assert view.before == "Adapters came first."  # its end, which the passage repeats, left out
    assert view.after == "Later work quantised it."
    assert [view.passage[a:b] for a, b in view.highlights] == [
        "LoRA freezes the pretrained weights and trains two small low-rank matrices per layer."]
    assert source_view(answer, cite, _version([other, c0, c1, c2]), highlight=False).highlights == ()
    # without the index (a saved answer) the passage alone
    alone = source_view(answer, cite)
    assert (alone.before, alone.after, alone.passage) == ("", "", PASSAGE)


def test_claims_are_the_sentences_given_to_the_passage_or_the_whole_answer():
    a = Answer(question="q", text="One [1]. Two [2].",
               sentences=[SentenceSupport("One [1].", 1, 0.9, True), SentenceSupport("Two [2].", 2, 0.9, True)])
    assert claims_for(a, 2) == ["Two [2]."]
    assert claims_for(Answer(question="q", text="All of it."), 1) == ["All of it."]


def test_unsupported_sentences_are_marked_and_everything_is_escaped():
    text = "LoRA trains small matrices [1]. It was made in 1999 by <b>Bob</b>."
    answer = Answer(question="q", text=text, sentences=[
        SentenceSupport("LoRA trains small matrices [1].", 1, 0.8, True),
        SentenceSupport("It was made in 1999 by <b>Bob</b>.", 0, 0.1, False,
                        ("states 1999, which no passage contains",))])
    shown = answer_html(answer)
    # marked as not backed (not as a misspelling), with the reason on hover; the marker of a
    # citation the answer does not have is dropped
    assert shown.startswith('LoRA trains small matrices. <span class="unbacked" '
                            'title="Not backed by your documents: states 1999')
    assert ("&lt;b&gt;Bob&lt;/b&gt;.</span> <small class=\"unbacked-note\">(not backed by your documents)</small>"
            in shown)
    assert "<b>" not in shown
    assert answer_html(Answer(question="q", text="a < b")) == "a &lt; b"


def test_a_passage_with_markup_is_escaped_inside_its_mark():
    chunk = Chunk("x.md#0", "x.md", "X", (), 'Beacons are bolted <img src="http://127.0.0.1:9/x.png"> to masts.')
    cite = Citation(n=1, source="x.md", chunk_id="x.md#0", score=0.5, snippet="...")
    answer = Answer(question="q", text="Beacons are bolted to masts [1].", citations=[cite], hits=[Hit(chunk, 0.5)])
    html = view_html(source_view(answer, cite))
    assert html == '<mark>Beacons are bolted &lt;img src="http://127.0.0.1:9/x.png"&gt; to masts.</mark>'
    [_, _, source] = answer_messages(answer)
    assert source["content"].startswith(html + "\n<small class=\"details\">")
