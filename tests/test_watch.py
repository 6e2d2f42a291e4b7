"""--watch: changes to a collection's folder are indexed as they happen; dot files are not."""
import time

from rag import RAG
from rag.collections import CollectionRAGs, Collections
from rag.testing import HashEmbedder, ScriptedGenerator
from rag.watch import CorpusWatcher


def _rags(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "owls.md").write_text("# Owls\n\nOwls hunt small rodents at night.\n")
    base = RAG(index=str(tmp_path / "index"), corpus=str(corpus), collections=str(tmp_path / "collections"),
               embedder=HashEmbedder(), generator=ScriptedGenerator([]))
    base.index()
    return CollectionRAGs(base, Collections.from_settings(base.settings))


def _sources(rag):
    try:
        return {c.source for c in rag.store.chunks}
    except Exception:  # noqa: BLE001 - no index yet
        return set()


def _until(check, what):
    for _ in range(300):  # polled, not timed: a loaded machine only takes longer
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"the watcher never {what}")


def test_changes_are_indexed_as_they_happen(tmp_path):
    rags = _rags(tmp_path)
    shop = rags.collections.create("shop")
    watcher = CorpusWatcher(rags, debounce_ms=200, rescan_s=0).start()  # file events only
    try:
        (shop.corpus / "lathe.md").write_text("# Lathe\n\nA lathe cuts spinning metal.\n")
        _until(lambda: _sources(rags.get("shop")) == {"lathe.md"}, "indexed the new file")
        (tmp_path / "corpus" / "bees.md").write_text("# Bees\n\nBees dance.\n")
        _until(lambda: _sources(rags.get(None)) == {"owls.md", "bees.md"}, "indexed the default folder")
        (tmp_path / "corpus" / "owls.md").unlink()
        _until(lambda: _sources(rags.get(None)) == {"bees.md"}, "removed the deleted file")
    finally:
        watcher.stop()
    assert not watcher._thread.is_alive()


def test_the_rescan_catches_what_events_missed(tmp_path):
    """A collection made while watching: its first files may land before the watch on its new
    folder is in place; the periodic re-scan indexes them anyway."""
    rags = _rags(tmp_path)
    watcher = CorpusWatcher(rags, debounce_ms=100, rescan_s=0.5).start()
    try:
        garden = rags.collections.create("garden")
        (garden.corpus / "roses.md").write_text("# Roses\n\nRoses want sun.\n")
        _until(lambda: _sources(rags.get("garden")) == {"roses.md"}, "indexed the new collection")
    finally:
        watcher.stop()
    assert [(name, r.added) for name, r in watcher.reports if r.added] == [("garden", ["roses.md"])]


def test_only_changed_collections_are_indexed_and_dot_files_are_not_documents(tmp_path):
    rags = _rags(tmp_path)
    shop = rags.collections.create("shop")
    watcher = CorpusWatcher(rags)
    assert watcher.handle({shop.corpus / ".notes.md.abc.part", shop.index / "CURRENT"}) == []
    (shop.corpus / "lathe.md").write_text("# Lathe\n\nA lathe cuts spinning metal.\n")
    [(name, report)] = watcher.handle({shop.corpus / "lathe.md"})
    assert name == "shop" and report.added == ["lathe.md"]
    assert _sources(rags.get(None)) == {"owls.md"}
