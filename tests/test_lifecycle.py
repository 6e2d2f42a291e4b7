"""Index lifecycle: unchanged files are not re-read, writers exclude each other, readers keep
answering during a build, and a build killed with SIGKILL at any moment loses nothing."""
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from rag import RAG, index, ingest
from rag.stores import faiss as faiss_store
from rag.errors import StoreError

from conftest import CORPUS

LORA_DOC = "deep-learning-and-choosing-a-model.txt"


def build(paths, idx, emb, **kw):
    return index.build(paths, index_dir=idx, embedder=emb, chunk_size=100, chunk_overlap=20, **kw)


def count_calls(monkeypatch, module, name):
    calls = []
    real = getattr(module, name)
    monkeypatch.setattr(module, name, lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    return calls


def test_unchanged_documents_are_neither_read_nor_hashed(tmp_path, corpus_copy, fake_embedder, monkeypatch):
    monkeypatch.setattr(index, "RACY_SECONDS", 0.0)  # the files were written before the scan
    idx = tmp_path / "idx"
    build([corpus_copy], idx, fake_embedder)
    hashed = count_calls(monkeypatch, ingest, "file_sha256")
    loaded = count_calls(monkeypatch, ingest, "load")
    embedded = fake_embedder.embedded
    r = build([corpus_copy], idx, fake_embedder)
    assert len(r.unchanged) == 5 and not r.changed
    assert hashed == [] and loaded == [] and fake_embedder.embedded == embedded

    # same size, mtime put back: the ctime still moves, so the change is found
    f = corpus_copy / "deep-learning-overview.txt"
    st = f.stat()
    text = f.read_text()
    f.write_text(text.replace("Deep", "DEEP", 1))
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert f.stat().st_size == st.st_size and f.stat().st_mtime_ns == st.st_mtime_ns
    r = build([corpus_copy], idx, fake_embedder)
    assert r.updated == ["deep-learning-overview.txt"] and len(r.unchanged) == 4
    assert [p.name for p in hashed] == ["deep-learning-overview.txt"]
    assert [p.name for p in loaded] == ["deep-learning-overview.txt"]


def test_a_change_within_one_coarse_clock_tick_is_still_found(tmp_path, corpus_copy, fake_embedder, monkeypatch):
    # a file system whose clock ticks every 1000 s: stat cannot tell writes in one tick apart,
    # so files written that close to the scan must be hashed
    tick = 1000 * 10**9
    monkeypatch.setattr(index, "_stat_key", lambda st: {
        "size": st.st_size, "mtime_ns": st.st_mtime_ns // tick * tick, "ctime_ns": st.st_ctime_ns // tick * tick})
    monkeypatch.setattr(index, "RACY_SECONDS", 1000.0)
    idx = tmp_path / "idx"
    build([corpus_copy], idx, fake_embedder)
    f = corpus_copy / "deep-learning-overview.md"
    f.write_text(f.read_text().replace("Deep", "DEEP", 1))
    r = build([corpus_copy], idx, fake_embedder)
    assert r.updated == ["deep-learning-overview.md"]


def test_second_writer_waits_then_proceeds_or_gives_up(tmp_path, corpus_copy, fake_embedder):
    idx = tmp_path / "idx"
    held = threading.Event()
    release = threading.Event()

    def first_writer():
        with faiss_store._Lock(idx, 0):
            held.set()
            release.wait(30)

    t = threading.Thread(target=first_writer)
    t.start()
    held.wait(10)
    with pytest.raises(StoreError, match=r"another build is writing .*waited 0.3s.*--wait"):
        build([corpus_copy], idx, fake_embedder, lock_wait=0.3)
    assert faiss_store.current_version(idx) is None  # the refused build wrote nothing
    threading.Timer(0.5, release.set).start()
    r = build([corpus_copy], idx, fake_embedder, lock_wait=60)
    t.join()
    assert len(r.added) == 5 and faiss_store.open_index(idx).manifest["n_chunks"] == r.n_chunks


def test_cli_second_writer_gets_one_line(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "owls.md").write_text("# Owls\nOwls hunt at night.")
    with faiss_store._Lock(tmp_path / "idx", 0):
        out = subprocess.run([sys.executable, "-m", "rag", "index", str(docs), "--index",
                              str(tmp_path / "idx"), "--wait", "0.5"],
                             capture_output=True, text=True, timeout=300)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: another build is writing")
    assert "waiting up to 0.5s" in out.stderr  # the user is told why nothing happens yet


# ---------------------------------------------------------------- SIGKILL, real embedder

KILLED_BUILD = """
import os, signal, sys
from rag import RAG, index, ingest
from rag.stores import faiss as faiss_store

point, docs, idx = sys.argv[1:4]
rag = RAG(index=idx)

def die_after(fn, n):
    calls = []
    def wrapped(*a, **k):
        out = fn(*a, **k)
        calls.append(1)
        if len(calls) == n:
            os.kill(os.getpid(), signal.SIGKILL)
        return out
    return wrapped

if point == "embedding":  # the parent kills us while vectors are being computed
    index.EMBED_BATCH = 8
    real = rag.embedder.embed
    def embed(texts, **kw):
        print("EMBEDDING", flush=True)
        return real(texts, **kw)
    rag.embedder.embed = embed
elif point == "data-files":  # chunks.jsonl and vectors.npy written, faiss.index not
    faiss_store._fsync_file = die_after(faiss_store._fsync_file, 2)
elif point == "before-commit":  # manifest and .CURRENT.tmp written, CURRENT not replaced
    faiss_store._write_file = die_after(faiss_store._write_file, 2)
elif point == "after-commit":  # CURRENT replaced, older versions not yet cleaned
    # at the rename itself: counting fsyncs broke when the saved BM25 added one before the commit
    real_replace = os.replace
    def replace(src, dst, *a, **k):
        real_replace(src, dst, *a, **k)
        if os.path.basename(str(dst)) == "CURRENT":
            os.kill(os.getpid(), signal.SIGKILL)
    os.replace = replace
elif point.startswith("reading-file-"):  # files before it read and embedded, killed as it is read
    index.FLUSH_SECONDS = 0.0  # each finished file's chunks embedded at once, not in a part batch later
    real_load, loads = ingest.load, []
    def load(path, **kw):
        loads.append(path)
        if len(loads) == int(point.rsplit("-", 1)[1]):
            os.kill(os.getpid(), signal.SIGKILL)
        return real_load(path, **kw)
    ingest.load = load
elif point.startswith("reading-page-"):  # SIGKILL once this page of a PDF is kept (rag.resume.PageLog)
    from rag import resume
    real_add = resume.PageLog.add
    def add(self, number, blocks):
        real_add(self, number, blocks)
        if number == int(point.rsplit("-", 1)[1]):
            os.kill(os.getpid(), signal.SIGKILL)
    resume.PageLog.add = add
rag.index([docs], rebuild=point == "embedding")
print("FINISHED", flush=True)
"""


def killed_build(point, docs, idx, reader=None):
    proc = subprocess.Popen([sys.executable, "-c", KILLED_BUILD, point, str(docs), str(idx)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if point == "embedding":
        assert proc.stdout.readline().strip() == "EMBEDDING", proc.stderr.read()
        answered_during_build = 0
        for _ in range(3):  # the reader keeps answering from the complete index meanwhile
            hits = reader.search("What is LoRA?")
            answered_during_build += proc.poll() is None and hits[0].chunk.source.endswith(LORA_DOC)
        assert answered_during_build == 3
        proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL, f"{point}: not killed\n{out}\n{err}"


@pytest.mark.e2e
def test_build_killed_at_any_moment_leaves_a_loadable_index(tmp_path, real_rag):
    docs = tmp_path / "docs"
    shutil.copytree(CORPUS, docs / "a")
    shutil.copytree(CORPUS, docs / "b")  # a sizeable folder: two copies of the corpus
    idx = tmp_path / "idx"
    reader = RAG(index=str(idx), n_ctx=2048)
    reader._embedder, reader._llm = real_rag.embedder, real_rag.llm  # share the loaded models
    first = reader.index([docs])
    v1 = faiss_store.current_version(idx)
    assert len(first.added) == 10

    edited = docs / "a" / "deep-learning-overview.txt"
    edited.write_text(edited.read_text() + "\n\nThe capybara is the largest living rodent.\n")
    (docs / "a" / "quokkas.md").write_text("# Quokkas\nQuokkas are small marsupials from Rottnest Island.")
    (docs / "b" / "intro-to-deep-learning-clarke.txt").unlink()

    for point in ("embedding", "data-files", "before-commit"):
        killed_build(point, docs, idx, reader)
        assert faiss_store.current_version(idx) == v1, point
        store = faiss_store.open_index(idx, embedder_name=real_rag.embedder.name)
        assert store.manifest == faiss_store.open_index(idx).manifest and len(store) == first.n_chunks
        assert not any("capybara" in c.text for c in store.chunks)
        assert reader.search("What is LoRA?")[0].chunk.source.endswith(LORA_DOC)

    answer = reader.ask("What is LoRA?")  # the old index answers, with the real model
    assert answer.text.strip() and answer.usage.completion_tokens > 0
    assert answer.hits[0].chunk.source.endswith(LORA_DOC)
    retrieved = {h.chunk.id for h in answer.hits}
    assert all(c.chunk_id in retrieved for c in answer.citations)

    done = reader.index([docs])  # the next run finishes the job and clears the leftovers
    assert (done.added, done.updated, done.removed) == (
        ["a/quokkas.md"], ["a/deep-learning-overview.txt"], ["b/intro-to-deep-learning-clarke.txt"])
    assert len(done.unchanged) == 8 and done.n_embedded < done.n_chunks
    assert not list(idx.glob(".v*.tmp"))
    hit = reader.search("Which is the largest rodent, the capybara?")[0]  # reader reloaded by itself
    assert hit.chunk.source == "a/deep-learning-overview.txt" and "capybara" in hit.chunk.text

    (docs / "a" / "quokkas.md").write_text("# Quokkas\nQuokkas smile and live on Rottnest Island.")
    killed_build("after-commit", docs, idx)
    store = faiss_store.open_index(idx)  # the new version is live and whole
    assert store.path != v1 and any("Quokkas smile" in c.text for c in store.chunks)
    again = reader.index([docs])
    assert not again.changed and len(again.unchanged) == 10


def test_a_build_that_dies_while_embedding_resumes_from_its_saved_batches(tmp_path, corpus_copy, monkeypatch):
    from conftest import FakeEmbedder

    monkeypatch.setattr(index, "EMBED_BATCH", 4)
    idx = tmp_path / "idx"

    class Dying(FakeEmbedder):
        def embed(self, texts, **kw):
            if self.calls == 3:
                raise KeyboardInterrupt  # as a kill would, after three batches
            return super().embed(texts, **kw)

    dying = Dying()
    with pytest.raises(KeyboardInterrupt):
        build([corpus_copy], idx, dying)
    assert faiss_store.current_version(idx) is None and len(list((idx / ".embedded").rglob("*.npz"))) == 3
    again = FakeEmbedder()
    report = build([corpus_copy], idx, again)
    assert report.n_embedded == report.n_chunks and again.embedded == report.n_chunks - 12  # 3 batches of 4 kept
    assert not (idx / ".embedded").exists()
    store = faiss_store.open_index(idx)
    fresh = FakeEmbedder().embed([index.embed_text(c) for c in store.chunks])
    assert abs(store.vectors() - fresh).max() < 1e-6


@pytest.mark.e2e
def test_a_build_killed_after_6_of_10_files_resumes_without_reading_or_embedding_them(tmp_path, real_rag,
                                                                                     monkeypatch):
    docs = tmp_path / "docs"
    shutil.copytree(CORPUS, docs / "a")
    shutil.copytree(CORPUS, docs / "b")
    for f in (docs / "b").iterdir():  # other texts: a copy's chunks would take the same vectors
        f.write_text(f.read_text(encoding="utf-8").upper(), encoding="utf-8")
    idx = tmp_path / "idx"
    killed_build("reading-file-7", docs, idx)  # SIGKILL as the 7th file is read
    assert faiss_store.current_version(idx) is None  # nothing half-built is live
    files, _ = ingest.find_files([docs])
    finished = [ingest.source_id(f, docs) for f in files[:6]]

    resumed = RAG(index=str(idx), embedder=real_rag.embedder, generator=real_rag.generator)
    loads = count_calls(monkeypatch, ingest, "load")
    embedded = []
    real_embed = real_rag.embedder.embed
    monkeypatch.setattr(real_rag.embedder, "embed", lambda texts, **kw: embedded.extend(texts) or real_embed(texts, **kw))
    report = resumed.index([docs])
    # what the report says: the six finished files were neither read nor embedded again
    assert report.resumed == finished and len(report.added) == 10
    assert [ingest.source_id(Path(p), docs) for p in loads] == [ingest.source_id(f, docs) for f in files[6:]]
    store = faiss_store.open_index(idx)
    first_six = sum(1 for c in store.chunks if c.source in finished)
    assert report.n_reused == first_six and len(embedded) == report.n_chunks - first_six
    assert not (idx / ".embedded").exists()
    # the index is whole: every chunk, each vector what the embedder gives for its text
    assert {c.source for c in store.chunks} == {ingest.source_id(f, docs) for f in files}
    fresh = real_embed([index.embed_text(c) for c in store.chunks[:40]])
    assert abs(store.vectors(list(range(40))) - fresh).max() < 1e-4


@pytest.mark.e2e
def test_a_build_killed_on_page_7_of_a_pdf_reads_on_from_page_8_and_indexes_the_same_chunks(tmp_path, real_rag,
                                                                                          monkeypatch):
    from pypdf import PageObject

    from rag import samples

    docs = tmp_path / "docs"
    docs.mkdir()
    samples.write_layout_pdf(docs / "waterworks.pdf", [
        [("text", 72, 760, f"Vellmar Waterworks Annual Report - {n}"),  # a running head: dropped once all pages are in
         ("text", 72, 700, f"Pump station {n} lifted {n * 111} megalitres in spring."),
         ("text", 72, 686, f"Its {n + 2} filters were cleaned by crew {chr(64 + n)}."),
         ("text", 72, 40, "Internal draft, not for circulation")] for n in range(1, 13)])
    shutil.copy(CORPUS / LORA_DOC, docs / LORA_DOC)
    idx = tmp_path / "idx"
    killed_build("reading-page-7", docs, idx)
    assert faiss_store.current_version(idx) is None  # nothing half-built is live

    read = []
    real_extract = PageObject.extract_text
    monkeypatch.setattr(PageObject, "extract_text", lambda self, *a, **k: read.append(1) or real_extract(self, *a, **k))
    report = RAG(index=str(idx), embedder=real_rag.embedder, generator=real_rag.generator).index([docs])
    assert len(read) == 5 and len(report.added) == 2  # pages 8-12 alone were read
    assert not (idx / ".embedded").exists()

    whole = RAG(index=str(tmp_path / "whole"), embedder=real_rag.embedder, generator=real_rag.generator)
    whole.index([docs])  # the same folder, never killed
    store, reference = faiss_store.open_index(idx), faiss_store.open_index(tmp_path / "whole")
    assert [c.to_dict() for c in store.chunks] == [c.to_dict() for c in reference.chunks]
    assert [c.page for c in store.chunks if c.source == "waterworks.pdf"] == list(range(1, 13))
    assert abs(store.vectors() - reference.vectors()).max() < 1e-4


def test_what_a_killed_build_read_is_taken_up_only_under_the_same_settings(tmp_path, corpus_copy, monkeypatch):
    from conftest import FakeEmbedder

    monkeypatch.setattr(index, "FLUSH_SECONDS", 0.0)  # each file embedded as soon as it is read

    class Dying(FakeEmbedder):
        def embed(self, texts, **kw):
            if self.calls == 2:
                raise KeyboardInterrupt  # as a kill would, after two files
            return super().embed(texts, **kw)

    def killed(idx):
        with pytest.raises(KeyboardInterrupt):
            build([corpus_copy], idx, Dying())

    killed(tmp_path / "a")
    assert len(build([corpus_copy], tmp_path / "a", FakeEmbedder()).resumed) >= 2  # same settings: taken up
    killed(tmp_path / "b")
    real = ingest.ocr_settings
    monkeypatch.setattr(ingest, "ocr_settings", lambda: {**real(), "engine": not real()["engine"]})
    assert build([corpus_copy], tmp_path / "b", FakeEmbedder()).resumed == []  # read under other OCR: again
    killed(tmp_path / "c")
    report = build([corpus_copy], tmp_path / "c", FakeEmbedder(), rebuild=True)
    assert report.resumed == [] and report.n_reused == 0  # --rebuild takes nothing up
