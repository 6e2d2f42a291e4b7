"""Feedback on answers (rag/feedback.py): saved beside the conversations per user, its bounds,
many writers at once, a damaged file, and the `rag eval` cases it exports."""
import json
import sqlite3
import threading

import pytest

from rag.bounds import FEEDBACK_MAX_CORRECTION
from rag.errors import HistoryError, QueryError
from rag.evaluation.data import load_jsonl
from rag.feedback import Feedback, FeedbackStore, export_cases, subject_of
from rag.history import History, TurnRecord


def _fb(rating="down", question="What is LoRA?", **kw):
    kw.setdefault("answer", "LoRA is a kind of cat [1].")
    kw.setdefault("citations", [{"source": "notes.md", "chunk_id": "notes.md#3"}])
    return Feedback(rating=rating, question=question, **kw)


def test_feedback_is_saved_with_the_turn_it_rates_and_read_back_per_user(tmp_path):
    path = tmp_path / "history.db"
    history = History(path)
    cid = history.create(owner="alice", title="LoRA")
    record = TurnRecord(question="What is LoRA?", answer="LoRA is a kind of cat [1].", model="SmolLM2",
                        index_version="v000004", collection="team",
                        citations=[{"n": 1, "source": "notes.md", "chunk_id": "notes.md#3", "text": "LoRA adds ..."}])
    turn = history.add_turn(cid, record, owner="alice")
    store = FeedbackStore(path)  # the same file: the conversations are untouched
    fid = store.add(Feedback(rating="down", user="alice", **subject_of(record, conversation=cid, turn=turn)))
    store.correct(fid, "  Low-rank\nadaptation:   small matrices trained\tbeside frozen weights. ", user="alice")
    fb = FeedbackStore(path).get(fid, user="alice")  # a restart
    assert (fb.rating, fb.correction) == ("down", "Low-rank adaptation: small matrices trained beside frozen weights.")
    assert (fb.question, fb.answer, fb.model, fb.index_version, fb.collection) == \
        ("What is LoRA?", "LoRA is a kind of cat [1].", "SmolLM2", "v000004", "team")
    assert fb.citations == [{"source": "notes.md", "chunk_id": "notes.md#3"}]  # no passage text
    assert (fb.user, fb.conversation, fb.turn, fb.via) == ("alice", cid, turn, "chat") and fb.created > 0
    assert [t.question for t in history.turns(cid, owner="alice")] == ["What is LoRA?"]
    # another user can neither read, change nor take back alice's feedback
    for act in (lambda: store.get(fid, user="bob"), lambda: store.rate(fid, "up", user="bob"),
                lambda: store.correct(fid, "x", user="bob"), lambda: store.remove(fid, user="bob"),
                lambda: store.get(fid)):
        with pytest.raises(HistoryError, match=f"there is no feedback {fid}"):
            act()
    anon = store.add(_fb("up"))
    assert store.get(anon).user is None and [f.id for f in store.list(owner="")] == [anon]
    assert [f.id for f in store.list()] == [fid, anon] and [f.id for f in store.list(owner="alice")] == [fid]
    assert [f.id for f in store.list(collection="team")] == [fid]


def test_a_thumbs_up_drops_the_correction_and_a_rating_can_be_taken_back(tmp_path):
    store = FeedbackStore(tmp_path / "history.db")
    fid = store.add(_fb("down", correction="Low-rank adaptation."))
    assert store.rate(fid, "up").correction == "" and store.get(fid).rating == "up"
    assert store.correct(fid, "Low-rank adaptation.").rating == "down"
    store.remove(fid)
    assert store.list() == []
    with pytest.raises(HistoryError):
        store.remove(fid)


@pytest.mark.parametrize("fb, message", [
    (_fb("meh"), "rating must be \"up\" or \"down\", not 'meh'"),
    (_fb(None), "rating must be \"up\" or \"down\", not 'None'"),
    (_fb("down", correction="x" * (FEEDBACK_MAX_CORRECTION + 1)),
     f"the correction is {FEEDBACK_MAX_CORRECTION + 1} characters long; the limit is {FEEDBACK_MAX_CORRECTION}"),
    (_fb("up", correction="Low-rank adaptation."), "a correction goes with a thumbs-down"),
    (_fb("down", correction=42), "the correction must be text"),
    (_fb("down", question="   "), "the question is empty"),
    (_fb("down", question=["q"]), "the question must be text"),
    (_fb("down", answer="a" * 20001), "the answer is 20001 characters long; the limit is 20000"),
    (_fb("down", citations="notes.md"), "citations must be a list"),
    (_fb("down", citations=[{"source": 3}]), "citation 1 is not an object with a source"),
    (_fb("down", citations=[{"source": "a.md"}] * 51), "51 citations; the limit is 50"),
    (_fb("down", collection="c" * 2000), "the collection is 2000 characters long"),
])
def test_bad_feedback_is_refused_with_one_line(tmp_path, fb, message):
    store = FeedbackStore(tmp_path / "history.db")
    with pytest.raises(QueryError) as info:
        store.add(fb)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert store.list() == []
    fid = store.add(_fb("down"))
    with pytest.raises(QueryError, match="the correction is empty"):
        store.correct(fid, " \n ")
    with pytest.raises(QueryError, match="the limit is 2000"):
        store.correct(fid, "y" * 2001)
    assert store.get(fid).correction == ""


