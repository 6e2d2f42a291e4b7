import json
import os

import pytest

from rag import index
from rag.stores import faiss as faiss_store
from rag.errors import IndexDamaged, IndexLocked, IndexMissing, StoreError
from rag.retrieve import Retriever


def build(paths, idx, emb, **kw):
    return index.build(paths, index_dir=idx, embedder=emb, chunk_size=kw.pop("chunk_size", 100),
                       chunk_overlap=20, **kw)


def test_build_writes_a_verified_version(tmp_path, corpus_copy, fake_embedder):
    idx = tmp_path / "idx"
    r = build([corpus_copy], idx, fake_embedder)
    assert len(r.added) == 5 and r.n_chunks == r.n_embedded > 5
    live = faiss_store.current_version(idx)
    assert sorted(p.name for p in live.iterdir()) == ["bm25", "chunks.jsonl", "faiss.index", "manifest.json", "vectors.npy"]
    m = json.loads((live / "manifest.json").read_text())
    assert m["format_version"] == faiss_store.FORMAT_VERSION
    assert m["embedder"] == {"name": "fake-embedder", "dim": 64, "fingerprint": "hash-64"}
    assert m["chunker"] == {"chunk_size": 100, "chunk_overlap": 20}
    assert set(m["documents"]) == {p.name for p in corpus_copy.iterdir()}
    store = faiss_store.open_index(idx, embedder_name="fake-embedder")
    assert len(store) == r.n_chunks


def test_incremental_update(tmp_path, corpus_copy, fake_embedder):
    idx = tmp_path / "idx"
    build([corpus_copy], idx, fake_embedder)
    first = fake_embedder.embedded
    again = build([corpus_copy], idx, fake_embedder)
    assert len(again.unchanged) == 5 and not again.changed and fake_embedder.embedded == first

    (corpus_copy / "deep-learning-overview.txt").write_text("Totally new text about capybaras.")
    (corpus_copy / "deep-learning-and-neural-networks.txt").unlink()
    (corpus_copy / "new.md").write_text("# Owls\nOwls hunt at night.")
    r = build([corpus_copy], idx, fake_embedder)
    assert (r.added, r.updated, r.removed) == (["new.md"], ["deep-learning-overview.txt"],
                                               ["deep-learning-and-neural-networks.txt"])
    assert len(r.unchanged) == 3
    assert fake_embedder.embedded - first == r.n_embedded == 2
    store = faiss_store.open_index(idx)
    sources = {c.source for c in store.chunks}
    assert "deep-learning-and-neural-networks.txt" not in sources
    hits = Retriever(store, fake_embedder).search("capybaras", k=1)
    assert hits[0].chunk.source == "deep-learning-overview.txt"
    # old and new vectors line up with their chunks
    for row, chunk in enumerate(store.chunks):
        again_vec = fake_embedder.embed([index.embed_text(chunk)])[0]
        assert float(store.vectors(row) @ again_vec) == pytest.approx(1.0, abs=1e-5)


def test_settings_change_needs_rebuild(tmp_path, corpus_copy, fake_embedder):
    idx = tmp_path / "idx"
    build([corpus_copy], idx, fake_embedder)
    with pytest.raises(StoreError, match="rebuild"):
        build([corpus_copy], idx, fake_embedder, chunk_size=50)
    fake_embedder.name = "other-model"
    with pytest.raises(StoreError, match="embedder"):
        build([corpus_copy], idx, fake_embedder)
    r = build([corpus_copy], idx, fake_embedder, chunk_size=50, rebuild=True)
    assert len(r.added) == 5
    assert faiss_store.open_index(idx).manifest["embedder"]["name"] == "other-model"


