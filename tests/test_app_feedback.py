"""Feedback in the chat: a thumbs up or down on an answer, the right answer after a thumbs-down,
saved per user with the turn; a conversation reopened can be rated too; the chat's /feedback API
(unit here, over the running app with gradio_client at the end)."""
import pytest

from rag import RAG
from rag.feedback import FeedbackStore, export_cases
from rag.history import History
from rag.testing import HashEmbedder, ScriptedGenerator
from rag.transcript import question_index
from rag.web.chat import respond
from rag.workspace import ASK_CORRECTION, SAVED, ChatService


def _service(tmp_path, outputs, history=True):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "owls.md").write_text("# Owls\n\nOwls hunt small rodents at night and sleep by day.\n")
    rag = RAG(index=str(tmp_path / "index"), corpus=str(corpus), collections=str(tmp_path / "collections"),
              embedder=HashEmbedder(), generator=ScriptedGenerator(outputs), guards="small", min_score=-1)
    rag.index()
    return ChatService(rag=rag, history=History(tmp_path / "history.db") if history else None)


def _ask(service, question, chat, subjects, cid, user):
    """One exchange as the page runs it: the question shown first, then answered and saved."""
    chat = [*chat, {"role": "user", "content": question}]
    asked, saved = len(chat) - 1, {"id": cid}

    def save(answer):
        saved["id"], subjects[asked] = service.answered(saved["id"], answer, user=user)

    *_, (_, chat, _) = respond(service, question, chat, [], "few_shot", 4, shown=True, user=user, on_answer=save)
    return chat, saved["id"]


def test_thumbs_and_a_correction_are_saved_with_the_turn_per_user(tmp_path):
    service = _service(tmp_path, ["Owls hunt small rodents at night [1].", "Owls sleep at noon [1]."])
    subjects = {}
    chat, cid = _ask(service, "What do owls hunt?", [], subjects, None, "alice")
    chat, cid = _ask(service, "When do owls sleep?", chat, subjects, cid, "alice")
    # each answer is several messages (the answer, "Sources", a block per source); a thumb names its first
    second_at = next(i for i, m in enumerate(chat) if i and m["role"] == "user")
    assert sorted(subjects) == [0, second_at] and question_index(chat, 1) == 0
    assert question_index(chat, second_at - 1) == 0 and question_index(chat, second_at + 1) == second_at
    first, second = subjects[0], subjects[question_index(chat, len(chat) - 1)]

    assert service.rate_answer(first, "up", user="alice") == SAVED
    assert service.rate_answer(second, "down", user="alice") == ASK_CORRECTION
    assert service.correct_answer(second, "Owls sleep by day.", user="alice") == SAVED
    up, down = service.feedback.list(owner="alice")
    turns = service.history.numbered_turns(cid, owner="alice")
    assert (up.rating, up.question, up.conversation, up.turn) == ("up", "What do owls hunt?", cid, turns[0][0])
    assert (down.rating, down.correction, down.answer) == ("down", "Owls sleep by day.", "Owls sleep at noon [1].")
    assert down.model == "scripted" and down.index_version.startswith("v") and down.collection == "default"
    assert down.citations == [{"source": "owls.md", "chunk_id": "owls.md#0"}] and down.turn == turns[1][0]
    assert service.feedback.list(owner="bob") == [] and service.feedback.list(owner="") == []

    # rating the same answer again changes its rating; a thumb clicked again takes it back
    assert service.rate_answer(first, "down", user="alice") == ASK_CORRECTION
    assert [f.rating for f in service.feedback.list(owner="alice")] == ["down", "down"]
    assert service.rate_answer(first, None, user="alice") == "Rating taken back."
    assert [f.id for f in service.feedback.list()] == [down.id]
    [case] = export_cases(service.feedback.list()).cases
    assert case["question"] == "When do owls sleep?" and case["answers"] == ["Owls sleep by day."]


def test_a_reopened_conversation_can_be_rated(tmp_path):
    service = _service(tmp_path, ["Owls hunt small rodents at night [1]."])
    chat, cid = _ask(service, "What do owls hunt?", [], {}, None, None)
    again = ChatService(rag=service.rag, history=History(tmp_path / "history.db"))  # a restart
    messages, _, _, subjects = again.reopen(cid)
    assert messages == chat and list(subjects) == [0]
    assert again.correct_answer(subjects[question_index(messages, 1)], "Mice and voles.") == SAVED
    [fb] = again.feedback.list(owner="")
    assert (fb.rating, fb.correction, fb.user, fb.conversation) == ("down", "Mice and voles.", None, cid)


def test_what_is_not_an_answer_cannot_be_rated_and_errors_are_one_line(tmp_path):
    service = _service(tmp_path, ["Owls hunt small rodents at night [1]."])
    chat = [{"role": "assistant", "content": "⚠️ the question is empty"}]
    assert question_index(chat, 0) is None and question_index(chat, 5) is None and question_index(chat, "x") is None
    assert service.rate_answer(None, "up") == "⚠️ only an answer can be rated"
    assert service.correct_answer(None, "x") == "⚠️ rate an answer with a thumbs-down first"
    subjects = {}
    _ask(service, "What do owls hunt?", [], subjects, None, None)
    note = service.correct_answer(subjects[0], "y" * 2001)
    assert note.startswith("⚠️ not saved: the correction is 2001 characters long") and "\n" not in note
    assert service.feedback.list() == []


