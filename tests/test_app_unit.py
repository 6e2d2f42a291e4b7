"""The chat app's logic without a server: messages and errors in the chat, request bounds, the
command line, the model picker (uploads: test_uploads.py; text: test_transcript.py)."""
from pathlib import Path

import pytest

from rag.errors import ConfigError
from rag.transcript import answer_messages
from rag.types import Answer, Chunk, Citation, Hit
from rag.web.chat import respond
from rag.workspace import ChatService


def _last(outputs):
    _, chat, turns = outputs[-1]
    return chat, turns


def test_missing_model_file_is_shown_in_the_chat(tmp_path):
    service = ChatService(model=str(tmp_path / "nope.gguf"), index=str(tmp_path / "index"))
    assert service.status().startswith("⚠️ model file not found")
    chat, turns = _last(list(respond(service, "What is LoRA?", [], [], "few_shot", 4)))
    assert chat[0] == {"role": "user", "content": "What is LoRA?"}
    assert chat[-1]["content"].startswith("⚠️ model file not found")
    assert turns == []


def test_broken_index_is_shown_in_the_chat(tmp_path):
    index = tmp_path / "index"
    (index / "v000001").mkdir(parents=True)
    (index / "v000001" / "manifest.json").write_text("{not json")
    (index / "CURRENT").write_text("v000001")
    service = ChatService(index=str(index))
    assert "⚠️" in service.status() and "rebuild" in service.status()
    chat, _ = _last(list(respond(service, "What is LoRA?", [], [], "few_shot", 4)))
    assert chat[-1]["content"].startswith("⚠️") and "rag index --rebuild" in chat[-1]["content"]
    assert all(m["content"] for m in chat)  # no empty bubble left behind


def test_empty_question_gets_a_message_not_a_bubble(tmp_path):
    service = ChatService(index=str(tmp_path / "index"))
    chat, _ = _last(list(respond(service, "   ", [], [], "few_shot", 4)))
    assert chat == [{"role": "assistant", "content": "⚠️ the question is empty"}]


# ---------------------------------------------------------------- text is shown, never rendered

BEACON = '<img src="http://127.0.0.1:9/beacon.png?leak=x">'


