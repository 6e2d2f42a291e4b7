"""Saved conversations: per owner, resumable, renamable, deletable, exported; safe with several
writers at once; a damaged file is kept aside and a new history started."""
import dataclasses
import json
import sqlite3
import threading

import pytest

from rag.errors import HistoryError
from rag.history import History, TurnRecord


def _turn(q="What is LoRA?", **kw):
    return TurnRecord(question=q, answer="LoRA trains small matrices [1].", template="few_shot",
                      model="SmolLM2", collection="default", index_version="v000003",
                      timings={"retrieve": 0.01, "total": 2.5},
                      citations=[{"n": 1, "source": "notes.md", "chunk_id": "notes.md#3", "score": 0.61,
                                  "snippet": "LoRA adds ...", "heading": "Models > LoRA", "inferred": False,
                                  "text": "LoRA adds small low-rank matrices to a frozen model."}], **kw)


def test_a_conversation_survives_reopening_with_everything_to_audit_it(tmp_path):
    h = History(tmp_path / "history.db")
    cid = h.create(owner="alice", title="What is LoRA?")
    h.add_turn(cid, _turn(), owner="alice")
    h.add_turn(cid, _turn("What are its disadvantages?"), owner="alice")
    again = History(tmp_path / "history.db")  # a restart
    assert again.notice == ""
    [info] = again.list(owner="alice")
    assert (info.id, info.title, info.n_turns) == (cid, "What is LoRA?", 2)
    turns = again.turns(cid, owner="alice")
    assert [t.question for t in turns] == ["What is LoRA?", "What are its disadvantages?"]
    t = turns[0]
    assert (t.template, t.model, t.index_version, t.timings["total"]) == ("few_shot", "SmolLM2", "v000003", 2.5)
    assert t.citations[0]["text"].startswith("LoRA adds") and t.created > 0
    assert sqlite3.connect(tmp_path / "history.db").execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_conversations_are_their_owners_only(tmp_path):
    h = History(tmp_path / "history.db")
    mine = h.create(owner="alice", title="mine")
    h.create(owner="bob", title="bob's")
    assert [c.title for c in h.list(owner="bob")] == ["bob's"]
    for act in (lambda: h.turns(mine, owner="bob"), lambda: h.rename(mine, "x", owner="bob"),
                lambda: h.delete(mine, owner="bob"), lambda: h.add_turn(mine, _turn(), owner="bob"),
                lambda: h.export_markdown(mine, owner="bob")):
        with pytest.raises(HistoryError, match="no conversation"):
            act()
    assert h.list(owner="alice")[0].title == "mine" and h.turns(mine, owner="alice") == []


def test_rename_delete_and_bad_ids(tmp_path):
    h = History(tmp_path / "history.db")
    cid = h.create(title="")
    assert h.list()[0].title == "New conversation"
    h.rename(cid, "  Notes   on\nLoRA  " + "x" * 300)
    title = h.list()[0].title
    assert title.startswith("Notes on LoRA x") and len(title) == 120 and "\n" not in title
    with pytest.raises(HistoryError, match="cannot be empty"):
        h.rename(cid, "   ")
    for bad in ("abc", None, 10**6, "1; DROP TABLE turns"):
        with pytest.raises(HistoryError, match="no conversation"):
            h.turns(bad)
    h.add_turn(cid, _turn())
    h.delete(cid)
    assert h.list() == []
    with sqlite3.connect(tmp_path / "history.db") as db:
        assert db.execute("SELECT COUNT(*) FROM turns").fetchone()[0] == 0  # its turns went with it


def test_export_is_markdown_with_the_sources(tmp_path):
    h = History(tmp_path / "history.db")
    cid = h.create(title="LoRA")
    h.add_turn(cid, _turn())
    h.add_turn(cid, TurnRecord(question="Capital of Zorbania?", answer="Not found in your documents.",
                               abstained=True, abstain_reason="the documents never mention Zorbania"))
    md = h.export_markdown(cid)
    assert md.startswith("# LoRA\n")
    assert "## 1. What is LoRA?" in md and "LoRA trains small matrices [1]." in md
    assert "- [1] notes.md › Models > LoRA (similarity 0.61)" in md
    assert "  > LoRA adds small low-rank matrices to a frozen model." in md
    assert "template `few_shot`, model `SmolLM2`, collection `default` index v000003, 2.5 s" in md
    assert "*Not answered: the documents never mention Zorbania.*" in md


