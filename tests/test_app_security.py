"""The app with sign-in and small limits, as a LAN user or a hostile client meets it: `python
app.py --auth ... --auth-file ...` really running (its own process, over a copy of the session's
index), asked through raw HTTP and gradio_client."""
import http.cookiejar
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from conftest import SECURE_USERS as USERS
from test_browser import page  # noqa: F401 (the browser fixture)

pytestmark = pytest.mark.e2e
NOT_THERE = "What is the capital of Zorbania?"  # abstains before the model runs: a fast answer


def _opener(cookies: http.cookiejar.CookieJar | None = None):
    handlers = [urllib.request.ProxyHandler({})]
    if cookies is not None:
        handlers.append(urllib.request.HTTPCookieProcessor(cookies))
    return urllib.request.build_opener(*handlers)


def _request(opener, url: str, payload: dict | None = None, *, form: dict | None = None):
    """(status, body text) of a GET, a JSON POST or a form POST."""
    data, headers = None, {}
    if payload is not None:
        data, headers = json.dumps(payload).encode(), {"Content-Type": "application/json"}
    elif form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
    req = urllib.request.Request(url, data=data, headers=headers)
    try:
        with opener.open(req, timeout=60) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


def _signed_in(url: str, user: str):
    jar = http.cookiejar.CookieJar()
    opener = _opener(jar)
    status, body = _request(opener, url + "login", form={"username": user, "password": USERS[user]})
    assert status == 200, body
    return opener


def test_every_endpoint_refuses_a_request_without_the_session_cookie(secure_app):
    url, anyone = secure_app.url, _opener()
    status, login_page = _request(anyone, url)
    assert status == 200 and '"auth_required":true' in login_page  # the login form, nothing more:
    assert "add_documents" not in login_page and "/ask" not in login_page  # not the API's description
    gets = ["config", "gradio_api/info", "gradio_api/openapi.json", "gradio_api/login_check",
            "gradio_api/queue/data?session_hash=x", "gradio_api/heartbeat/x", "gradio_api/runs",
            "gradio_api/file=/etc/passwd", "gradio_api/upload_progress?upload_id=x",
            "gradio_api/call/ask/x", "monitoring", "gradio_api/stream/x/0/1/playlist.m3u8"]
    body = {"data": [NOT_THERE, "few_shot", 4, None], "fn_index": 0, "session_hash": "x", "event_id": "y"}
    posts = ["gradio_api/queue/join", "gradio_api/call/ask", "gradio_api/run/ask", "gradio_api/api/ask",
             "gradio_api/cancel", "gradio_api/reset", "gradio_api/upload", "gradio_api/stream/x"]
    for path in gets + posts:
        status, text = _request(anyone, url + path, body if path in posts else None)
        assert status == 401, (path, status, text[:200])
    # a wrong password gets no session, and the right one opens every route
    status, _ = _request(_opener(http.cookiejar.CookieJar()), url + "login",
                         form={"username": "bob", "password": "wonder"})
    assert status == 400
    bob = _signed_in(url, "bob")
    assert _request(bob, url + "gradio_api/info")[0] == 200
    status, chat_page = _request(bob, url)
    assert status == 200 and "add_documents" in chat_page


def test_gradio_client_signs_in_with_a_password_or_a_hashed_one(secure_app):
    from gradio_client import Client

    with pytest.raises(Exception, match="credentials were not provided|login"):
        Client(secure_app.url, verbose=False)
    with pytest.raises(ValueError, match="Could not login"):
        Client(secure_app.url, auth=("alice", USERS["bob"]), verbose=False)
    for user in USERS:
        d = Client(secure_app.url, auth=(user, USERS[user]), verbose=False).predict(
            NOT_THERE, "few_shot", 4, None, api_name="/ask")
        assert d["abstained"] and d["answer"] == "Not found in your documents."
    assert "failed sign-in for 'alice'" in secure_app.log.read_text()


