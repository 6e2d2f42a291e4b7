"""The chat app's logic without a server: messages, errors in the chat, uploads."""
import json

import pytest

from app import ChatService, answer_messages, respond
from rag.errors import StoreError
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
    assert text == {"role": "assistant", "content": "LoRA trains small matrices [1]."}
    assert "Sources" in header["content"]
    assert source["metadata"]["title"] == "[1] notes.md › Models > LoRA · similarity 0.61"
    assert source["metadata"]["status"] == "done"
    assert source["content"] == "LoRA adds small low-rank matrices to a frozen model."


def test_abstention_reads_as_not_found_without_sources():
    msgs = answer_messages(Answer(question="q", text="Not found in your documents.", abstained=True))
    assert len(msgs) == 1
    assert msgs[0]["content"].startswith("Not found in your documents.")
    assert "⚠️" not in msgs[0]["content"]


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
    (up / "x.docx").write_bytes(b"PK\x03\x04")
    (up / "deep-learning-overview.md").write_text("# Other\n\nA different file, same name.\n")
    report = library.add_files(sorted(up.iterdir()))
    assert sorted(report.added) == ["deep-learning-overview-2.md", "new.md"]
    reasons = dict(report.rejected)
    assert set(reasons) == {"bad.pdf", "empty.txt", "x.docx"}
    assert "no text" in reasons["empty.txt"] and "unsupported file type '.docx'" in reasons["x.docx"]
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