def test_without_a_history_the_chat_says_feedback_is_not_saved(tmp_path):
    service = _service(tmp_path, ["Owls hunt small rodents at night [1]."], history=False)
    subjects = {}
    _ask(service, "What do owls hunt?", [], subjects, None, None)
    assert service.feedback is None
    note = service.rate_answer(subjects[0], "up")
    assert note.startswith("⚠️ not saved: feedback is not saved in this app") and "conversation history" in note


def test_the_feedback_api_saves_and_refuses_with_one_line(tmp_path):
    from rag.errors import ConfigError, QueryError

    service = _service(tmp_path, [])
    d = service.api_feedback("What do owls hunt?", "Owls hunt fish [1].", "down", "Small rodents.", None,
                             [{"n": 1, "source": "owls.md", "chunk_id": "owls.md#0", "text": "Owls hunt ..."}],
                             user="alice")
    assert d == {"saved": True, "id": d["id"]}
    fb = service.feedback.get(d["id"], user="alice")
    assert (fb.via, fb.model, fb.collection, fb.correction) == ("api", "scripted", "default", "Small rodents.")
    assert fb.index_version.startswith("v") and fb.citations == [{"source": "owls.md", "chunk_id": "owls.md#0"}]
    for args, error, message in (
            (("q", "a", "sideways"), QueryError, "rating must be \"up\" or \"down\""),
            (("q", "a", "down", "z" * 2001), QueryError, "the limit is 2000"),
            (("q", "a", "down", None, 7), QueryError, "collection must be a collection's name"),
            (("q", "a", "down", None, "nope"), ConfigError, "nope"),
            (("q", {"x": 1}, "up"), QueryError, "the answer must be text")):
        with pytest.raises(error, match=message):
            service.api_feedback(*args, user="alice")
    assert len(service.feedback.list()) == 1


@pytest.mark.e2e
def test_the_chat_api_takes_feedback_beside_ask(chat_app):
    """Through the running app: /ask, then /feedback on its answer with /ask's citations; the
    export makes a case of the correction; a bad rating is one line."""
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    client = Client(chat_app.url, verbose=False)
    d = client.predict("What is LoRA?", "few_shot", 4, None, api_name="/ask")
    question = "What is LoRA? (feedback API)"
    saved = client.predict(question, d["answer"], "down", "Low-rank adaptation of large language models.",
                           None, d["citations"], api_name="/feedback")
    assert saved == {"saved": True, "id": saved["id"]}
    store = FeedbackStore(chat_app.corpus.parent / "history.db")
    fb = store.get(saved["id"])
    assert (fb.via, fb.answer, fb.collection) == ("api", d["answer"], "default")
    assert fb.model.startswith("SmolLM2") and fb.index_version.startswith("v")
    assert fb.citations == [{"source": c["source"], "chunk_id": c["chunk_id"]} for c in d["citations"]]
    [case] = [c for c in export_cases(store.list()).cases if c["question"] == question]
    assert case["answers"] == ["Low-rank adaptation of large language models."]
    with pytest.raises(AppError) as info:
        client.predict("q", "a", "sideways", None, None, None, api_name="/feedback")
    assert "rating must be \"up\" or \"down\"" in str(info.value) and "\n" not in str(info.value).strip()


@pytest.mark.e2e
def test_feedback_through_the_api_is_saved_per_signed_in_user(secure_app):
    import time

    from gradio_client import Client
    from gradio_client.exceptions import AppError

    from conftest import SECURE_USERS

    def send(user, *args):
        client = Client(secure_app.url, auth=(user, SECURE_USERS[user]), verbose=False)
        for _ in range(6):  # the app is shared with the queue tests: a busy queue is asked again
            try:
                return client.predict(*args, api_name="/feedback")
            except AppError as e:
                if "busy" not in str(e):
                    raise
                time.sleep(10)
        raise AssertionError("the queue stayed busy")

    saved = send("alice", "Who keeps the key? (alice's feedback)", "Nobody.", "down", "Alice does.", None, None)
    store = FeedbackStore(secure_app.corpus.parent / "history.db")
    assert store.get(saved["id"], user="alice").correction == "Alice does."
    with pytest.raises(Exception, match="there is no feedback"):
        store.get(saved["id"], user="bob")
    up = send("bob", "What is LoRA? (bob's feedback)", "Low-rank adaptation [1].", "up", None, None, None)
    assert store.get(up["id"], user="bob").user == "bob"
    with pytest.raises(AppError, match="collection") as info:  # not one bob may ask: the error /ask gives
        send("bob", "q", "a", "up", None, "alice-only", None)
    assert "\n" not in str(info.value).strip()
