"""The chat saves each answered question into the tab's conversation and shows a saved one again,
per user; without a history it still answers."""
from rag.web.chat import respond
from rag.workspace import ChatService
from rag import RAG
from rag.history import History
from rag.testing import HashEmbedder, ScriptedGenerator


def _service(tmp_path, outputs, history=True):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "owls.md").write_text("# Owls\n\nOwls hunt small rodents at night and sleep by day.\n")
    rag = RAG(index=str(tmp_path / "index"), corpus=str(corpus), collections=str(tmp_path / "collections"),
              embedder=HashEmbedder(), generator=ScriptedGenerator(outputs), guards="small", min_score=-1)
    rag.index()
    return ChatService(rag=rag, history=History(tmp_path / "history.db") if history else None)


def _ask(service, question, chat, turns, cid, user):
    saved = {"id": cid}

    def save(answer):
        saved["id"] = service.save_turn(saved["id"], answer, user=user)

    *_, (_, chat, turns) = respond(service, question, chat, turns, "few_shot", 4, user=user, on_answer=save)
    return chat, turns, saved["id"]


def test_answers_are_saved_and_shown_again(tmp_path):
    service = _service(tmp_path, ["Owls hunt small rodents at night [1].", "They sleep by day [1]."])
    chat, turns, cid = _ask(service, "What do owls hunt?", [], [], None, "alice")
    chat, turns, again = _ask(service, "When do they sleep?", chat, turns, cid, "alice")
    assert again == cid
    [(label, listed)] = service.conversation_choices(user="alice")
    assert listed == cid and label == "What do owls hunt? (2)"
    restored, past, collection = ChatService(rag=service.rag, history=History(tmp_path / "history.db")) \
        .conversation(cid, user="alice")
    assert restored == chat and past == turns and collection == "default"
    record = service.history.turns(cid, owner="alice")[0]
    assert record.model == "scripted" and record.index_version.startswith("v") and record.template == "few_shot"
    assert record.citations[0]["text"].startswith("Owls hunt") and record.timings["total"] >= 0
    assert service.conversation_choices(user="bob") == []


def test_without_a_history_nothing_is_saved_and_answers_still_come(tmp_path):
    service = _service(tmp_path, ["Owls hunt small rodents at night [1]."], history=False)
    chat, _, cid = _ask(service, "What do owls hunt?", [], [], None, None)
    assert cid is None and "Owls hunt" in chat[1]["content"]
    assert service.conversation_choices() == []


def test_a_damaged_history_is_announced_in_the_page(tmp_path):
    """The app starts over a damaged file: the page says so, the copy is kept, a new history runs."""
    from rag.web import ui as app

    (tmp_path / "history.db").write_bytes(b"\x00garbage, not SQLite\x00" * 50)
    service = _service(tmp_path, ["Owls hunt small rodents at night [1]."])
    demo = app.build_ui(service)
    notes = [b.value for b in demo.blocks.values() if getattr(b, "elem_id", None) == "history-note"]
    assert len(notes) == 1 and notes[0].startswith("⚠️") and "damaged" in notes[0] and "new history" in notes[0]
    assert any(p.name.startswith("history.db.damaged-") for p in tmp_path.iterdir())
    _, _, cid = _ask(service, "What do owls hunt?", [], [], None, None)
    assert cid is not None and service.conversation_choices()
