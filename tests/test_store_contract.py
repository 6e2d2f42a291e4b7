"""One contract for every `VectorStore`: FAISS folders, Milvus (Lite, the real engine) and the
in-memory stand-in each run the same tests, so a store that passes here plugs into the pipeline.

The chunks are few and the vectors 8-dimensional basis vectors, so the nearest chunk of a query
is known exactly; Milvus Lite starts once for the module (its startup is the slow part), each
test in a collection of its own."""
import itertools
import time

import numpy as np
import pytest

from rag.errors import IndexDamaged, IndexLocked, IndexMissing, StoreError
from rag.manifest import FORMAT_VERSION, embedder_record
from rag.protocols import IndexVersion, VectorStore
from rag.stores.faiss import FaissStore
from rag.stores.memory import MemoryStore
from rag.testing import HashEmbedder
from rag.types import Chunk, Location

DIM = 8
EMB = HashEmbedder(dim=DIM)
KINDS = ("faiss", "milvus", "memory")
_names = itertools.count()


def _chunk(source: str, n: int, text: str, location: Location | None = None) -> Chunk:
    return Chunk(id=f"{source}#{n}", source=source, title=source.split(".")[0].title(),
                 headings=("Notes", f"Part {n}"), text=text, location=location)


# each chunk gets its own basis vector: the query e_i has chunk i as its only nearest neighbour
CHUNKS = [_chunk("a.md", 0, "Quokkas live on Rottnest Island."),
          _chunk("a.md", 1, "They are small marsupials."),
          _chunk("b.pdf", 0, "Barn owls hunt voles at dusk.", Location(page=2)),
          _chunk("b.pdf", 1, "Über Eulen: sie jagen nachts.", Location(page=3)),
          _chunk("c.txt", 0, "Beekeepers inspect hives every nine days.")]
VECTORS = np.eye(DIM, dtype=np.float32)[:len(CHUNKS)]


def _manifest(sources, **extra) -> dict:
    return {"format_version": FORMAT_VERSION, "embedder": embedder_record(EMB),
            "chunker": {"chunk_size": 100, "chunk_overlap": 20},
            "documents": {s: {"n_chunks": sum(c.source == s for c in CHUNKS)} for s in sorted(sources)},
            **extra}


def _commit(store, chunks=CHUNKS, vectors=VECTORS, *, fresh=True, remove=(), **extra) -> str:
    with store.writer(lock_wait=0) as writer:
        writer.start(fresh=fresh, embedder=EMB)
        for source in remove:
            writer.remove(source)
        if chunks:
            writer.add(list(chunks), vectors)
        return writer.commit(_manifest(writer.sources(), **extra), dim=DIM)


def _query(row: int) -> np.ndarray:
    return VECTORS[row:row + 1]


@pytest.fixture(scope="module")
def milvus_uri(tmp_path_factory):
    """One Milvus Lite file (and server) for the module: each test names its own collection."""
    pytest.importorskip("milvus_lite")
    from rag.stores.milvus import close

    uri = str(tmp_path_factory.mktemp("milvus") / "contract.db")
    yield uri
    close(uri)


@pytest.fixture(params=KINDS)
def store(request, tmp_path):
    """A fresh, empty store of each kind."""
    if request.param == "faiss":
        return FaissStore(tmp_path / "index")
    if request.param == "milvus":
        from rag.stores.milvus import MilvusStore

        return MilvusStore(request.getfixturevalue("milvus_uri"), name=f"contract_{next(_names)}")
    return MemoryStore()


def test_an_empty_store_has_no_live_version(store):
    assert isinstance(store, VectorStore) and store.location
    assert store.live() is None and store.manifest() is None
    with pytest.raises(IndexMissing):
        store.open(embedder=EMB)


