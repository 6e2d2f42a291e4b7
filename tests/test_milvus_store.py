"""The index in Milvus (the real engine, embedded through milvus-lite): the same lifecycle as
the FAISS folder, behind the same `VectorStore` protocol."""
import os
import shutil
import signal
import subprocess
import sys
import threading

import pytest

from rag import RAG, index
from rag.errors import StoreError
from rag.stores.milvus import MilvusStore, close
from rag.testing import HashEmbedder, ScriptedGenerator

from conftest import CORPUS

pytest.importorskip("milvus_lite")
EMB = HashEmbedder(dim=256)


def build(docs, store, **kw):
    return index.build([docs], store=store, embedder=EMB, chunk_size=100, chunk_overlap=20, **kw)


@pytest.fixture
def docs(tmp_path):
    d = tmp_path / "docs"
    shutil.copytree(CORPUS, d / "notes")
    (d / "extra").mkdir()
    (d / "extra" / "quokkas.md").write_text("# Quokkas\n\nQuokkas are small marsupials from Rottnest Island.\n")
    return d


@pytest.fixture
def store(tmp_path):
    uri = str(tmp_path / "milvus.db")
    yield MilvusStore(uri)
    close(uri)


def test_build_update_delete_and_filter(docs, store):
    first = build(docs, store)
    assert len(first.added) == 6 and first.n_chunks == first.n_embedded > 6
    v1 = store.live()
    opened = store.open(embedder=EMB)
    assert len(opened) == first.n_chunks and opened.manifest["embedder"]["fingerprint"] == EMB.fingerprint
    heads = {c.id: c for c in opened.chunks}
    assert all(c.source and c.text for c in heads.values())

    (docs / "extra" / "quokkas.md").write_text("# Quokkas\n\nQuokkas smile and live on Rottnest Island.\n")
    (docs / "notes" / "intro-to-deep-learning-clarke.txt").unlink()
    second = build(docs, store)
    assert second.updated == ["extra/quokkas.md"] and second.removed == ["notes/intro-to-deep-learning-clarke.txt"]
    assert len(second.unchanged) == 4 and second.n_embedded == 1  # only the changed document
    assert store.live() != v1
    again = store.open(embedder=EMB)
    sources = {c.source for c in again.chunks}
    assert "notes/intro-to-deep-learning-clarke.txt" not in sources and "extra/quokkas.md" in sources
    assert any("smile" in c.text for c in again.chunks)
    # unchanged documents kept their vectors, row for row
    kept = [i for i, c in enumerate(again.chunks) if c.source == "notes/deep-learning-overview.md"]
    assert kept and (abs(again.vectors(kept) - EMB.embed([index.embed_text(again.chunks[i]) for i in kept])) < 1e-5).all()
    assert not build(docs, store).changed

    rag = RAG(embedder=EMB, generator=ScriptedGenerator([]), store=store)
    hits = rag.search("Where do quokkas live?")
    assert hits[0].chunk.source == "extra/quokkas.md"
    only = rag.search("Where do quokkas live?", source="notes/")
    assert only and all(h.chunk.source.startswith("notes/") for h in only)
    assert rag.search("quokkas", source="nowhere/") == []


def test_another_embedder_is_refused(docs, store):
    build(docs, store)
    with pytest.raises(StoreError, match="built with embedder"):
        store.open(embedder=HashEmbedder(name="other", dim=256))
    with pytest.raises(StoreError, match="weights differ"):
        store.open(embedder=HashEmbedder(dim=128) if False else _Renamed())


class _Renamed(HashEmbedder):
    """Same name as EMB, other weights."""

    def __init__(self):
        super().__init__(dim=256)

    @property
    def fingerprint(self):
        return "other-weights"


def test_readers_see_whole_versions_while_the_alias_switches(docs, store):
    build(docs, store)
    rag = RAG(embedder=EMB, generator=ScriptedGenerator([]), store=store)
    seen, errors, stop = set(), [], threading.Event()

    def read():
        while not stop.is_set():
            try:
                version = store.open(embedder=EMB)
                assert len(version) == version.manifest["n_chunks"]
                seen.add((version.version, len(version)))
                rag.search("What is LoRA?")
            except Exception as e:  # noqa: BLE001 - collected, asserted below
                errors.append(e)
    reader = threading.Thread(target=read)
    reader.start()
    for i in range(3):
        (docs / "extra" / f"note{i}.md").write_text(f"# Note {i}\n\nZebra fact number {i}.\n")
        build(docs, store)
    stop.set()
    reader.join()
    assert errors == [] and len(seen) >= 2


