"""The chat app as users and API clients meet it: `python app.py` running with the real models,
asked through gradio_client."""
import re
import time

import pytest

pytestmark = pytest.mark.e2e
LORA_DOC = "deep-learning-and-choosing-a-model.txt"


@pytest.fixture(scope="module")
def client(chat_app):
    from gradio_client import Client

    return Client(chat_app.url, verbose=False)


def test_ask_endpoint_returns_the_answer_with_its_sources(client):
    d = client.predict("What is LoRA?", "few_shot", 4, None, api_name="/ask")
    assert d["answer"].strip() and not d["abstained"]
    assert d["hits"][0]["source"] == LORA_DOC
    sources = {c["source"] for c in d["citations"]}
    assert LORA_DOC in sources
    for c in d["citations"]:
        assert c["text"] and c["score"] > 0 and c["chunk_id"].startswith(c["source"] + "#")
        assert all(sentence in c["text"] for sentence in c["supporting"])  # the viewer's highlights
    assert any(c["supporting"] for c in d["citations"])
    # every [n] marker in the answer names a listed source
    markers = {int(n) for group in re.findall(r"\[(\d+(?:\s*,\s*\d+)*)\]", d["answer"])
               for n in group.split(",")}
    listed = {c["n"] for c in d["citations"]}
    assert markers & set(range(1, len(d["hits"]) + 1)) <= listed


def test_ask_endpoint_answers_a_whole_collection_question_with_its_coverage(client):
    d = client.predict("Which files talk about transfer learning?", "auto", 4, None, None, None, api_name="/ask")
    assert d["scope"] == "documents" and d["template"] == "survey" and not d["abstained"]
    assert d["coverage"]["complete"] and d["coverage"]["chunks_read"] == d["coverage"]["chunks_total"] > 20
    assert len(d["items"]) == d["coverage"]["documents_found"] >= 2
    d = client.predict("Summarise this", "auto", 4, None, None, "deep-learning-overview.md", api_name="/ask")
    assert d["scope"] == "summary" and d["coverage"]["document"] == "deep-learning-overview.md"
    assert {c["source"] for c in d["citations"]} == {"deep-learning-overview.md"}


def test_follow_up_question_uses_the_history(client):
    history = [["What are transformer networks?", "Networks built on self-attention [1]."]]
    d = client.predict("What are its disadvantages?", "zero_shot", 4, history, api_name="/ask")
    assert d["template"] == "zero_shot"
    assert any("ransformer" in h["text"] for h in d["hits"][:2])


def test_bad_requests_get_one_line_errors(client):
    from gradio_client.exceptions import AppError

    for question, expected in (("   ", "the question is empty"),
                               ("why? " * 2000, "characters long")):
        with pytest.raises(AppError, match=expected) as info:
            client.predict(question, "few_shot", 4, None, api_name="/ask")
        assert "Traceback" not in str(info.value) and "\n" not in str(info.value).strip()
    with pytest.raises(AppError, match="unknown template"):
        client.predict("What is LoRA?", "poetry", 4, None, api_name="/ask")


def test_ask_arguments_are_held_to_the_page_bounds(client):
    """top_k=-5 or 10**9 packed 53-56 passages; every argument now has the slider's bounds."""
    from gradio_client.exceptions import AppError

    for args, expected in ((("What is LoRA?", "few_shot", -5, None), "from 1 to 12, not -5"),
                           (("What is LoRA?", "few_shot", 10**9, None), "from 1 to 12, not 1000000000"),
                           (("What is LoRA?", "few_shot", 4, [["q"]] * 3), "not a [question, answer] pair"),
                           (("What is LoRA?", "few_shot", 4, [["q", "a"]] * 50), "history has 50 turns"),
                           ((None, "few_shot", 4, None), "the question must be text")):
        with pytest.raises(AppError) as info:
            client.predict(*args, api_name="/ask")
        assert expected in str(info.value) and "\n" not in str(info.value).strip()
    d = client.predict("What is the capital of Zorbania?", "few_shot", 12, None, api_name="/ask")
    assert d["abstained"] and 4 < len(d["hits"]) <= 12  # the slider's top is allowed (no LLM call here)


def test_an_upload_shows_its_progress_and_can_be_cancelled(chat_app, tmp_path):
    """A 1.5 MB manual takes a while to embed on two cores; its progress shows and Cancel stops
    it before anything is committed: the file is not kept, the index is as before."""
    import random

    from gradio_client import Client, handle_file

    rng = random.Random(1)
    words = "flux gear spindle rotor valve piston bearing shaft coil magnet lever gasket".split()
    big = tmp_path / "huge-manual.txt"
    big.write_text("\n".join(" ".join(rng.choice(words) for _ in range(12)) + "." for _ in range(20000)))
    uploader = Client(chat_app.url, verbose=False)  # one session: its Cancel stops its upload
    _, before = uploader.predict([], api_name="/add_documents")  # the header: index version, counts
    job = uploader.submit([handle_file(str(big))], api_name="/add_documents")
    seen, deadline = set(), time.monotonic() + 120
    while "embedding" not in seen and time.monotonic() < deadline and not job.done():
        seen |= {p.desc for p in job.status().progress_data or []}
        time.sleep(0.1)
    assert {"reading", "embedding"} <= seen, seen  # the page shows these as progress bars
    t0 = time.monotonic()
    note, status = uploader.predict(api_name="/cancel_upload")
    assert note == "Upload cancelled: nothing from it was added." and time.monotonic() - t0 < 30
    note, _ = job.result(timeout=60)
    assert note.startswith("Upload cancelled") and "huge-manual.txt** not added: upload cancelled" in note
    assert not (chat_app.corpus / big.name).exists() and status == before


