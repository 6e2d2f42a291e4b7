"""The chat app's logic without a server: messages, errors in the chat, uploads."""
import json
from pathlib import Path

import pytest

from rag.transcript import answer_messages
from rag.web.chat import respond
from rag.workspace import ChatService
from rag.errors import ConfigError, StoreError
from rag.types import Answer, Chunk, Citation, Hit


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


@pytest.fixture
def library(tmp_path, corpus_copy, fake_embedder):
    service = ChatService(index=str(tmp_path / "index"), corpus=str(corpus_copy))
    service.rag._embedder = fake_embedder  # unit speed; the e2e tests upload with the real one
    service.rag.index()
    return service


def test_add_files_indexes_good_files_and_refuses_bad_ones(library, tmp_path):
    corpus = library.corpus
    before = {p.name: p.read_bytes() for p in corpus.iterdir()}
    up = tmp_path / "up"
    up.mkdir()
    (up / "new.md").write_text("# New\n\nQuasar gardening needs patience.\n")
    (up / "bad.pdf").write_bytes(b"%PDF-1.7 truncated")
    (up / "empty.txt").write_text("   \n")
    (up / "x.docx").write_bytes(b"PK\x03\x04")  # a zip that is not one
    (up / "y.doc").write_bytes(b"\xd0\xcf\x11\xe0 legacy Word")
    (up / "deep-learning-overview.md").write_text("# Other\n\nA different file, same name.\n")
    report = library.add_files(sorted(up.iterdir()))
    assert sorted(report.added) == ["deep-learning-overview-2.md", "new.md"]
    reasons = dict(report.rejected)
    assert set(reasons) == {"bad.pdf", "empty.txt", "x.docx", "y.doc"}
    assert "no text" in reasons["empty.txt"] and "broken Word document" in reasons["x.docx"]
    assert "unsupported file type '.doc'" in reasons["y.doc"]
    assert all("\n" not in r for r in reasons.values())
    assert all((corpus / n).read_bytes() == data for n, data in before.items())
    manifest = json.loads((library.rag.store.path / "manifest.json").read_text())
    assert {"new.md", "deep-learning-overview-2.md"} | set(before) == set(manifest["documents"])
    assert library.rag.search("quasar gardening")[0].chunk.source == "new.md"
    assert "is indexed and searchable" in report.markdown()


def test_failed_indexing_removes_the_copies_and_keeps_the_index(library, tmp_path, monkeypatch):
    live = library.rag.store.path
    doc = tmp_path / "late.txt"
    doc.write_text("Late arrivals are welcome.\n")

    def locked(*a, **kw):
        raise StoreError("index is locked by another build")

    monkeypatch.setattr(library.rag, "index", locked)
    report = library.add_files([doc])
    assert report.added == [] and "indexing failed: index is locked" in report.rejected[0][1]
    assert not (library.corpus / "late.txt").exists()
    assert library.rag.store.path == live


def test_uploads_outside_the_upload_folder_are_refused_and_logged(library, tmp_path, caplog):
    uploads = tmp_path / "gradio-uploads"
    (uploads / "abc123").mkdir(parents=True)
    good = uploads / "abc123" / "kept.md"
    good.write_text("# Kept\n\nOrbital pruning shears need oiling.\n")
    secret = tmp_path / "private" / "secret.md"
    secret.parent.mkdir()
    secret.write_text("# Secret\n\nThe vault code is 7741.\n")
    link = uploads / "abc123" / "link.md"
    link.symlink_to(secret)  # inside by name, outside once resolved
    entries = [{"path": str(secret), "meta": {"_type": "gradio.FileData"}},
               {"path": str(uploads / "abc123" / ".." / ".." / "private" / "secret.md")},
               {"path": str(link), "orig_name": "link.md"},
               {"path": "http://127.0.0.1:9/beacon.md", "orig_name": "beacon.md"},
               {"path": str(uploads)}, {"nothing": 1}, 42,
               {"path": str(good), "orig_name": "kept.md"}]
    with caplog.at_level("WARNING", logger="rag.app"):
        report = library.add_uploads(entries, upload_dir=uploads)
    assert report.added == ["kept.md"]
    assert len(report.rejected) == 7
    assert all(reason == "not a file uploaded to this app" for _, reason in report.rejected)
    assert not (library.corpus / "secret.md").exists() and not (library.corpus / "link.md").exists()
    assert sum("refused an upload entry" in r.message for r in caplog.records) == 7
    assert all("7741" not in c.text for c in library.rag.store.chunks)


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