@pytest.mark.parametrize("damage, message", [
    (lambda v: (v / "vectors.npy").write_bytes((v / "vectors.npy").read_bytes()[:-100]), "truncated or corrupted"),
    (lambda v: (v / "faiss.index").unlink(), "missing"),
    (lambda v: (v / "manifest.json").write_text("{not json"), "manifest"),
    (lambda v: (v.parent / "CURRENT").write_text("../../etc"), "CURRENT"),
])
def test_damage_is_reported_not_crashed(tmp_path, corpus_copy, fake_embedder, damage, message):
    idx = tmp_path / "idx"
    build([corpus_copy], idx, fake_embedder)
    damage(faiss_store.current_version(idx))
    with pytest.raises(StoreError, match=message) as e:
        faiss_store.open_index(idx)
    assert "rebuild" in str(e.value)


def test_wrong_embedder_on_load(tmp_path, corpus_copy, fake_embedder):
    build([corpus_copy], tmp_path / "idx", fake_embedder)
    with pytest.raises(StoreError, match="built with embedder"):
        faiss_store.open_index(tmp_path / "idx", embedder_name="all-MiniLM-L6-v2")


def test_second_writer_gets_a_clear_error(tmp_path, corpus_copy, fake_embedder):
    idx = tmp_path / "idx"
    with faiss_store._Lock(idx, 0):
        with pytest.raises(StoreError, match="another build"):
            build([corpus_copy], idx, fake_embedder)


def test_each_condition_a_caller_acts_on_has_its_class(tmp_path, corpus_copy, fake_embedder):
    """Callers decide by class (IndexMissing, IndexLocked, IndexDamaged), never by the words of
    the message; a mismatched embedder is none of them (an older version would not help)."""
    idx = tmp_path / "idx"
    with pytest.raises(IndexMissing):
        faiss_store.open_index(idx)
    with faiss_store._Lock(idx, 0):
        with pytest.raises(IndexLocked):
            build([corpus_copy], idx, fake_embedder)
    build([corpus_copy], idx, fake_embedder)
    with pytest.raises(StoreError) as e:
        faiss_store.open_index(idx, embedder_name="all-MiniLM-L6-v2")
    assert not isinstance(e.value, IndexDamaged)
    (faiss_store.current_version(idx) / "faiss.index").unlink()
    with pytest.raises(IndexDamaged):
        faiss_store.open_index(idx)


def test_leftovers_of_a_killed_build_are_ignored_and_cleaned(tmp_path, corpus_copy, fake_embedder):
    idx = tmp_path / "idx"
    build([corpus_copy], idx, fake_embedder)
    live = faiss_store.current_version(idx)
    (idx / ".v000099.tmp").mkdir()
    (idx / ".v000099.tmp" / "chunks.jsonl").write_text("half")
    assert faiss_store.current_version(idx) == live
    (corpus_copy / "x.txt").write_text("a new file")
    build([corpus_copy], idx, fake_embedder)
    assert not (idx / ".v000099.tmp").exists()
    assert len([p for p in os.listdir(idx) if p.startswith("v")]) <= 2


def test_skipped_files_do_not_stop_the_build(tmp_path, corpus_copy, fake_embedder):
    (corpus_copy / "bin.txt").write_bytes(b"\x00\xff" * 100)
    (corpus_copy / "empty.md").write_text("")
    (corpus_copy / "data.xls").write_text("a,b")
    r = build([corpus_copy], tmp_path / "idx", fake_embedder)
    assert len(r.added) == 5
    assert {os.path.basename(p) for p, _ in r.skipped} == {"bin.txt", "empty.md", "data.xls"}


def test_duplicate_text_is_returned_once(tmp_path, fake_embedder):
    docs = tmp_path / "docs"
    docs.mkdir()
    text = "Gradient boosting machines handle tabular data well."
    (docs / "a.txt").write_text(text)
    (docs / "b.txt").write_text(text)
    (docs / "c.txt").write_text("Owls hunt at night.")
    build([docs], tmp_path / "idx", fake_embedder)
    hits = Retriever(faiss_store.open_index(tmp_path / "idx"), fake_embedder).search("gradient boosting", k=3)
    assert [h.chunk.text for h in hits].count(text) == 1
    assert len(hits) == 2


