"""Collections: names checked in one place, folders under one root, one RAG each sharing the
models; the chat service asks, adds to and deletes them."""
import threading

import pytest

from rag import RAG
from rag.collections import DEFAULT, CollectionRAGs, Collections, check_name, milvus_name
from rag.config import Settings
from rag.errors import ConfigError
from rag.testing import HashEmbedder, ScriptedGenerator
from rag.types import DraftText


@pytest.fixture
def cols(tmp_path):
    return Collections(tmp_path / "collections", default_index=tmp_path / "index",
                       default_corpus=tmp_path / "corpus")


@pytest.mark.parametrize("name", ["../etc", "a/b", "a\\b", "..", ".trash", "📚", "notes📚", "x" * 500,
                                  "", " ", "Work", "work\n", "-x", None, 7, "a b", "café"])
def test_bad_names_are_refused_in_one_line(cols, name):
    with pytest.raises(ConfigError) as info:
        check_name(name)
    message = str(info.value)
    assert message.startswith("invalid collection name") and "\n" not in message and len(message) < 200
    with pytest.raises(ConfigError):
        cols.create(name)
    with pytest.raises(ConfigError):
        cols.get(name or "x/")  # "" is the default collection, asked for by no name
    assert list(cols.root.parent.iterdir()) == []  # nothing was made, anywhere


def test_create_list_share_and_delete(cols, tmp_path):
    work = cols.create("work", owner="alice")
    assert work.corpus == cols.root / "work" / "corpus" and work.corpus.is_dir()
    assert work.index.parent == cols.root / "work"
    cols.create("family", owner="bob")
    cols.create("team_1", owner="bob", shared=True)
    assert [c.name for c in cols.list(user="alice")] == [DEFAULT, "team_1", "work"]
    assert [c.name for c in cols.list(user="bob")] == [DEFAULT, "family", "team_1"]
    assert [c.name for c in cols.list()] == [DEFAULT, "family", "team_1", "work"]  # no sign-in
    with pytest.raises(ConfigError, match="no collection named 'work'"):  # reads as missing
        cols.get("work", user="bob")
    with pytest.raises(ConfigError, match="only they can delete"):
        cols.delete("team_1", user="alice")
    with pytest.raises(ConfigError, match="already exists"):
        cols.create("work")
    with pytest.raises(ConfigError, match="cannot be deleted"):
        cols.delete(DEFAULT)
    (work.corpus / "plan.md").write_text("# Plan\n")
    trashed = cols.delete("work", user="alice")
    assert (trashed / "corpus" / "plan.md").read_text() == "# Plan\n"  # moved, not deleted
    assert trashed.is_relative_to(cols.root / ".trash")
    again = cols.create("work", owner="alice")
    assert again.uid != work.uid and not list(again.corpus.iterdir())
    assert cols.set_shared("family", True, user="bob").shared


def test_a_link_in_the_root_cannot_lead_outside(cols, tmp_path):
    outside = tmp_path / "secrets"
    (outside / "corpus").mkdir(parents=True)
    (outside / "collection.json").write_text('{"name": "evil"}')
    cols.root.mkdir(parents=True)
    (cols.root / "evil").symlink_to(outside)
    with pytest.raises(ConfigError, match="not a folder under"):
        cols.get("evil")
    assert [c.name for c in cols.list()] == [DEFAULT]


def test_settings_point_under_the_root_and_milvus_names_differ(cols):
    base = Settings.load(index=str(cols.default.index), corpus=str(cols.default.corpus),
                         collections=str(cols.root), store="milvus", milvus_uri="http://127.0.0.1:19530")
    cols.create("a-b")
    cols.create("a_b")
    assert cols.settings_for(base, None) is base
    ab = cols.settings_for(base, "a-b")
    assert ab.index == str(cols.root / "a-b" / "index") and ab.corpus == str(cols.root / "a-b" / "corpus")
    assert ab.milvus_collection != cols.settings_for(base, "a_b").milvus_collection
    assert milvus_name("rag", "a-b").replace("_", "").isalnum()


def _rag(tmp_path, outputs):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "owls.md").write_text("# Owls\n\nOwls hunt small rodents at night and sleep by day.\n")
    rag = RAG(index=str(tmp_path / "index"), corpus=str(corpus), collections=str(tmp_path / "collections"),
              embedder=HashEmbedder(), generator=ScriptedGenerator(outputs), guards="small", min_score=-1)
    rag.index()
    return rag


