"""The chat's text (rag.transcript): what documents, models and users write is shown exactly as
written and never rendered; an answer as chat messages, its sources collapsed, its unsupported
sentences marked; model paths cut to file names in what users read."""
import html as html_mod

from rag.transcript import answer_messages, html_text, md_text, public_text
from rag.types import Answer, Chunk, Citation, Hit, SentenceSupport

BEACON = '<img src="http://127.0.0.1:9/beacon.png?leak=x">'


def _answer(**kw):
    chunk = Chunk(id="notes.md#3", source="notes.md", title="Notes", headings=("Models", "LoRA"),
                  text="LoRA adds small low-rank matrices to a frozen model.")
    cite = Citation(n=1, source="notes.md", chunk_id="notes.md#3", score=0.61234,
                    snippet="LoRA adds ...", heading="Models > LoRA")
    return Answer(question="What is LoRA?", text="LoRA trains small matrices [1].",
                  citations=[cite], hits=[Hit(chunk, 0.61234)], **kw)


def test_answer_messages_list_sources_collapsed_with_full_text():
    msgs = answer_messages(_answer(reasoning="Passage [1] defines LoRA."))
    reasoning, text, header, source = msgs
    assert reasoning["metadata"] == {"title": "Reasoning (chain of thought)", "status": "done"}
    assert reasoning["content"] == "Passage [1] defines LoRA."
    # the marker is a numbered chip right after what it backs, naming its source on hover
    assert text == {"role": "assistant", "content": 'LoRA trains small matrices<sup class="cite" '
                    'tabindex="0" role="button" title="Source 1: notes.md › Models &gt; LoRA">1</sup>.'}
    assert "Sources" in header["content"]
    # the source's title: its number as the same chip, the file and heading (escaped), no score
    assert source["metadata"]["title"] == '<sup class="cite source-n">1</sup> notes.md › Models &gt; LoRA'
    assert source["metadata"]["status"] == "done"
    # the passage's sentence that supports the answer's is marked; the score is in a details line
    assert source["content"] == ("<mark>LoRA adds small low-rank matrices to a frozen model.</mark>\n"
                                 '<small class="details">Details: similarity to the question 0.61 · '
                                 "passage 1 of those read</small>")


def test_citations_are_numbered_in_reading_order_and_each_opens_its_own_passage():
    chunks = [Chunk(id=f"n.md#{i}", source="n.md", title="N", headings=(), text=t) for i, t in
              enumerate(["Filler text about nothing.", "Gates keep long memories.", "Attention weighs tokens."])]
    cites = [Citation(n=2, source="n.md", chunk_id="n.md#1", score=0.5, snippet=""),
             Citation(n=3, source="n.md", chunk_id="n.md#2", score=0.4, snippet="", inferred=True)]
    answer = Answer(question="q", text="Gates keep long memories [2]. Attention weighs tokens [9].",
                    citations=cites, hits=[Hit(c, 0.5) for c in chunks])
    _, _, first, second = answer_messages(answer)
    shown = answer_messages(answer)[0]["content"]
    # block 2 is read first: chip 1; the marker naming no source is dropped, not left pointing nowhere
    assert shown == ('Gates keep long memories<sup class="cite" tabindex="0" role="button" '
                     'title="Source 1: n.md">1</sup>. '
                     "Attention weighs tokens.")
    assert first["metadata"]["title"].startswith('<sup class="cite source-n">1</sup> n.md')
    assert "<mark>Gates keep long memories.</mark>" in first["content"]
    assert "passage 2 of those read" in first["content"]
    # the source the checks added (no marker) comes after, says so in words, and is numbered 2
    assert second["metadata"]["title"].startswith('<sup class="cite source-n">2</sup>')
    assert "cited by the checks" in second["content"] and "passage 3 of those read" in second["content"]


def test_a_refusal_gives_a_readers_reason_and_keeps_the_score_in_details():
    low = Answer(question="q", text="Not found in your documents.", abstained=True, abstain_code="low_retrieval_score",
                 abstain_reason="no passage is close to the question (best cosine 0.03 < 0.25)")
    [msg] = answer_messages(low)
    shown, details = msg["content"].split('<small class="details">')
    assert "(no passage is close enough to the question)" in shown and "cosine" not in shown
    assert "low_retrieval_score" in details and "cosine 0.03 &lt; 0.25" in details
    # a reason already in a reader's words is shown as it is, with no details line
    named = Answer(question="q", text="Not found in your documents.", abstained=True, abstain_code="unknown_names",
                   abstain_reason="the documents never mention 'Zorbania'")
    [msg] = answer_messages(named)
    assert "(the documents never mention 'Zorbania')" in msg["content"] and "details" not in msg["content"]


def test_abstention_reads_as_not_found_without_sources():
    msgs = answer_messages(Answer(question="q", text="Not found in your documents.", abstained=True))
    assert len(msgs) == 1
    assert msgs[0]["content"].startswith("Not found in your documents.")
    assert "⚠️" not in msgs[0]["content"]