def test_names_the_documents_never_mention(tmp_path, corpus_copy, fake_embedder, monkeypatch):
    from rag import bm25

    (corpus_copy / "normans.txt").write_text("Hervé served the Byzantines. The Scottish king took hostages. "
                                             "Circuit switching is characterized by a fee per minute.")
    build([corpus_copy], tmp_path / "idx", fake_embedder)
    r = Retriever(faiss_store.open_index(tmp_path / "idx"), fake_embedder)
    assert r.unknown(["Mamba", "Australia", "LoRA", "GANs", "RLHF", "Adam"]) == ["Mamba", "Australia", "Adam"]
    # accents and small misspellings of a name that is there do not count as missing
    assert r.unknown(["Herve", "Scotish", "The"]) == []
    # a misspelt word is matched through its stem as well, which may be much shorter than it
    assert r.unknown(["charecterized", "frobnitzed"]) == ["frobnitzed"]
    assert r.unknown(["charecterized"], fuzzy=False) == ["charecterized"]
    # an acronym the notes use only in the plural (the stemmer leaves "MLPs" as it is), or the
    # other way round, is mentioned; switched off, only the word's own forms count
    assert r.unknown(["MLP", "GAN", "RLHFs"]) == []
    monkeypatch.setattr(bm25, "PLURAL_FORMS", False)
    r.bm25._folded = None
    assert r.unknown(["MLP", "GAN"]) == ["MLP"]
    hits = r.search("What does RLHF stand for?", k=4)
    assert r.mentioned(["RLHF"], hits) and not r.mentioned(["RLHF", "Mamba"], hits)


def test_a_damaged_live_version_offers_the_intact_previous_one(tmp_path, corpus_copy, fake_embedder):
    from rag.stores.faiss import FaissStore

    idx = tmp_path / "idx"
    build([corpus_copy], idx, fake_embedder)
    first = faiss_store.current_version(idx)
    (corpus_copy / "extra.md").write_text("# Extra\n\nCapybaras swim well.\n")
    build([corpus_copy], idx, fake_embedder)
    live = faiss_store.current_version(idx)
    (live / "vectors.npy").write_bytes((live / "vectors.npy").read_bytes()[:-100])
    with pytest.raises(StoreError, match=f"intact previous version {first.name} live again") as e:
        faiss_store.open_index(idx)
    assert "rag index --rollback" in str(e.value) and "\n" not in str(e.value)
    assert FaissStore(idx).rollback() == first.name
    assert faiss_store.open_index(idx).path == first


# ---------------------------------------------------------------- BM25 saved with each version

def _scores(retriever, query):
    return retriever.bm25.scores(query)


def test_bm25_is_saved_with_the_version_and_read_back_memory_mapped(tmp_path, corpus_copy, fake_embedder):
    import numpy as np

    from rag.chunk import embed_text
    from rag.bm25 import BM25

    idx = tmp_path / "idx"
    build([corpus_copy], idx, fake_embedder)
    store = faiss_store.open_index(idx, embedder_name="fake-embedder")
    assert set(store.manifest["bm25"]["files"]) == {p.name for p in (store.path / "bm25").iterdir()}
    retriever = Retriever(store, fake_embedder)
    assert isinstance(retriever.bm25.model.scores["data"], np.memmap)  # read, not rebuilt
    fresh = BM25([embed_text(c) for c in store.chunks])
    for q in ("transfer learning", "autoencoders denoising", "capybaras"):
        assert np.array_equal(_scores(retriever, q), fresh.scores(q))
    assert retriever.unknown(["Capybara", "autoencoders"]) == ["Capybara"]


def test_each_new_version_saves_the_bm25_of_its_own_chunks(tmp_path, corpus_copy, fake_embedder):
    idx = tmp_path / "idx"
    build([corpus_copy], idx, fake_embedder)
    (corpus_copy / "new.md").write_text("# Owls\nOwls hunt capybaras at night.")
    build([corpus_copy], idx, fake_embedder)
    retriever = Retriever(faiss_store.open_index(idx, embedder_name="fake-embedder"), fake_embedder)
    assert retriever.unknown(["Capybaras"]) == []
    assert _scores(retriever, "capybaras").max() > 0