def test_upload_report_escapes_file_names():
    from rag.uploads import UploadReport

    note = UploadReport(added=["![a](http:x).md"], rejected=[("<img src=x>.md", "bad <b>")]).markdown()
    assert "![" not in note and "<img" not in note and "<b>" not in note
    assert "**" in note  # the bold names are the app's own Markdown


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


# ---------------------------------------------------------------- upload limits and cancelling

def _uploads(tmp_path, sizes: dict[str, int]) -> tuple[Path, list[dict]]:
    up = tmp_path / "gradio-up" / "h1"
    up.mkdir(parents=True, exist_ok=True)
    entries = []
    for name, size in sizes.items():
        words = f"{name.split('.')[0]} gizmo notes. "
        (up / name).write_text((words * (size // len(words) + 1))[:size])
        entries.append({"path": str(up / name), "orig_name": name})
    return up.parent, entries


def test_uploads_over_a_limit_are_refused_one_line_each_and_the_rest_added(tmp_path, corpus_copy, fake_embedder):
    from rag.uploads import UploadLimits

    service = ChatService(index=str(tmp_path / "index"), corpus=str(corpus_copy),
                          limits=UploadLimits(file_bytes=2000, files=2, total_bytes=3000))
    service.rag._embedder = fake_embedder
    service.rag.index()
    root, entries = _uploads(tmp_path, {"huge.md": 2500, "a.md": 900, "b.md": 900, "c.md": 900})
    report = service.add_uploads(entries, upload_dir=root, owner="user alice")
    assert report.added == ["a.md", "b.md"]
    reasons = dict(report.rejected)
    assert reasons == {"huge.md": "2.4 KB, over the limit of 2.0 KB per file",
                       "c.md": "over the limit of 2 files per upload"}
    # the allowance counts what was added: 1800 of 3000 bytes used
    root2, more = _uploads(tmp_path / "2", {"d.md": 900, "e.md": 900})
    report = service.add_uploads(more, upload_dir=root2, owner="user alice")
    assert report.added == ["d.md"]
    assert report.rejected == [("e.md", "over your upload allowance of 2.9 KB (2.6 KB used)")]
    # another user has an allowance of their own
    assert service.add_uploads(more[1:], upload_dir=root2, owner="user bob").added == ["e.md"]
    assert not (service.corpus / "huge.md").exists() and not (service.corpus / "c.md").exists()


def test_refused_or_failed_files_do_not_use_the_allowance(tmp_path, corpus_copy, fake_embedder):
    from rag.uploads import UploadLimits

    service = ChatService(index=str(tmp_path / "index"), corpus=str(corpus_copy),
                          limits=UploadLimits(file_bytes=0, files=0, total_bytes=1000))
    service.rag._embedder = fake_embedder
    service.rag.index()
    root, entries = _uploads(tmp_path, {"bad.pdf": 900})
    assert service.add_uploads(entries, upload_dir=root, owner="x").added == []
    root, entries = _uploads(tmp_path / "2", {"good.md": 900})
    assert service.add_uploads(entries, upload_dir=root, owner="x").added == ["good.md"]


def test_a_cancelled_upload_adds_nothing(library, tmp_path):
    import threading

    live = library.rag.store.path
    root, entries = _uploads(tmp_path, {"one.md": 300, "two.md": 300})
    cancel = threading.Event()
    seen = []

    def on_file(i, n, name):
        seen.append(name)
        cancel.set()  # the user cancels while the first file is checked

    report = library.add_uploads(entries, upload_dir=root, cancel=cancel, on_file=on_file)
    assert report.cancelled and report.added == [] and seen == ["one.md"]
    assert dict(report.rejected) == {"one.md": "upload cancelled", "two.md": "upload cancelled"}
    assert "Upload cancelled" in report.markdown()
    assert not (library.corpus / "one.md").exists() and library.rag.store.path == live


def test_cancelling_while_indexing_removes_the_copies(library, tmp_path, monkeypatch):
    from rag.uploads import UploadCancelled

    live = library.rag.store.path

    def cancelled_build(*a, **kw):
        raise UploadCancelled()  # what the progress hook raises between embedding batches

    monkeypatch.setattr(library.rag, "index", cancelled_build)
    root, entries = _uploads(tmp_path, {"late.md": 300})
    report = library.add_uploads(entries, upload_dir=root)
    assert report.cancelled and report.added == []
    assert not (library.corpus / "late.md").exists() and library.rag.store.path == live


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
    assert service.model_choices() == [("smollm2-135m: SmolLM2-135M-Instruct.Q4_1.gguf (shipped default)",
                                        "SmolLM2-135M-Instruct.Q4_1.gguf"), ("notes.gguf", "notes.gguf")]
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
    assert service.is_operator(None) and not service.is_operator("bob")