def test_many_writers_at_once_lose_nothing(tmp_path):
    """Tabs (threads, each its own connection) and the conversations' History write the same
    file at once: every rating and every correction is kept."""
    path = tmp_path / "history.db"
    stores, history = [FeedbackStore(path) for _ in range(4)], History(path)
    cid = history.create(title="busy")
    start = threading.Barrier(5)
    errors = []

    def tab(i):
        start.wait()
        try:
            for n in range(12):
                fid = stores[i].add(_fb("down", question=f"question {n} of tab {i}", user=f"user{i}"))
                stores[i].correct(fid, f"answer {n} of tab {i}", user=f"user{i}")
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    def conversation():
        start.wait()
        for n in range(12):
            history.add_turn(cid, TurnRecord(question=f"turn {n}", answer="a"))

    threads = [threading.Thread(target=tab, args=(i,)) for i in range(4)] + [threading.Thread(target=conversation)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    check = FeedbackStore(path)
    for i in range(4):
        got = [(f.question, f.correction) for f in check.list(owner=f"user{i}")]
        assert got == [(f"question {n} of tab {i}", f"answer {n} of tab {i}") for n in range(12)]
    assert len(history.turns(cid)) == 12
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_damaged_file_is_set_aside_like_the_history(tmp_path):
    path = tmp_path / "history.db"
    path.write_bytes(b"this is not a database at all" * 100)
    store = FeedbackStore(path)
    assert "damaged" in store.notice and "\n" not in store.notice
    assert [p.name for p in tmp_path.iterdir() if ".damaged-" in p.name]
    fid = store.add(_fb("up"))
    assert FeedbackStore(path).get(fid).rating == "up" and History(path).notice == ""


def test_a_write_that_fails_is_one_line_saying_nothing_was_saved(tmp_path):
    store = FeedbackStore(tmp_path / "history.db")
    with sqlite3.connect(store.path) as db:
        db.execute("DROP TABLE feedback")  # (as if the disk refused the write)
    with pytest.raises(HistoryError, match=r"^the feedback could not be saved \(no such table: feedback\)$"):
        store.add(_fb("up"))


# ---------------------------------------------------------------- feedback as `rag eval` cases


def test_a_correction_is_a_case_and_the_export_loads_as_a_question_set(tmp_path):
    store = FeedbackStore(tmp_path / "history.db")
    wrong = store.add(_fb("down", correction="Low-rank adaptation.", user="alice", model="SmolLM2",
                          index_version="v000004"))
    store.add(_fb("down", question="What is QLoRA?"))  # no correction: no gold, no case
    store.add(_fb("up", question="What is RAG?", answer="Retrieval-augmented generation [1]."))
    out = export_cases(store.list())
    assert out.summary() == "1 case (left out: 1 thumbs-down without a correction, 1 thumbs-up (add them with --up))"
    [case] = out.cases
    assert case["id"] == f"feedback-{wrong}" and case["question"] == "What is LoRA?"
    assert (case["answers"], case["sources"], case["answerable"], case["split"]) == \
        (["Low-rank adaptation."], [], True, "test")
    assert case["feedback"]["answer"] == "LoRA is a kind of cat [1]." and case["feedback"]["cited"] == ["notes.md"]
    assert (case["feedback"]["user"], case["feedback"]["model"], case["feedback"]["index_version"]) == \
        ("alice", "SmolLM2", "v000004")
    file = tmp_path / "feedback.jsonl"
    file.write_text(out.jsonl(), encoding="utf-8")
    evalset = load_jsonl(file)  # no corpus header: asked of an existing index
    assert evalset.docs_dir is None
    [item] = evalset.items
    assert (item.question, item.answers, item.sources, item.answerable, item.split) == \
        ("What is LoRA?", ("Low-rank adaptation.",), (), True, "test")


def test_approvals_become_cases_only_when_asked(tmp_path):
    store = FeedbackStore(tmp_path / "history.db")
    store.add(_fb("up", question="What is RAG?", answer="Retrieval-augmented generation [1][2].",
                  citations=[{"source": "a.md", "chunk_id": "a.md#0"}, {"source": "b.md", "chunk_id": "b.md#1"},
                             {"source": "a.md", "chunk_id": "a.md#2"}]))
    store.add(_fb("up", question="Capital of Zorbania?", answer="Not found in your documents.", abstained=True,
                  citations=[]))
    assert export_cases(store.list()).cases == []
    answered, abstained = export_cases(store.list(), approvals=True, split="dev").cases
    assert (answered["answers"], answered["sources"], answered["answerable"], answered["split"]) == \
        (["Retrieval-augmented generation."], ["a.md", "b.md"], True, "dev")
    assert abstained["answerable"] is False and "answers" not in abstained and abstained["question"] == \
        "Capital of Zorbania?"
    file = tmp_path / "up.jsonl"
    file.write_text(export_cases(store.list(), approvals=True).jsonl(), encoding="utf-8")
    assert [i.answerable for i in load_jsonl(file).items] == [True, False]
    with pytest.raises(QueryError, match="split must be one of dev, test"):
        export_cases(store.list(), split="train")


def test_the_latest_word_on_a_question_wins(tmp_path):
    store = FeedbackStore(tmp_path / "history.db")
    store.add(_fb("down", correction="Low-rank adaptation."))
    latest = store.add(_fb("down", question="what is  lora?", correction="Low-rank adaptation of weights."))
    store.add(_fb("up"))  # an approval, not exported, replaces nothing
    out = export_cases(store.list())
    assert [c["id"] for c in out.cases] == [f"feedback-{latest}"]
    assert out.skipped["replaced by a later rating of the same question"] == 1
    assert json.loads(out.jsonl())["answers"] == ["Low-rank adaptation of weights."]