def test_an_index_saved_before_bm25_was_still_loads_and_builds_it(tmp_path, corpus_copy, fake_embedder):
    import shutil

    idx = tmp_path / "idx"
    build([corpus_copy], idx, fake_embedder)
    live = faiss_store.current_version(idx)
    m = json.loads((live / "manifest.json").read_text())
    del m["bm25"]  # as every version written before this change
    (live / "manifest.json").write_text(json.dumps(m))
    shutil.rmtree(live / "bm25")
    retriever = Retriever(faiss_store.open_index(idx, embedder_name="fake-embedder"), fake_embedder)
    assert retriever.bm25.scores("autoencoders").max() > 0
    assert retriever.search("autoencoders", k=2)
    # and the next build saves one
    (corpus_copy / "new.md").write_text("# Owls\nOwls hunt at night.")
    build([corpus_copy], idx, fake_embedder)
    assert (faiss_store.current_version(idx) / "bm25").is_dir()


def test_a_saved_bm25_of_other_parameters_is_rebuilt(tmp_path, corpus_copy, fake_embedder, monkeypatch):
    from rag import bm25

    idx = tmp_path / "idx"
    build([corpus_copy], idx, fake_embedder)
    monkeypatch.setattr(bm25, "bm25_params", lambda: {"format": 1, "stemmer": "", "bm25s": "9.9"})
    store = faiss_store.open_index(idx, embedder_name="fake-embedder")
    assert store.saved_bm25() is None
    assert Retriever(store, fake_embedder).bm25.scores("autoencoders").max() > 0


def test_a_damaged_saved_bm25_is_a_damaged_version(tmp_path, corpus_copy, fake_embedder):
    idx = tmp_path / "idx"
    build([corpus_copy], idx, fake_embedder)
    live = faiss_store.current_version(idx)
    victim = sorted((live / "bm25").iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:-1] + b"\0")
    with pytest.raises(StoreError, match="bm25.*corrupted.*rag index --rebuild"):
        faiss_store.open_index(idx, embedder_name="fake-embedder")
    victim.unlink()
    with pytest.raises(StoreError, match="bm25.*missing"):
        faiss_store.open_index(idx, embedder_name="fake-embedder")


def test_an_unchanged_file_is_read_again_when_its_reader_changed(tmp_path, corpus_copy, fake_embedder, monkeypatch):
    from rag import readers

    (corpus_copy / "page.html").write_text("<html><body><ul><li>one</li><li>two</li></ul></body></html>")
    idx = tmp_path / "idx"
    build([corpus_copy], idx, fake_embedder)
    assert len(build([corpus_copy], idx, fake_embedder).unchanged) == 6
    monkeypatch.setitem(readers.VERSIONS, "html", readers.version("html") + 1)
    again = build([corpus_copy], idx, fake_embedder)
    assert again.updated == ["page.html"] and len(again.unchanged) == 5


def test_a_files_tail_of_a_batch_or_more_is_embedded_as_the_file_ends(tmp_path, corpus_copy, monkeypatch):
    # the tail a kill as the next file is read would lose: embedded at the file's end when it
    # fills a model batch or two, else it waits for the next files' chunks (FLUSH_SECONDS)
    from conftest import FakeEmbedder

    monkeypatch.setattr(index, "EMBED_BATCH", 10_000)  # no batch ever fills: only tails are embedded
    monkeypatch.setattr(index, "FLUSH_SECONDS", 3600.0)
    ends = FakeEmbedder()
    monkeypatch.setattr(index, "FILE_TAIL_FLUSH", 1)
    r = build([corpus_copy], tmp_path / "a", ends)
    assert ends.calls == len(r.added) == 5 and ends.embedded == r.n_chunks
    waits = FakeEmbedder()
    monkeypatch.setattr(index, "FILE_TAIL_FLUSH", 10_000)
    r = build([corpus_copy], tmp_path / "b", waits)
    assert waits.calls == 1 and waits.embedded == r.n_chunks  # the small files' chunks in one batch