def test_a_commit_is_live_and_reads_back(store):
    version = _commit(store)
    assert store.live() == version
    opened = store.open(embedder=EMB)
    assert isinstance(opened, IndexVersion) and opened.version == version
    assert opened.chunks == CHUNKS and len(opened) == len(CHUNKS)  # locations and headings too
    assert np.allclose(opened.vectors(), VECTORS) and np.allclose(opened.vectors([3, 1]), VECTORS[[3, 1]])
    for row in range(len(CHUNKS)):
        scores, rows = opened.search(_query(row), 3)
        assert rows[0, 0] == row and scores[0, 0] == pytest.approx(1.0, abs=1e-5)
        assert list(scores[0]) == sorted(scores[0], reverse=True)  # nearest first
    _, rows = opened.search(_query(0), 5, source="b.")  # only the documents under that path
    assert {CHUNKS[r].source for r in rows[0] if r >= 0} == {"b.pdf"}


def test_a_commit_removing_a_document_keeps_the_others(store):
    first = _commit(store)
    extra = [_chunk("d.md", 0, "Wombats dig burrows.")]
    second = _commit(store, extra, np.eye(DIM, dtype=np.float32)[[7]], fresh=False, remove=["b.pdf"])
    assert second != first and store.live() == second
    opened = store.open(embedder=EMB)
    kept = [c for c in CHUNKS if c.source != "b.pdf"]
    assert sorted(opened.chunks, key=lambda c: c.id) == sorted(kept + extra, key=lambda c: c.id)
    assert set(opened.manifest["documents"]) == {"a.md", "c.txt", "d.md"}
    for row, c in enumerate(opened.chunks):  # every kept chunk brought its own vector along
        want = np.eye(DIM)[7] if c.source == "d.md" else VECTORS[CHUNKS.index(c)]
        assert np.allclose(opened.vectors([row])[0], want)
        assert opened.search(want[None].astype(np.float32), 1)[1][0, 0] == row


def test_a_reader_keeps_its_version_while_a_new_one_is_committed(store):
    _commit(store)
    reader = store.open(embedder=EMB)
    _commit(store, (), None, fresh=False, remove=["a.md", "b.pdf"])
    assert store.open(embedder=EMB).version != reader.version
    assert reader.chunks == CHUNKS and len(reader) == len(CHUNKS)
    assert reader.search(_query(2), 1)[1][0, 0] == 2  # a document the new version no longer has
    assert np.allclose(reader.vectors([2]), VECTORS[[2]])


def test_a_second_writer_waits_then_is_refused(store):
    version = _commit(store)
    with store.writer(lock_wait=0) as writer:
        writer.start(fresh=False, embedder=EMB)
        t0 = time.monotonic()
        with pytest.raises(IndexLocked):
            with store.writer(lock_wait=0.3):
                pass
        assert time.monotonic() - t0 >= 0.3
        with pytest.raises(IndexLocked):  # and without a wait, at once
            with store.writer(lock_wait=0):
                pass
        writer.remove("c.txt")
        second = writer.commit(_manifest(writer.sources()), dim=DIM)  # the holder is not disturbed
    assert store.live() == second != version
    assert _commit(store)  # and once it is done, the next writer gets in


def test_the_manifest_round_trips(store):
    # long enough to be stored in several parts where a backend splits it; unicode and big numbers
    extra = {"scanned_ns": 1_733_000_000_123_456_789, "notes": "Zürich ✓ " * 5000,
             "nested": {"list": [1, 2.5, None, True, "x"], "empty": {}}}
    version = _commit(store, **extra)
    got = store.manifest()
    want = _manifest({c.source for c in CHUNKS}, **extra)
    assert {k: got[k] for k in want} == want and got["n_chunks"] == len(CHUNKS)
    assert store.open(embedder=EMB).manifest == got and store.live() == version


def test_another_embedder_is_refused(store):
    _commit(store)
    for other in (HashEmbedder(name="other-embedder", dim=DIM), HashEmbedder(dim=2 * DIM)):
        with pytest.raises(StoreError) as refused:
            store.open(embedder=other)
        # a decision of its own (rebuild), not a missing, locked or damaged index
        assert not isinstance(refused.value, (IndexMissing, IndexLocked, IndexDamaged))
        with store.writer(lock_wait=0) as writer, pytest.raises(StoreError) as refused:
            writer.start(fresh=False, embedder=other)
        assert type(refused.value) is StoreError