def test_html_document_text_that_shows_a_tag_keeps_it_as_text(tmp_path):
    from rag import ingest

    page = tmp_path / "tags.html"
    page.write_text("<html><body><h1>Tags</h1><p>Type &lt;script&gt;alert(1)&lt;/script&gt; or "
                    "&lt;img src=\"http://127.0.0.1:9/x.png\"&gt; to test.</p></body></html>")
    text = ingest.load(page).sections[0].text
    assert '<img src="http://127.0.0.1:9/x.png">' in text  # the document shows this text
    chunk = Chunk(id="tags.html#0", source="tags.html", title="Tags", headings=("Tags",), text=text)
    cite = Citation(n=1, source="tags.html", chunk_id="tags.html#0", score=0.5, snippet="", heading="Tags")
    shown = answer_messages(Answer(question="q", text="See [1].", citations=[cite],
                                   hits=[Hit(chunk, 0.5)]))[-1]["content"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in shown and "&lt;img src=" in shown


def test_streamed_answer_and_question_are_escaped(tmp_path):
    from rag.web.chat import respond

    class Stream:
        def __init__(self):
            self.answer = Answer(question="q <b>", text=f"It says {BEACON}.")

        def __iter__(self):
            yield "It says <img "
            yield 'src="http://127.0.0.1:9/beacon.png?leak=x">.'

    class FakeRag:
        def stream(self, question, **kw):
            return Stream()

    service = ChatService(rag=FakeRag())
    outputs = list(respond(service, "q <b>", [], [], "few_shot", 4))
    for _, chat, _ in outputs:
        assert all("<img" not in m["content"] and "<b>" not in m["content"] for m in chat)
    assert outputs[0][1][0]["content"] == "q &lt;b&gt;"
    assert outputs[2][1][-1]["content"] == "It says &lt;img src=\"http://127.0.0.1:9/beacon.png?leak=x\"&gt;."


# ---------------------------------------------------------------- request bounds

@pytest.mark.parametrize("args, message", [
    (("q?", "few_shot", -5, None), "top_k must be a whole number from 1 to 12, not -5"),
    (("q?", "few_shot", 10**9, None), "top_k must be a whole number from 1 to 12"),
    (("q?", "few_shot", 0, None), "from 1 to 12, not 0"),
    (("q?", "few_shot", 2.5, None), "not 2.5"),
    (("q?", "few_shot", True, None), "not True"),
    (("q?", "few_shot", "4", None), "not 4"),
    (("q?", "poetry", 4, None), "unknown template 'poetry'"),
    (("q?", None, 4, None), "unknown template"),
    (("q?", "few_shot", 4, "x"), "history must be a list"),
    (("q?", "few_shot", 4, [["a"]]), "history turn 1 is not a [question, answer] pair"),
    (("q?", "few_shot", 4, [["a", 3]]), "history turn 1 is not"),
    (("q?", "few_shot", 4, [["a", "b"]] * 21), "history has 21 turns; the limit is 20"),
    (("q?", "few_shot", 4, [["a" * 5000, "b"]]), "history turn 1: the question is 5000 characters"),
    (("q?", "few_shot", 4, [["a", "b" * 9000]]), "history turn 1: the answer is 9000 characters"),
    ((["q"], "few_shot", 4, None), "the question must be text"),
    (("q" * 4001, "few_shot", 4, None), "the question is 4001 characters long"),
    (("  ", "few_shot", 4, None), "the question is empty"),
])
def test_request_arguments_are_held_to_the_page_bounds(args, message):
    from rag.workspace import check_request
    from rag.errors import QueryError

    with pytest.raises(QueryError) as e:
        check_request(*args)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_good_request_arguments_pass():
    from rag.workspace import check_request

    q, t, k, turns = check_request(" What is LoRA? ", "cot", 12.0, [("What is PEFT?", "Tuning.")])
    assert (q, t, k) == ("What is LoRA?", "cot", 12) and turns[0].question == "What is PEFT?"
    assert check_request("q?", "few_shot", None, None)[2:] == (None, [])


def test_chat_refuses_bounds_a_crafted_request_breaks(tmp_path):
    from rag.web.chat import respond

    class NoRag:
        def stream(self, *a, **kw):
            raise AssertionError("must not be asked")

    chat, _ = _last(list(respond(ChatService(rag=NoRag()), "q?", [], [], "few_shot", 10**9)))
    assert chat[-1]["content"] == "⚠️ top_k must be a whole number from 1 to 12, not 1000000000"


def test_progress_tracker_stops_an_embedding_pass_once_cancelled():
    import threading

    import gradio as gr

    from rag.uploads import UploadCancelled
    from rag.web.ui import _stop_on_cancel

    progress = gr.Progress()
    cancel = threading.Event()
    _stop_on_cancel(progress, cancel)
    progress.update(1)  # no event context: nothing to report, nothing raised
    assert list(iter(progress.tqdm([1, 2]))) == [1, 2]
    cancel.set()
    with pytest.raises(UploadCancelled):
        progress.update(1)
    with pytest.raises(UploadCancelled):
        next(progress)


def test_bad_auth_arguments_exit_1_with_one_line(tmp_path, capsys):
    from rag.web import launch as app

    for argv in (["--auth", "nocolon"], ["--auth-file", str(tmp_path / "missing")],
                 ["--auth", ":x"], ["--max-files", "-1"], ["--top-k", "13"], ["--concurrency", "0"]):
        assert app.main(argv) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, err


def test_hash_password_prints_a_line_the_auth_file_accepts(tmp_path):
    import subprocess
    import sys

    from rag.accounts import load_accounts

    ROOT_DIR = Path(__file__).resolve().parent.parent

    out = subprocess.run([sys.executable, str(ROOT_DIR / "app.py"), "--hash-password", "bob"],
                         input="s3cret\n", capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    line = out.stdout.strip()
    assert line.startswith("bob:scrypt$") and "s3cret" not in line
    (tmp_path / "users").write_text(line + "\n")
    assert load_accounts(None, str(tmp_path / "users")).check("bob", "s3cret")
    empty = subprocess.run([sys.executable, str(ROOT_DIR / "app.py"), "--hash-password"],
                           input="\n", capture_output=True, text=True, timeout=60)
    assert empty.returncode == 1 and empty.stderr == "error: the password is empty\n"


def test_listening_beyond_this_machine_without_sign_in_warns(capsys, monkeypatch):
    from rag.web import launch as app

    class Stop(Exception):
        pass

    def stop(*a, **kw):
        raise Stop()

    monkeypatch.setattr(app, "ChatService", stop)  # the warning comes before the models load
    monkeypatch.setattr(app, "_can_listen", lambda host, port: True)
    with pytest.raises(Stop):
        app.main(["--host", "0.0.0.0", "--port", "7999"])
    err = capsys.readouterr().err
    assert "warning: listening on 0.0.0.0:7999 without sign-in" in err and err.count("\n") == 1
    for argv in (["--host", "127.0.0.1"], ["--host", "0.0.0.0", "--auth", "a:b"]):
        with pytest.raises(Stop):
            app.main(argv)
        assert "warning" not in capsys.readouterr().err


def test_loopback_addresses():
    from rag.serve import is_loopback  # the chat and rag serve warn by the same rule

    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("no.such.host.invalid")


def test_model_picker_offers_local_ggufs_by_name_and_refuses_what_cannot_load(tmp_path):
    from rag.config import default_llm_path

    models = tmp_path / "models"
    models.mkdir()
    (models / "notes.gguf").write_text("not a model")
    (models / "sub").mkdir()
    service = ChatService(index=str(tmp_path / "index"), models_dir=str(models))
    default = default_llm_path()
    # by file name: where the operator keeps models is not the page's business
    # each label says what the model costs here: size and seconds an answer (estimated by size
    # until it has answered here)
    assert service.model_choices() == [
        ("smollm2-135m: SmolLM2-135M-Instruct.Q4_1.gguf (shipped default) · 98 MB · about 6 s an answer (estimate) · quotes",
         "SmolLM2-135M-Instruct.Q4_1.gguf"), ("notes.gguf · 0 MB · about 3 s an answer (estimate) · quotes", "notes.gguf")]
    assert service.model_note() == ("98 MB, about 0.1B parameters; about 6 s an answer \\(estimated from its "
                                    "size\\: it has not answered here yet\\). Good for\\: quick\\: answers with "
                                    "the sentence of your documents that says it, quoted and cited.")
    assert service.model_name() == "SmolLM2-135M-Instruct.Q4_1.gguf"
    # refused by its first bytes, before llama.cpp is asked: the model in use stays; the line
    # names the file, not its folder
    assert service.use_model("notes.gguf") == "⚠️ not a GGUF model file\\: notes.gguf"  # (Markdown)
    for name in (str(models / "notes.gguf"), default, "gone.gguf", "smollm2-0.5b", None):
        assert service.use_model(name).startswith("⚠️ no model named")  # only what the picker lists
    assert service.rag.model_path == default and service.rag.settings.model == ""
    assert str(tmp_path) not in service.status() and str(models) not in " ".join(map(str, service.model_choices()))
    served = ChatService(index=str(tmp_path / "index"), llm_url="http://127.0.0.1:9/v1")
    assert served.model_choices() == []  # answers come from a server: no picker
    assert served.use_model("SmolLM2-135M-Instruct.Q4_1.gguf").startswith("⚠️ answers come from the LLM server")


def test_only_an_operator_switches_the_model_or_empties_the_operators_collections(tmp_path, corpus_copy,
                                                                                   fake_embedder):
    """With sign-in, the users named by --admins operate the app; the others ask, upload and
    keep collections of their own."""
    service = ChatService(index=str(tmp_path / "index"), corpus=str(corpus_copy),
                          collections=str(tmp_path / "collections"), operators=frozenset({"alice"}))
    service.rag._embedder = fake_embedder
    service.rag.index()
    source = service.documents(None, user="bob")[0][0]
    assert service.use_model("SmolLM2-135M-Instruct.Q4_1.gguf", user="bob") == \
        "⚠️ only the operator of this app can switch the model"
    with pytest.raises(ConfigError) as e:
        service.remove_document(None, source, user="bob")
    assert str(e.value) == "only the operator of this app can remove documents from collection 'default'"
    assert (corpus_copy / source).is_file()
    # a collection made with the CLI (nobody owns it) is the operator's too
    service.collections.create("manuals")
    with pytest.raises(ConfigError, match="only the operator of this app can delete collection 'manuals'"):
        service.delete_collection("manuals", user="bob")
    # bob's own collection is his to empty and delete
    service.create_collection("bobs", user="bob")
    service.delete_collection("bobs", user="bob")
    assert "removed from the index" in service.remove_document(None, source, user="alice")
    service.delete_collection("manuals", user="alice")
    assert service.is_operator("alice") and not service.is_operator("bob")
    # with sign-in, a handler that forgot to pass the user is nobody: not the operator
    assert not service.is_operator(None)
    assert service.use_model("SmolLM2-135M-Instruct.Q4_1.gguf") == "⚠️ only the operator of this app can switch the model"
    with pytest.raises(ConfigError, match="only the operator"):
        service.remove_document(None, source)
    # without sign-in (no operators named) the one local user is the operator, user or not
    service.operators = None
    assert service.is_operator(None) and service.is_operator("bob")


# ---------------------------------------------------------------- whole-document questions

@pytest.fixture
def surveyed(tmp_path):
    from survey_docs import survey_rag

    return ChatService(rag=survey_rag(tmp_path / "docs", collections=str(tmp_path / "collections")))


def test_a_survey_shows_its_progress_in_place_then_the_answer_with_its_coverage(surveyed):
    lives, outputs = [], []
    for out in respond(surveyed, "Summarise this", [], [], "auto", 4, document="owls.md"):
        outputs.append(out)
        lives.append(out[1][-1]["content"])  # (the chat's list is updated in place: read it now)
    # each progress line replaces the one before: one line at a time, never the answer
    progress = [x for x in lives[1:] if x.startswith('<span class="draft-label">')]
    assert progress[0] == '<span class="draft-label">Scored 2 chunks in 1 document …</span>'
    assert all(x.count("draft-label") == 1 and x.endswith("…</span>") for x in progress)
    chat, turns = _last(outputs)
    assert chat[1]["content"].startswith("Summary of owls.md")
    assert chat[1]["content"].endswith('\n<small class="coverage">Read 2 of 2 chunks of owls.md.</small>')
    assert turns[0][1].startswith("Summary of owls.md") and "coverage" not in turns[0][1]


def test_a_document_no_longer_indexed_is_one_line_in_the_chat(surveyed):
    chat, _ = _last(list(respond(surveyed, "Summarise this", [], [], "auto", 4, document="gone.md")))
    assert chat[-1]["content"].startswith("⚠️ document: no document of this collection has the path 'gone.md'")


def test_stopping_the_exchange_stops_the_survey_at_once(surveyed):
    """The page's Stop cancels the event, and Gradio closes its generator: the answer's stream
    (the survey, or the model's generation) is closed with it, not left to the collector."""
    rag = surveyed.get()
    streams = []
    real_stream = rag.stream

    def stream(*a, **kw):
        streams.append(real_stream(*a, **kw))
        return streams[-1]

    rag.stream = stream
    exchange = respond(surveyed, "Which files mention owls?", [], [], "auto", 4)
    for _, chat, _ in exchange:
        if chat[-1]["content"].startswith('<span class="draft-label">Scored'):
            break
    stages = streams[0]._items
    assert stages.gi_frame is not None  # the survey is under way
    exchange.close()
    assert stages.gi_frame is None and streams[0].answer is None  # closed before it answered


def test_the_chat_api_takes_a_document_and_returns_the_coverage(surveyed):
    from rag.web.chat import api_ask

    d = api_ask(surveyed, "Summarise this", "auto", None, None, document="owls.md")
    assert d["scope"] == "summary" and d["coverage"]["document"] == "owls.md" and d["coverage"]["complete"]
    assert d["items"] and d["items"][0]["source"] == "owls.md" and d["citations"][0]["text"]
    d = api_ask(surveyed, "Which files mention owls?", "auto", None, None)
    assert d["coverage"]["documents_found"] == 2 and d["coverage"]["document"] == ""
    with pytest.raises(Exception, match="did you mean owls.md"):
        api_ask(surveyed, "Summarise this", "auto", None, None, document="owsl.md")