def test_html_text_leaves_no_element_and_keeps_every_character():
    for text in (BEACON, "<script>alert(1)</script>", "a < b && c > d", "<!-- x -->", "&lt;img&gt;",
                 "plain [1] text\nnext line"):
        out = html_text(text)
        assert "<" not in out and ">" not in out
        assert html_mod.unescape(out) == text  # the browser shows exactly the original


def test_md_text_escapes_markdown_and_html():
    out = md_text("![x](http://h/a.png) **b** <img src=x> [y]: http://h `c` # h")
    for construct in ("![", "](", "**", "<img", "[y]:", "`c`"):
        assert construct not in out
    assert "&lt;img" in out and "\\!\\[x\\]" in out and "\\*\\*b\\*\\*" in out
    assert "\n" not in md_text("two\nlines")


def test_passages_headings_names_and_answers_are_escaped_in_the_chat():
    chunk = Chunk(id="x.md#1", source="<b>x</b>.md", title="X", headings=("<i>Head</i>",),
                  text=f"Mount it with bolts. {BEACON} ![logo](http://127.0.0.1:9/md.png)")
    cite = Citation(n=1, source="<b>x</b>.md", chunk_id="x.md#1", score=0.5, snippet="...",
                    heading="<i>Head</i>")
    answer = Answer(question="q", text=f"Use bolts {BEACON} [1].", citations=[cite], hits=[Hit(chunk, 0.5)],
                    reasoning="<script>alert(1)</script>")
    msgs = answer_messages(answer)
    everything = " ".join(m["content"] + m.get("metadata", {}).get("title", "") for m in msgs)
    assert "<img" not in everything and "<script" not in everything and "<b>" not in everything
    assert "&lt;img src=\"http://127.0.0.1:9/beacon.png?leak=x\"&gt;" in everything
    assert msgs[-1]["metadata"]["title"].endswith(" &lt;b&gt;x&lt;/b&gt;.md › &lt;i&gt;Head&lt;/i&gt;")
    # the app's own formatting stays
    assert "<strong>Sources</strong>" in msgs[2]["content"]
    abstained = answer_messages(Answer(question="q", text="Not found in your documents.", abstained=True,
                                       abstain_reason="<img src=x>"))
    assert "<em>" in abstained[0]["content"] and "&lt;img src=x&gt;" in abstained[0]["content"]


def test_model_paths_are_cut_to_file_names_in_what_users_read():
    assert public_text("model file not found: /srv/models/private/q4.gguf") == "model file not found: q4.gguf"
    assert public_text("cannot load model /home/op/My Models/x.GGUF: bad", folders=["/home/op/My Models"]) == \
        "cannot load model x.GGUF: bad"
    assert public_text("no index at /srv/idx") == "no index at /srv/idx"  # only model paths


def test_unverified_sentences_are_marked_in_the_answer_with_why():
    answer = Answer(question="q", text="LoRA trains adapters [1]. It listens on port 80 [1].",
                    sentences=[SentenceSupport("LoRA trains adapters [1].", 1, 0.9, True),
                               SentenceSupport("It listens on port 80 [1].", 1, 0.6, False,
                                               ("states 80, which no passage contains",))])
    shown = answer_messages(answer)[0]["content"]
    assert shown.count("(not backed by your documents)") == 1
    assert ('title="Not backed by your documents: states 80, which no passage contains">'
            "It listens on port 80.</span>") in shown
    # (no citation came with these answers: a marker pointing nowhere is left out)
    plain = answer_messages(Answer(question="q", text="LoRA trains adapters [1]."))[0]["content"]
    assert plain == "LoRA trains adapters."


def test_a_whole_document_answer_says_under_it_what_it_read():
    from rag.types import Coverage

    cov = Coverage(scope="summary", document="notes.md", chunks_read=3, chunks_total=3)
    a = _answer(scope="summary", coverage=cov, template="survey")
    text, header, source = answer_messages(a)
    assert text["content"] == ('LoRA trains small matrices<sup class="cite" tabindex="0" role="button" '
                               'title="Source 1: notes.md › Models '
                               '&gt; LoRA">1</sup>.\n<small class="coverage">Read 3 of 3 chunks of notes.md.</small>')
    assert "similarity" not in source["content"]  # copied, not ranked: no score
    # abstaining, it still says what it searched, so "not found" reads as "not in all of these"
    cov = Coverage(scope="documents", chunks_read=9, chunks_total=9, documents_read=2)
    (msg,) = answer_messages(Answer(question="q", text="Not found in your documents.", abstained=True,
                                    scope="documents", coverage=cov))
    assert msg["content"].endswith('<small class="coverage">Searched 9 chunks in 2 documents; the topic is in 0.'
                                   '</small>')
    # an ordinary answer has no such line
    assert "coverage" not in answer_messages(_answer())[0]["content"]


def test_a_refusal_saved_without_its_code_still_keeps_scores_out_of_the_reason():
    old = Answer(question="q", text="Not found in your documents.", abstained=True,
                 abstain_reason="answer support 0.12 is below 0.30")
    [msg] = answer_messages(old)
    shown, details = msg["content"].split('<small class="details">')
    assert "(the passages found do not answer it)" in shown and "0.12" not in shown
    assert "Details: answer support 0.12 is below 0.30" in details