def test_uploads_are_indexed_at_once_and_bad_files_are_refused(chat_app, client, tmp_path):
    from gradio_client import handle_file

    before = {p.name: p.read_bytes() for p in chat_app.corpus.iterdir()}
    new = tmp_path / "zorblax-capacitors.md"
    new.write_text("# Zorblax capacitors\n\n## Maintenance\n\nA zorblax capacitor stores flux for "
                   "starship engines. It must be recharged with frobnium paste every 300 light years.\n")
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4\nthis is not really a pdf")
    exe = tmp_path / "tool.exe"
    exe.write_bytes(b"MZ\x90\x00\x03")
    clash = tmp_path / LORA_DOC  # same name as a corpus file, different content
    clash.write_text("Zorblax wiring notes: the red lead goes to the flux terminal.\n")

    note, status = client.predict([handle_file(str(p)) for p in (new, broken, exe, clash)],
                                  api_name="/add_documents")
    assert "**zorblax-capacitors.md** is indexed" in note
    assert "**deep-learning-and-choosing-a-model-2.txt** is indexed" in note
    assert re.search(r"\*\*broken\.pdf\*\* not added: .*(PDF|pdf)", note)
    assert "**tool.exe** not added: unsupported file type '.exe'" in note
    assert f"{len(before) + 2} documents" in status

    # nothing already there was overwritten; the good files were saved, the bad ones were not
    after = {p.name for p in chat_app.corpus.iterdir()}
    assert after == set(before) | {"zorblax-capacitors.md", "deep-learning-and-choosing-a-model-2.txt"}
    assert all((chat_app.corpus / name).read_bytes() == data for name, data in before.items())

    note, _ = client.predict([handle_file(str(new))], api_name="/add_documents")
    assert "already in your documents" in note

    d = client.predict("How often must a zorblax capacitor be recharged?", "few_shot", 4, None,
                       api_name="/ask")
    assert d["hits"][0]["source"] == "zorblax-capacitors.md"


def test_chain_of_thought_streams_then_collapses_its_reasoning(real_rag):
    from rag.web.chat import respond
    from rag.workspace import ChatService

    service = ChatService(rag=real_rag)  # the session's loaded models
    outputs = list(respond(service, "What are autoencoders used for?", [], [], "cot", 4))
    streamed = [chat[-1]["content"] for _, chat, _ in outputs[1:-1]]
    assert len(streamed) >= 3 and streamed[-1].startswith(streamed[0])  # grew piece by piece
    _, chat, turns = outputs[-1]
    assert chat[0] == {"role": "user", "content": "What are autoencoders used for?"}
    assert turns == [["What are autoencoders used for?", turns[0][1]]] and turns[0][1]
    answers = [m for m in chat[1:] if "metadata" not in m]
    assert answers and not answers[0]["content"].startswith("⚠️")
    reasoning = chat[1]  # before the answer, collapsed until opened
    assert reasoning["metadata"] == {"title": "Reasoning (chain of thought)", "status": "done"}
    assert reasoning["content"].strip()


def _post(url: str, payload: dict) -> tuple[int, dict]:
    """One POST through Gradio's HTTP API as any client can make it (gradio_client would upload
    a local path itself, which is not what a hostile client does)."""
    import json
    import urllib.error
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"})
    try:
        with opener.open(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_server_files_cannot_be_added_through_the_upload_api(chat_app, client, tmp_path):
    secret = tmp_path / "private" / "secret-vault.md"
    secret.parent.mkdir()
    secret.write_text("# Vault\n\nThe quindle vault opens with the code 55817.\n")
    for path in (str(secret), "http://127.0.0.1:9/beacon.md", "/etc/passwd"):
        entry = {"path": path, "meta": {"_type": "gradio.FileData"}}
        for api in ("gradio_api/call/add_documents", "gradio_api/queue/join"):
            status, body = _post(chat_app.url + api, {"data": [[entry]], "fn_index": 0, "session_hash": "x"})
            assert status == 403, (api, body)
            assert body == {"error": f"refused: {path} was not uploaded to this app"}
    assert not (chat_app.corpus / "secret-vault.md").exists()
    assert chat_app.log.read_text().count("refused a request naming files not uploaded") == 6
    d = client.predict("What code opens the quindle vault?", "few_shot", 4, None, api_name="/ask")
    assert all("55817" not in h["text"] for h in d["hits"])