def test_many_writers_at_once_lose_nothing(tmp_path):
    """Tabs (threads here, each its own connection) and a second process's History on the same
    file write at the same time."""
    path = tmp_path / "history.db"
    histories = [History(path) for _ in range(4)]
    ids = [histories[0].create(title=f"tab {i}") for i in range(4)]
    start = threading.Barrier(4)

    def tab(i):
        start.wait()
        for n in range(15):
            histories[i].add_turn(ids[i], _turn(f"question {n} of tab {i}"))

    threads = [threading.Thread(target=tab, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check = History(path)
    assert check.notice == ""
    for i, cid in enumerate(ids):
        assert [t.question for t in check.turns(cid)] == [f"question {n} of tab {i}" for n in range(15)]
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.mark.parametrize("damage", [b"this is not a database at all" * 100, "truncate"])
def test_a_damaged_file_is_kept_and_a_new_history_started(tmp_path, damage):
    path = tmp_path / "history.db"
    if damage == "truncate":
        h = History(path)
        for i in range(40):
            h.add_turn(h.create(title=f"c{i}"), _turn("x" * 2000))
        with sqlite3.connect(path) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        data = path.read_bytes()
        damage = data[:100] + b"\xff" * 4000 + data[4100:len(data) // 2]
    path.write_bytes(damage)
    h = History(path)
    assert "damaged" in h.notice and "new history" in h.notice and "\n" not in h.notice
    [kept] = [p for p in tmp_path.iterdir() if ".damaged-" in p.name and not p.name.endswith(("-wal", "-shm"))]
    assert kept.read_bytes() == damage  # the copy is the file as it was
    assert h.list() == []
    cid = h.create(title="fresh")
    h.add_turn(cid, _turn())
    assert History(path).turns(cid)[0].question == "What is LoRA?"


def test_a_whole_document_answer_keeps_its_scope_and_coverage_when_saved(tmp_path):
    from rag.turns import stored_answer
    from rag.types import Coverage

    cov = Coverage(scope="summary", document="a.md", chunks_read=3, chunks_total=3, items=2)
    record = TurnRecord(question="Summarise a.md", answer="- one [1]", scope="summary", coverage=cov.to_dict())
    again = TurnRecord.from_dict(json.loads(json.dumps(dataclasses.asdict(record))))
    answer = stored_answer(again)
    assert answer.scope == "summary" and answer.coverage == cov
    assert stored_answer(TurnRecord(question="q", answer="a")).coverage is None  # saved before: none


def test_answer_times_of_a_model_come_from_every_owner_and_nothing_else(tmp_path):
    h = History(tmp_path / "h.db")
    for owner, seconds in (("alice", 2.5), ("bob", 4.0)):
        cid = h.create(owner=owner)
        h.add_turn(cid, dataclasses.replace(_turn(), timings={"total": seconds, "generate": 1.0}), owner=owner)
    h.add_turn(h.create(), dataclasses.replace(_turn(), model="Other.gguf", timings={"total": 30.0, "generate": 9.0}))
    h.add_turn(h.create(), dataclasses.replace(_turn(), timings={}))
    # no model wrote these: a refusal before generation, a whole-document answer
    h.add_turn(h.create(), dataclasses.replace(_turn(), abstained=True, timings={"total": 0.1, "generate": 0.0}))
    h.add_turn(h.create(), dataclasses.replace(_turn(), scope="summary", timings={"total": 9.0, "generate": 0.0}))  # (an answer saved without its times counts for nothing)
    assert sorted(h.answer_seconds("SmolLM2")) == [2.5, 4.0]
    assert h.answer_seconds("SmolLM2", last=1) == [4.0]  # the most recent
    assert h.answer_seconds("Other.gguf") == [30.0] and h.answer_seconds("nope") == []


def test_conversations_are_found_by_title_question_or_answer_and_wildcards_are_literal(tmp_path):
    h = History(tmp_path / "h.db")
    lora = h.create(owner="alice", title="Adapters")
    h.add_turn(lora, _turn("What is LoRA?"), owner="alice")
    gans = h.create(owner="alice", title="GANs 100% explained")
    h.add_turn(h.create(owner="bob", title="lora for bob"), _turn(), owner="bob")
    assert [c.id for c in h.list(owner="alice", search="lora")] == [lora]  # the question; bob's not
    assert [c.id for c in h.list(owner="alice", search="LOW-RANK")] == []
    assert [c.id for c in h.list(owner="alice", search="small matrices")] == [lora]  # the answer
    assert [c.id for c in h.list(owner="alice", search="100%")] == [gans]
    assert h.list(owner="alice", search="%") == [h.get(gans, owner="alice")]  # % is a character
    assert h.list(owner="alice", search="_") == [] and len(h.list(owner="alice", search="  ")) == 2


def test_export_numbers_sources_as_the_chat_does(tmp_path):
    h = History(tmp_path / "h.db")
    cid = h.create()
    cites = [{"n": n, "source": f"{name}.md", "chunk_id": f"{name}.md#0", "score": 0.5, "snippet": name,
              "heading": "", "inferred": False, "text": name} for n, name in ((1, "first"), (3, "third"))]
    h.add_turn(cid, dataclasses.replace(_turn(), answer="Third says so [3]. First agrees [1, 3].", citations=cites))
    md = h.export_markdown(cid)
    # the passage read first is [1], as the chips number it; the sources follow that order
    assert "Third says so [1]. First agrees [2, 1]." in md
    assert md.index("- [1] third.md") < md.index("- [2] first.md")
