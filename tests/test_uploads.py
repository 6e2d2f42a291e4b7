"""Adding documents (rag.uploads, through the chat's ChatService): files checked, copied into the
corpus folder and indexed at once, or refused one line each; copies removed again when indexing
fails or the upload is cancelled; the per-user limits and allowance."""
import json
from pathlib import Path

import pytest

from rag.errors import StoreError
from rag.uploads import UploadCancelled, UploadLimits, UploadReport
from rag.workspace import ChatService


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


def test_upload_report_escapes_file_names():
    note = UploadReport(added=["![a](http:x).md"], rejected=[("<img src=x>.md", "bad <b>")]).markdown()
    assert "![" not in note and "<img" not in note and "<b>" not in note
    assert "**" in note  # the bold names are the app's own Markdown


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
    live = library.rag.store.path

    def cancelled_build(*a, **kw):
        raise UploadCancelled()  # what the progress hook raises between embedding batches

    monkeypatch.setattr(library.rag, "index", cancelled_build)
    root, entries = _uploads(tmp_path, {"late.md": 300})
    report = library.add_uploads(entries, upload_dir=root)
    assert report.cancelled and report.added == []
    assert not (library.corpus / "late.md").exists() and library.rag.store.path == live


def test_an_upload_to_a_collection_the_user_may_not_write_is_settled(tmp_path, corpus_copy, fake_embedder):
    """bob's raw upload (charged when it was sent) to alice's shared collection is refused: its
    charge is given back and its file deleted, so refusals never lock him out of uploading."""
    from rag.errors import ConfigError

    service = ChatService(index=str(tmp_path / "index"), corpus=str(corpus_copy),
                          collections=str(tmp_path / "collections"), operators=frozenset({"alice"}),
                          limits=UploadLimits(file_bytes=0, files=0, total_bytes=1000))
    service.rag._embedder = fake_embedder
    service.rag.index()
    service.create_collection("team", user="alice", shared=True)
    allowance = service.allowance

    def sent(folder, name, size):  # what UploadGuard does as the raw upload is received
        root, entries = _uploads(tmp_path / folder, {name: size})
        raw = allowance.reserve_raw("user bob", size)
        assert not isinstance(raw, str), raw
        allowance.settle_raw(raw, [e["path"] for e in entries])
        return root, entries

    for attempt in range(3):  # repeated refusals leave nothing charged
        root, entries = sent(f"r{attempt}", "plans.md", 600)
        assert allowance.used("user bob") == 600
        with pytest.raises(ConfigError, match="belongs to alice"):
            service.add_uploads(entries, upload_dir=root, owner="user bob", collection="team", user="bob")
        assert allowance.used("user bob") == 0
        assert not Path(entries[0]["path"]).exists()
    root, entries = sent("ok", "notes.md", 400)
    report = service.add_uploads(entries, upload_dir=root, owner="user bob", user="bob")
    assert report.added == ["notes.md"] and report.rejected == []
    assert allowance.used("user bob") == 400 and not Path(entries[0]["path"]).exists()


def test_a_reservation_is_settled_once_whatever_happened(tmp_path):
    from rag.uploads import Allowance, Reservation

    allowance = Allowance(1000, clock=lambda: 0.0)
    f = tmp_path / "a.md"
    f.write_bytes(b"x" * 700)
    res = Reservation("x", [str(f)])
    allowance.reserve(res, UploadLimits(file_bytes=0, files=0, total_bytes=1000))
    assert res.kept == [str(f)] and allowance.used("x") == 700
    over = Reservation("x", [str(f)])
    allowance.reserve(over, UploadLimits(file_bytes=0, files=0, total_bytes=1000))
    assert over.kept == [] and over.refused == [(str(f), "over your upload allowance of 1000 bytes (700 bytes used)")]
    allowance.settle(over)
    allowance.settle(res, 0)  # nothing was added after all
    allowance.settle(res, 0)
    assert allowance.used("x") == 0
    assert f.exists()  # not a raw upload of x's (none was sent): not x's to delete