def _raw_upload(opener, url: str, name: str, data: bytes, headers: dict | None = None) -> tuple[int, str]:
    """A multipart POST to Gradio's upload route, as a browser's file input sends it."""
    body = (b"--rag\r\nContent-Disposition: form-data; name=\"files\"; filename=\"" + name.encode() +
            b"\"\r\nContent-Type: text/markdown\r\n\r\n" + data + b"\r\n--rag--\r\n")
    req = urllib.request.Request(url + "gradio_api/upload", data=body,
                                 headers={"Content-Type": "multipart/form-data; boundary=rag", **(headers or {})})
    try:
        with opener.open(req, timeout=60) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


def test_uploads_over_a_limit_are_refused_and_the_rest_added(secure_app, tmp_path):
    """Limits: 20 KB a file (0.02 MB), 3 files an upload, 50 KB in all per user, counted from
    the moment the raw files are sent."""
    from gradio_client import Client, handle_file

    def doc(name: str, size: int):
        path = tmp_path / name
        words = f"The {name.split('.')[0]} gadget needs oiling. "
        path.write_text((words * (size // len(words) + 1))[:size])
        return handle_file(str(path))

    alice = Client(secure_app.url, auth=("alice", USERS["alice"]), verbose=False)
    note, _ = alice.predict([doc("whopper.md", 22_000), doc("one.md", 5_000), doc("two.md", 5_000),
                             doc("three.md", 5_000), doc("four.md", 1_000)], api_name="/add_documents")
    lines = note.split("\n\n")
    assert lines[:3] == [f"✓ **{n}.md** is indexed and searchable" for n in ("one", "two", "three")]
    assert lines[3:5] == ["⚠️ **whopper.md** not added: 21.5 KB, over the limit of 20.5 KB per file",
                          "⚠️ **four.md** not added: over the limit of 3 files per upload"]
    note, _ = alice.predict([doc("five.md", 15_000), doc("six.md", 19_000)], api_name="/add_documents")
    assert note.count("is indexed and searchable") == 2
    # 47.9 KB of alice's 51.2 KB are used: a raw upload of 5 KB more is refused as it is sent,
    # before any of it is stored; bob has his own allowance
    status, text = _raw_upload(_signed_in(secure_app.url, "alice"), secure_app.url, "seven.md", b"x" * 5_000)
    assert status == 413 and json.loads(text) == {"error": "over your upload allowance of 51.2 KB (47.9 KB used)"}
    bob = Client(secure_app.url, auth=("bob", USERS["bob"]), verbose=False)
    note, _ = bob.predict([doc("seven.md", 5_000)], api_name="/add_documents")
    assert note.startswith("✓ **seven.md** is indexed")
    saved = {p.name for p in secure_app.corpus.iterdir()}
    assert {"one.md", "two.md", "three.md", "five.md", "six.md", "seven.md"} <= saved
    assert not {"whopper.md", "four.md"} & saved
    # a request body over files x size is refused before it is stored
    status, text = _request(_signed_in(secure_app.url, "bob"), secure_app.url + "gradio_api/upload",
                            {"data": "x" * 200_000})
    assert status == 413 and "in one request" in text


def test_a_foreign_host_or_a_foreign_page_is_refused(secure_app):
    """DNS rebinding (Host: evil.example) gets 400 on every route, signed in or not; a page of
    another site cannot make a signed-in browser upload, ask or sign in (403)."""
    url, bob = secure_app.url, _signed_in(secure_app.url, "bob")
    for path in ("", "config", "gradio_api/info", "gradio_api/queue/join", "login"):
        req = urllib.request.Request(url + path, headers={"Host": "evil.example"})
        for opener in (bob, _opener()):
            try:
                opener.open(req, timeout=60)
                status = 200
            except urllib.error.HTTPError as e:
                status, body = e.code, e.read().decode()
            assert status == 400 and "unknown Host header" in body, (path, status)
    status, text = _raw_upload(bob, url, "csrf.md", b"# CSRF\n\nx\n", {"Origin": "http://evil.example"})
    assert status == 403 and json.loads(text) == {"error": "refused: a request from a page of another site "
                                                           "(http://evil.example)"}
    req = urllib.request.Request(url + "login", data=urllib.parse.urlencode({"username": "bob", "password": "x"})
                                 .encode(), headers={"Origin": "null"})  # a sandboxed page's form
    with pytest.raises(urllib.error.HTTPError) as info:
        _opener().open(req, timeout=60)
    assert info.value.code == 403
    assert "refused a POST to /gradio_api/upload from a page of http://evil.example" in secure_app.log.read_text()


def test_fifty_parallel_sign_in_guesses_are_not_fifty_checks(secure_app):
    """Throttled per user and per address, with backoff shared by parallel requests: a flood of
    guesses is answered "too many sign-in attempts; wait N s" without checking them."""
    from concurrent.futures import ThreadPoolExecutor

    def guess(i):
        return _request(_opener(http.cookiejar.CookieJar()), secure_app.url + "login",
                        form={"username": "mallory", "password": f"guess-{i}"})

    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(guess, range(50)))
    checked = secure_app.log.read_text().count("failed sign-in for 'mallory'")
    refused = [json.loads(body)["detail"] for status, body in answers if status == 429]
    assert 1 <= checked <= 3 and len(refused) == 50 - checked, (checked, [s for s, _ in answers])
    assert all(re.fullmatch(r"too many sign-in attempts; wait \d+ s and try again", r) for r in refused)


def test_users_do_not_see_others_private_names_nor_run_the_operators_things(secure_app, tmp_path):
    """alice operates the app (the first --auth user); bob asks, uploads and keeps his own."""
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    alice = Client(secure_app.url, auth=("alice", USERS["alice"]), verbose=False)
    bob = Client(secure_app.url, auth=("bob", USERS["bob"]), verbose=False)
    assert alice.predict("alice-ledger", False, api_name="/create_collection") == "alice-ledger"
    with pytest.raises(AppError) as info:
        bob.predict("alice-ledger", False, api_name="/create_collection")
    assert "the name 'alice-ledger' is not available; choose another" in str(info.value)
    raw_bob = _signed_in(secure_app.url, "bob")
    status, config = _request(raw_bob, secure_app.url + "config")
    assert status == 200 and "alice-ledger" not in config
    assert not re.search(r'/[^"\s]*\.gguf', config)  # no model path, no model list for bob
    # the operator's default collection: bob adds to it and asks it, never trashes its documents
    source = bob.predict(None, api_name="/documents")[0]["source"]
    with pytest.raises(AppError) as info:
        bob.predict(None, source, api_name="/remove_document")
    assert "only the operator of this app can remove documents from collection 'default'" in str(info.value)
    assert (secure_app.corpus / source).is_file()
    # the model picker's route: bob's page has no model to pick, and a crafted call is refused
    cfg = json.loads(config)
    picker = next(c["id"] for c in cfg["components"] if c["props"].get("elem_id") == "model-picker")
    fn = next(d["id"] for d in cfg["dependencies"] if [picker, "input"] in d["targets"])
    status, _ = _request(raw_bob, secure_app.url + "gradio_api/queue/join",
                         {"data": ["SmolLM2-135M-Instruct.Q4_1.gguf"], "fn_index": fn, "session_hash": "bob-model"})
    assert status == 200
    outcome = _outcome(raw_bob, secure_app.url, "bob-model")
    assert outcome["success"] is False and "not in the list of choices: []" in outcome["output"]["error"]
    alice.predict("alice-ledger", api_name="/delete_collection")


def _outcome(opener, url: str, session: str) -> dict:
    """The "process_completed" message of `session`'s queued event."""
    with opener.open(url + f"gradio_api/queue/data?session_hash={session}", timeout=120) as stream:
        for line in stream:
            if line.startswith(b"data:"):
                message = json.loads(line[5:])
                if message.get("msg") == "process_completed":
                    return message
    raise AssertionError(f"no outcome for {session}")


def _join(opener, url: str, fn_index: int, question: str, session: str) -> tuple[int, str]:
    return _request(opener, url + "gradio_api/queue/join",
                    {"data": [question, "few_shot", 4, None], "fn_index": fn_index, "session_hash": session})


def test_the_queue_is_bounded_and_shared_fairly(secure_app):
    """Queue of 2 waiting at most, 2 waiting or running per user: alice's third request and
    bob's request past a full queue are refused with "busy, try again"; nothing else is."""
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    url = secure_app.url
    alice = Client(url, auth=("alice", USERS["alice"]), verbose=False)
    status, config = _request(_signed_in(url, "alice"), url + "config")
    ask = next(d["id"] for d in json.loads(config)["dependencies"] if d.get("api_name") == "ask")
    running = alice.submit("What is LoRA?", "few_shot", 4, None, api_name="/ask")  # a real answer
    deadline = time.monotonic() + 60
    while running.status().code.name not in ("PROCESSING", "ITERATING") and time.monotonic() < deadline:
        time.sleep(0.05)
    waiting = alice.submit(NOT_THERE, "few_shot", 4, None, api_name="/ask")
    time.sleep(0.5)
    raw_alice = _signed_in(url, "alice")
    status, text = _join(raw_alice, url, ask, NOT_THERE, "alice-3")
    assert status == 503 and "you have 2 requests waiting" in text and "try again" in text
    raw_bob = _signed_in(url, "bob")
    assert _join(raw_bob, url, ask, NOT_THERE, "bob-1")[0] == 200  # his first: the queue holds 2 now
    status, text = _join(raw_bob, url, ask, NOT_THERE, "bob-2")
    assert status == 503 and "the server is busy (2 requests waiting)" in text
    with pytest.raises(Exception, match="Queue is full! Please try again"):
        Client(url, auth=("bob", USERS["bob"]), verbose=False).predict(NOT_THERE, api_name="/ask")
    assert running.result(timeout=300)["answer"] and waiting.result(timeout=300)["abstained"]
    # once the queue has drained, everyone is served again
    assert alice.predict(NOT_THERE, "few_shot", 4, None, api_name="/ask")["abstained"]
    with pytest.raises(AppError, match="top_k must be a whole number from 1 to 12, not -5"):
        alice.predict("What is LoRA?", "few_shot", -5, None, api_name="/ask")


def test_the_page_signs_in_and_a_refused_question_goes_back_to_the_box(secure_app, page):
    """In the browser: the login form, then the chat. With alice's two requests in the queue
    (her limit), her question from the page is refused: "busy, try again" shows, the question
    is back in the box, and the box works again."""
    from gradio_client import Client

    page.goto(secure_app.url)
    page.get_by_label(re.compile("username", re.I)).fill("alice")
    page.get_by_label(re.compile("password", re.I)).fill(USERS["alice"])
    page.get_by_role("button", name=re.compile("login", re.I)).click()
    box = page.locator("#question textarea")
    box.wait_for()
    assert "chunks from" in page.locator("#status").inner_text()

    alice = Client(secure_app.url, auth=("alice", USERS["alice"]), verbose=False)
    running = alice.submit("What is LoRA?", "few_shot", 4, None, api_name="/ask")
    deadline = time.monotonic() + 60
    while running.status().code.name not in ("PROCESSING", "ITERATING") and time.monotonic() < deadline:
        time.sleep(0.05)
    waiting = alice.submit(NOT_THERE, "few_shot", 4, None, api_name="/ask")
    time.sleep(0.5)
    box.fill("What are autoencoders used for?")
    box.press("Enter")
    page.get_by_text("This application is currently busy. Please try again.").wait_for(timeout=30_000)
    page.wait_for_function("""() => {
        const box = document.querySelector('#question textarea');
        return !box.disabled && box.value === 'What are autoencoders used for?';
    }""", timeout=30_000)
    assert "What are autoencoders used for?" not in page.locator("#chat").inner_text()
    assert running.result(timeout=300)["answer"] and waiting.result(timeout=300)["abstained"]