KILLED = """
import os, signal, sys
from rag import index
from rag.stores.milvus import MilvusStore, MilvusWriter
from rag.testing import HashEmbedder

store = MilvusStore(sys.argv[2])
real = MilvusWriter._insert
def insert(self, *a, **k):
    out = real(self, *a, **k)
    print("INSERTED", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # mid-build: a collection half filled, the alias untouched
MilvusWriter._insert = insert
index.build([sys.argv[1]], store=store, embedder=HashEmbedder(dim=256), chunk_size=100, chunk_overlap=20,
            rebuild=True)
"""


def test_a_build_killed_midway_leaves_the_previous_index_answering(docs, store):
    build(docs, store)
    v1, n1 = store.live(), store.open(embedder=EMB).manifest["n_chunks"]
    close(store.uri)  # Milvus Lite: one process per file
    proc = subprocess.run([sys.executable, "-c", KILLED, str(docs), store.uri], capture_output=True, text=True,
                          timeout=300, env={**os.environ})
    assert proc.returncode == -signal.SIGKILL and "INSERTED" in proc.stdout, proc.stderr[-2000:]
    assert store.live() == v1 and store.open(embedder=EMB).manifest["n_chunks"] == n1
    rag = RAG(embedder=EMB, generator=ScriptedGenerator([]), store=store)
    assert rag.search("What is LoRA?")[0].chunk.source.startswith("notes/")
    done = build(docs, store)  # the next build finishes the job
    assert not done.changed and store.live() == v1
    rebuilt = build(docs, store, rebuild=True)
    assert store.live() != v1 and rebuilt.n_chunks == n1


def test_a_second_process_is_refused_with_one_line(docs, store):
    build(docs, store)
    proc = subprocess.run([sys.executable, "-m", "rag", "index", str(docs), "--store", "milvus", "--milvus-uri",
                           store.uri], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "another process has it open" in proc.stderr
    assert len([line for line in proc.stderr.splitlines() if line.startswith("error:")]) == 1


@pytest.mark.e2e
def test_the_pipeline_answers_from_milvus_with_the_real_models(tmp_path, real_rag):
    uri = str(tmp_path / "real.db")
    rag = RAG(store="milvus", milvus_uri=uri, index=str(tmp_path / "unused"), n_ctx=2048, max_tokens=48)
    rag._embedder, rag._generator = real_rag.embedder, real_rag.generator
    report = rag.index([str(CORPUS)])
    assert report.n_chunks == len(real_rag.store)
    ours, faiss = rag.search("What is LoRA?"), real_rag.search("What is LoRA?")
    assert [h.chunk.id for h in ours] == [h.chunk.id for h in faiss]
    answer = rag.ask("What is LoRA?")
    assert answer.hits[0].chunk.source == "deep-learning-and-choosing-a-model.txt" and answer.text.strip()
    close(uri)


def test_the_source_filter_takes_names_with_wildcard_characters(tmp_path, store):
    docs = tmp_path / "d"
    for folder in ("a_b", "axb", "50%"):
        (docs / folder).mkdir(parents=True)
        (docs / folder / "n.md").write_text(f"# Notes\n\nWombats dig burrows in {folder}.\n")
    build(docs, store)
    rag = RAG(embedder=EMB, generator=ScriptedGenerator([]), store=store)
    assert {h.chunk.source for h in rag.search("wombats burrows", source="a_b/")} == {"a_b/n.md"}
    assert {h.chunk.source for h in rag.search("wombats burrows", source="50%")} == {"50%/n.md"}


def test_collections_over_milvus_keep_their_documents_apart(tmp_path):
    from rag.collections import CollectionRAGs, Collections
    from rag.config import Settings
    from rag.stores.milvus import close as close_milvus

    settings = Settings(store="milvus", index=str(tmp_path / "default-index"), corpus=str(tmp_path / "corpus"),
                        collections=str(tmp_path / "cols"), chunk_size=100, chunk_overlap=20)
    base = RAG(settings, embedder=EMB, generator=ScriptedGenerator([]))
    cols = Collections.from_settings(settings)
    rags = CollectionRAGs(base, cols)
    facts = {"bees": "# Hives\n\nA beekeeper inspects each hive every nine days in spring.\n",
             "owls": "# Owls\n\nBarn owls hunt voles over open fields at dusk.\n"}
    uris = []
    try:
        for name, text in facts.items():
            c = cols.create(name)
            (c.corpus / f"{name}.md").write_text(text)
            rag = rags.get(name)
            assert rag.index().n_chunks == 1
            uris.append(rag.vector_store.uri)
        for name in facts:
            sources = {h.chunk.source for h in rags.get(name).search("Who inspects hives and hunts voles?", top_k=5)}
            assert sources == {f"{name}.md"}  # each collection's Milvus data holds its own document only
        assert uris[0] != uris[1] and all(u.startswith(str(tmp_path / "cols")) for u in uris)
    finally:
        for u in uris:
            close_milvus(u)
