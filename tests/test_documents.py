"""Managing the documents of an index: listing them, taking one out (to the trash), re-scanning."""
import pytest

from rag import RAG
from rag.documents import list_documents, remove_document, rescan
from rag.errors import ConfigError, StoreError
from rag.testing import HashEmbedder, ScriptedGenerator


@pytest.fixture
def rag(tmp_path):
    corpus = tmp_path / "corpus"
    (corpus / "sub").mkdir(parents=True)
    (corpus / "owls.md").write_text("# Owls\n\nOwls hunt small rodents at night and sleep by day.\n")
    (corpus / "sub" / "lathe.txt").write_text("A lathe cuts spinning metal stock with a fixed tool.\n" * 40)
    r = RAG(index=str(tmp_path / "index"), corpus=str(corpus), embedder=HashEmbedder(),
            generator=ScriptedGenerator([]), min_score=-1)
    r.index()
    return r


def test_documents_are_listed_with_chunks_type_size_and_time(rag, tmp_path):
    docs = {d.source: d for d in list_documents(rag)}
    assert set(docs) == {"owls.md", "sub/lathe.txt"}
    lathe = docs["sub/lathe.txt"]
    assert lathe.type == "txt" and lathe.size == (tmp_path / "corpus" / "sub" / "lathe.txt").stat().st_size
    assert lathe.n_chunks > 1 and docs["owls.md"].n_chunks == 1
    assert lathe.indexed[:4].isdigit() and "T" in lathe.indexed
    assert sum(d.n_chunks for d in docs.values()) == len(rag.store)


def test_a_removed_document_leaves_the_index_and_its_file_goes_to_the_trash(rag, tmp_path):
    trash = tmp_path / "trash"
    before = rag.store.version
    dest = remove_document(rag, "sub/lathe.txt", trash=trash)
    assert not (tmp_path / "corpus" / "sub" / "lathe.txt").exists()
    assert dest.is_relative_to(trash) and dest.parts[-2:] == ("sub", "lathe.txt")
    assert dest.read_text().startswith("A lathe cuts")  # moved, not deleted
    assert rag.store.version != before
    assert {c.source for c in rag.store.chunks} == {"owls.md"}
    assert all(h.chunk.source == "owls.md" for h in rag.search("lathe spinning metal"))
    assert [d.source for d in list_documents(rag)] == ["owls.md"]
    # the last document too: an empty index, which answers "not found" without the model
    remove_document(rag, "owls.md", trash=trash)
    assert list_documents(rag) == [] and len(rag.store) == 0
    assert rag.ask("What do owls hunt?").abstain_code == "empty_index"


@pytest.mark.parametrize("name", ["nope.md", "../index/CURRENT", "/etc/passwd", "", None, "sub"])
def test_only_documents_of_the_index_can_be_removed(rag, tmp_path, name):
    with pytest.raises(ConfigError, match="no document named"):
        remove_document(rag, name, trash=tmp_path / "trash")
    assert len(list_documents(rag)) == 2 and not (tmp_path / "trash").exists()


def test_a_locked_index_puts_the_file_back(rag, tmp_path):
    with rag.vector_store.writer():  # another build holds the index
        with pytest.raises(StoreError, match="another build"):
            remove_document(rag, "owls.md", trash=tmp_path / "trash")
    assert (tmp_path / "corpus" / "owls.md").is_file()
    assert "owls.md" in {d.source for d in list_documents(rag)}


def test_rescan_follows_the_folder(rag, tmp_path):
    corpus = tmp_path / "corpus"
    (corpus / "owls.md").unlink()
    (corpus / "bees.md").write_text("# Bees\n\nBees dance to show where flowers are.\n")
    report = rescan(rag)
    assert report.added == ["bees.md"] and report.removed == ["owls.md"]
    assert {d.source for d in list_documents(rag)} == {"bees.md", "sub/lathe.txt"}
    assert rescan(rag).unchanged == ["bees.md", "sub/lathe.txt"]