def test_each_collection_answers_from_its_own_documents(tmp_path):
    base = _rag(tmp_path, ["Owls hunt small rodents at night [1].", "Lathes cut spinning metal stock [1]."])
    cols = Collections.from_settings(base.settings)
    shop = cols.create("shop")
    (shop.corpus / "lathe.md").write_text("# Lathes\n\nA lathe cuts spinning metal stock with a fixed tool.\n")
    rags = CollectionRAGs(base, cols)
    rags.get("shop").index()
    owls = rags.get(None).ask("What do owls hunt at night?")
    lathe = rags.get("shop").ask("What does a lathe cut?")
    assert {h.chunk.source for h in owls.hits} == {"owls.md"}
    assert {h.chunk.source for h in lathe.hits} == {"lathe.md"}
    shop_rag = rags.get("shop")
    assert shop_rag.embedder is base.embedder and shop_rag.generator is base.generator
    assert shop_rag._model_lock is base._model_lock  # one generation at a time across collections
    assert rags.get("shop") is shop_rag


def test_deleting_the_collection_being_asked(tmp_path):
    base = _rag(tmp_path, ["A lathe cuts spinning metal stock [1]."])
    cols = Collections.from_settings(base.settings)
    shop = cols.create("shop")
    (shop.corpus / "lathe.md").write_text("# Lathes\n\nA lathe cuts spinning metal stock with a fixed tool.\n")
    rags = CollectionRAGs(base, cols)
    rags.get("shop").index()
    stream = rags.get("shop").stream("What does a lathe cut?", drafts=True)
    pieces = iter(stream)
    first = next(pieces)  # the answer is being written ...
    cols.delete("shop")  # ... when its collection is deleted
    rest = [p for p in pieces if not isinstance(p, DraftText)]  # the checked text, after the draft
    assert "".join(rest).startswith("A lathe") and stream.answer.hits[0].chunk.source == "lathe.md"
    with pytest.raises(ConfigError, match="no collection named 'shop'"):
        rags.get("shop")


def test_ask_takes_a_collection(tmp_path, monkeypatch):
    from rag import pipeline

    base = _rag(tmp_path, ["A lathe cuts spinning metal stock [1]."])
    shop = Collections.from_settings(base.settings).create("shop")
    (shop.corpus / "lathe.md").write_text("# Lathes\n\nA lathe cuts spinning metal stock with a fixed tool.\n")
    monkeypatch.setitem(pipeline._DEFAULTS, "", base)
    monkeypatch.setattr(pipeline, "_COLLECTIONS", {})
    pipeline._COLLECTIONS[""] = CollectionRAGs(base, Collections.from_settings(base.settings))
    pipeline._COLLECTIONS[""].get("shop").index()
    answer = pipeline.ask("What does a lathe cut?", collection="shop")
    assert answer.hits[0].chunk.source == "lathe.md" and "lathe" in answer.text.lower()
    with pytest.raises(ConfigError, match="invalid collection name"):
        pipeline.ask("What?", collection="../index")
    with pytest.raises(ConfigError, match="not both"):
        pipeline.ask("What?", collection="shop", index=str(tmp_path / "index"))


def test_service_uploads_into_a_collection_two_at_once(tmp_path):
    from rag.workspace import ChatService

    base = _rag(tmp_path, [])
    service = ChatService(rag=base)
    service.create_collection("shop", user=None)
    ups = []
    for i in range(2):  # two tabs upload a file of the same name at the same moment
        (tmp_path / f"tab{i}").mkdir()
        f = tmp_path / f"tab{i}" / "notes.md"
        f.write_text(f"# Notes {i}\n\nTab {i} wrote about gear number {i} and its teeth.\n")
        ups.append(f)
    reports = [None, None]
    start = threading.Barrier(2)

    def upload(i):
        start.wait()
        reports[i] = service.add_files([ups[i]], collection="shop")

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    added = sorted(n for r in reports for n in r.added)
    assert added == ["notes-2.md", "notes.md"], [r.rejected for r in reports]
    corpus = tmp_path / "collections" / "shop" / "corpus"
    texts = sorted(p.read_text() for p in corpus.iterdir())
    assert texts == sorted(u.read_text() for u in ups)  # neither overwrote the other
    sources = {c.source for c in service.get("shop").store.chunks}
    assert sources == {"notes.md", "notes-2.md"}
    assert not any(p.name.startswith(".") for p in corpus.iterdir())  # no part files left
    assert {c.source for c in service.get(None).store.chunks} == {"owls.md"}
    assert "shop" in service.status("shop") and "2 documents" in service.status("shop")


def test_service_keeps_private_collections_private(tmp_path):
    from rag.workspace import ChatService

    service = ChatService(rag=_rag(tmp_path, []))
    service.create_collection("mine", user="alice")
    assert service.collection_names(user="bob") == [DEFAULT]
    assert service.collection_names(user="alice") == [DEFAULT, "mine"]
    with pytest.raises(ConfigError, match="no collection named"):
        service.get("mine", user="bob")
    up = tmp_path / "x.md"
    up.write_text("# X\n\nBob tries to add this.\n")
    with pytest.raises(ConfigError, match="no collection named"):
        service.add_files([up], collection="mine", user="bob")
    with pytest.raises(ConfigError, match="invalid collection name"):
        service.create_collection("../../etc", user="bob")
    assert "empty: add documents" in service.status("mine", user="alice")


def test_cli_indexes_lists_and_refuses_collections(tmp_path, capsys):
    import json
    import os
    import subprocess
    import sys

    from rag import cli

    root = str(tmp_path / "cols")
    docs = tmp_path / "notes"
    docs.mkdir()
    (docs / "owls.md").write_text("# Owls\nOwls hunt at night and sleep by day.")
    out = subprocess.run([sys.executable, "-m", "rag", "index", str(docs), "--collection", "notes",
                          "--collections", root], capture_output=True, text=True, timeout=300, env={**os.environ})
    assert out.returncode == 0, out.stderr
    assert "collection notes created" in out.stdout and "1 added" in out.stdout
    # the rest needs no model: in this process
    assert cli.main(["collections", "--json", "--collections", root]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(r["name"], r["documents"], r["chunks"]) for r in listed][1:] == [("notes", 1, 1)]
    assert listed[1]["corpus"] == str(docs.resolve())
    args = cli.build_parser().parse_args(["eval", "q.jsonl", "--collection", "notes", "--collections", root])
    assert cli._settings(args).index == str(tmp_path / "cols" / "notes" / "index")
    for argv, message in ((["index", str(docs), "--collection", "../x"], "invalid collection name"),
                          (["ask", "What?", "--collection", "nope"], "no collection named 'nope'"),
                          (["ask", "What?", "--collection", "notes", "--index", "x"], "not both"),
                          (["index", str(tmp_path), "--collection", "notes"], "reads its documents from"),
                          (["collections", "delete", "default"], "cannot be deleted"),
                          (["collections", "create"], "needs a collection name")):
        assert cli.main([*argv, "--collections", root]) == 1
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and err.startswith("error:"), err
    assert cli.main(["collections", "delete", "notes", "--collections", root]) == 0
    assert "moved to" in capsys.readouterr().out and docs.is_dir()  # its folder is the user's, left alone


def test_a_shared_collection_is_read_by_all_and_changed_by_its_owner(tmp_path):
    from rag.workspace import ChatService

    service = ChatService(rag=_rag(tmp_path, []))
    service.create_collection("team", user="alice", shared=True)
    note = tmp_path / "plan.md"
    note.write_text("# Plan\n\nThe team ships the gearbox in March.\n")
    assert service.add_files([note], collection="team", user="alice").added == ["plan.md"]
    assert service.collection_names(user="bob") == [DEFAULT, "team"]
    assert [r[0] for r in service.documents("team", user="bob")] == ["plan.md"]
    for change in (lambda: service.add_files([note], collection="team", user="bob"),
                   lambda: service.remove_document("team", "plan.md", user="bob"),
                   lambda: service.rescan("team", user="bob"),
                   lambda: service.delete_collection("team", user="bob")):
        with pytest.raises(ConfigError, match="belongs to alice|only they can"):
            change()
    assert "removed from the index" in service.remove_document("team", "plan.md", user="alice")
