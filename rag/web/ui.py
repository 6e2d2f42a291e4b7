"""The chat's page: Gradio Blocks bound to a `ChatService`, and the API endpoints it serves
(ask, feedback, collections, documents). Every handler asks the service and shows what it says."""
from __future__ import annotations

import tempfile
import threading
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..bounds import CHAT_MAX_TOP_K, CHAT_TEMPLATES, FEEDBACK_MAX_CORRECTION
from ..collections import DEFAULT
from ..documents import list_documents
from ..errors import HistoryError, RagError
from ..transcript import html_text, md_text, message_text, question_index
from ..uploads import UPLOAD_TYPES, UploadCancelled, UploadReport, size_text
from ..workspace import ChatService
from .chat import api_ask, api_call, respond
from .guards import request_key, request_user, upload_folder

# how each template reads to someone who has never heard of prompt templates
_TEMPLATE_LABELS = {"auto": "Automatic (recommended)", "few_shot": "In its own words, shown examples first",
                    "zero_shot": "In its own words", "cot": "Thinking step by step first (slower)",
                    "extract": "Quoting the passage that answers"}
TEMPLATE_CHOICES = [(_TEMPLATE_LABELS[name], name) for name in CHAT_TEMPLATES]
ALL_DOCUMENTS = ("All documents", "")  # the "Ask about" picker's first choice: no document named
STOPPED = "<em>Stopped.</em>"
# the chat shows text exactly as written: newlines break lines, nothing is rendered
CSS = """
#chat .md { white-space: pre-wrap; }
#chat .md small { opacity: 0.7; }  /* a passage's neighbouring text, around it */
/* a citation: a small numbered chip after what it backs; clicked, it opens its source */
#chat sup.cite { display: inline-block; min-width: 1.5em; padding: 0 0.35em; margin-left: 0.2em;
  border-radius: 0.75em; border: 1px solid var(--color-accent); background: var(--color-accent-soft);
  color: var(--color-accent);
  font-size: 0.72em; font-weight: 600; line-height: 1.5em; text-align: center; cursor: pointer;
  vertical-align: 0.35em; }
#chat sup.cite:hover { background: var(--color-accent); color: white; }
#chat sup.cite.source-n { cursor: inherit; vertical-align: 0.1em; margin: 0 0.3em 0 0; }
#chat .source-flash { outline: 2px solid var(--color-accent); outline-offset: 2px; border-radius: 4px; }
/* a sentence the documents do not back: set apart and labelled, not underlined as a misspelling */
#chat .md .unbacked { background: rgba(234, 179, 8, 0.18); border-bottom: 1px dashed #b7791f; cursor: help; }
#chat .md .unbacked-note { color: #8a5a00; opacity: 1; }
#chat .md small.details { display: block; margin-top: 0.6em; opacity: 0.55; }
/* the model's text before the checks: plainly not the answer yet */
#chat .md .draft { opacity: 0.5; font-style: italic; }
#chat .md .draft-label { font-size: 0.85em; opacity: 0.7; }
/* the conversations: a list of full titles, the open one marked */
#conversations .wrap { flex-direction: column; gap: 2px; }
#conversations label { width: 100%; white-space: normal; line-height: 1.3; padding: 6px 8px;
  border-radius: 6px; background: transparent; border: none; box-shadow: none; }
#conversations label:hover { background: var(--background-fill-secondary); }
#conversations label.selected { background: var(--color-accent-soft); }
#conversations input[type=radio] { position: absolute; opacity: 0; width: 1px; height: 1px; }
#conversations label:focus-within { outline: 2px solid var(--color-accent); }
#chat sup.cite:focus { outline: 2px solid var(--color-accent); outline-offset: 1px; }
#status { font-size: 0.85em; opacity: 0.8; }
#upload-help, #keys-help { margin-top: -6px; opacity: 0.7; }
/* a phone: the chat leaves room for the box under it */
@media (max-width: 700px) { #chat { height: 62vh !important; } #keys-help { display: none; } }
"""
# Keys and clicks no Gradio event has, and the sidebar closed at phone width: Esc stops the answer; a citation chip opens its source
# (the collapsed block after the answer whose title carries the same number) and scrolls to the
# supporting sentence. One listener each on the document, so messages drawn later are covered.
SCRIPT = """
() => {
  // on a phone the conversations list starts closed: it would cover the whole chat
  const fold = (tries) => {
    const bar = document.querySelector('#sidebar');
    if (!bar) { if (tries > 0) setTimeout(() => fold(tries - 1), 200); return; }
    if (window.innerWidth < 700 && bar.classList.contains('open')) bar.querySelector('.toggle-button')?.click();
  };
  fold(50);
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && e.target.matches && e.target.matches('#chat sup.cite:not(.source-n)')) {
      openSource(e, e.target);  // a chip reached with Tab opens with Enter
      return;
    }
    // Esc stops an answer, and only while one is running (the box waits for it): not when it
    // closes a list, ends a composition or repeats
    if (e.key !== 'Escape' || e.isComposing || e.repeat || e.defaultPrevented) return;
    if (e.target.closest && e.target.closest('[role=listbox], .options, #model-picker, #collection, #ask-document')) return;
    const box = document.querySelector('#question textarea');
    const stop = document.querySelector('#stop-answer');
    if (box && box.disabled && stop) stop.click();
  });
  document.addEventListener('click', (e) => {
    const chip = e.target.closest && e.target.closest('#chat sup.cite:not(.source-n)');
    if (chip) openSource(e, chip);
  }, true);
  function openSource(e, chip) {
    e.preventDefault();
    e.stopPropagation();
    const n = chip.textContent.trim();
    const messages = [...document.querySelectorAll('#chat .message-wrap .message, #chat [data-testid=bot]')];
    const start = messages.findIndex((m) => m.contains(chip));
    for (const m of messages.slice(start + 1)) {
      if (m.querySelector('[data-testid=user]') || m.matches('[data-testid=user]')) break;
      const title = m.querySelector('sup.source-n');
      if (!title || title.textContent.trim() !== n) continue;
      const block = title.closest('.thought-group') || m;
      const toggle = block.querySelector('.title, button, [role=button]') || title;
      const content = block.querySelector('.content');
      if (!content || content.offsetHeight < 2) toggle.click();
      // the block slides open: scroll once its height has stopped changing
      let last = -1, steady = 0, waited = 0;
      const settle = () => {
        const h = block.getBoundingClientRect().height;
        steady = h === last ? steady + 1 : 0;
        last = h;
        waited += 100;
        if (steady < 2 && waited < 3000) { setTimeout(settle, 100); return; }
        (block.querySelector('mark') || block).scrollIntoView({block: 'center'});
        block.classList.add('source-flash');
        setTimeout(() => block.classList.remove('source-flash'), 1500);
      };
      setTimeout(settle, 100);
      return;
    }
  }
}
"""


# the upload box names kinds of document, not a list of eighteen extensions
_KINDS = {".pdf": "PDF", ".docx": "Word", ".pptx": "PowerPoint", ".xlsx": "Excel", ".xlsm": "Excel",
          ".csv": "CSV", ".tsv": "CSV", ".epub": "EPUB", ".html": "web pages", ".htm": "web pages",
          ".md": "Markdown", ".markdown": "Markdown", ".txt": "text",
          ".png": "images (read by OCR)", ".jpg": "images (read by OCR)", ".jpeg": "images (read by OCR)",
          ".tif": "images (read by OCR)", ".tiff": "images (read by OCR)"}


def upload_help(limits: str) -> str:
    """The line under the upload box: the kinds of document taken, and the limits."""
    kinds = list(dict.fromkeys([kind for ext, kind in _KINDS.items() if ext in UPLOAD_TYPES]
                               + [ext for ext in UPLOAD_TYPES if ext not in _KINDS]))
    return ", ".join(kinds) + (f"; {limits}" if limits else "")


@dataclass
class _UploadJob:
    cancel: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    report: UploadReport | None = None


class UploadJobs:
    """The upload running for each browser session, so that session's Cancel can stop it."""

    def __init__(self) -> None:
        self._jobs: dict[str, _UploadJob] = {}
        self._lock = threading.Lock()

    def start(self, session: str) -> _UploadJob:
        with self._lock:
            job = self._jobs[session] = _UploadJob()
            return job

    def finish(self, session: str, job: _UploadJob, report: UploadReport | None) -> None:
        job.report = report
        job.done.set()
        with self._lock:
            if self._jobs.get(session) is job:
                del self._jobs[session]

    def cancel(self, session: str) -> _UploadJob | None:
        with self._lock:
            job = self._jobs.get(session)
        if job is not None:
            job.cancel.set()
        return job


def _stop_on_cancel(progress, cancel: threading.Event) -> None:
    """Make Gradio's progress tracker raise UploadCancelled once `cancel` is set. With
    track_tqdm every tqdm bar in the handler's thread steps through the tracker (iterating or
    `update`): the index build's file loop and embedding slices, and the embedder's batches of
    32 texts, so a cancelled build stops within a batch, before anything is committed."""

    class Cancellable(type(progress)):
        def __next__(self):
            if cancel.is_set():
                raise UploadCancelled()
            return super().__next__()

        def update(self, n=1):
            if cancel.is_set():
                raise UploadCancelled()
            return super().update(n)

    progress.__class__ = Cancellable


def build_ui(service: ChatService, *, concurrency: int = 1):
    """The Gradio Blocks of the chat, bound to `service`. `concurrency` questions are worked on
    at once: retrieval, the prompt and the checks of one overlap another's generation, which
    the model's lock keeps to one at a time, first come first served."""
    import gradio as gr

    top_k = service.rag.settings.top_k if service.rag else 4
    lim = service.limits
    limits = ", ".join(x for x in (
        f"up to {lim.files} files" if lim.files else "",
        f"{size_text(lim.file_bytes)} each" if lim.file_bytes else "",
        f"{size_text(lim.total_bytes)} in all" if lim.total_bytes else "") if x)
    uploads = UploadJobs()
    # uploaded files are kept a day in Gradio's cache, then deleted (the corpus keeps its copies)
    with gr.Blocks(title="rag-local", analytics_enabled=False, delete_cache=(3600, 86400)) as demo:
        # saved conversations: this user's, the most recent first, full titles, searchable
        with gr.Sidebar(open=True, width=300, elem_id="sidebar"):
            clear = gr.Button("+ New conversation", elem_id="new-conversation")
            search = gr.Textbox(placeholder="Search conversations", show_label=False, max_lines=1,
                                elem_id="conversation-search")
            conversations = gr.Radio([], value=None, label="Conversations", elem_id="conversations")
            with gr.Accordion("Rename, delete, export", open=False, elem_id="conversation-tools"):
                new_title = gr.Textbox(placeholder="new title", show_label=False, max_lines=1,
                                       elem_id="conversation-title")
                with gr.Row():
                    rename = gr.Button("Rename", size="sm", elem_id="rename-conversation")
                    forget = gr.Button("Delete", size="sm", variant="stop", elem_id="delete-conversation")
                export = gr.Button("Export as Markdown", size="sm", elem_id="export-conversation")
                exported = gr.File(label="Markdown", interactive=False, elem_id="export-file")
            history_note = gr.Markdown(f"⚠️ {md_text(service.history.notice)}"
                                       if service.history and service.history.notice else "",
                                       elem_id="history-note")
        gr.Markdown("## rag-local · ask your documents", elem_id="title")
        status = gr.Markdown(service.status(), elem_id="status")
        with gr.Row():
            with gr.Column(scale=3, min_width=320):
                # messages are HTML built by html_text (Markdown off, no LaTeX, no custom tags,
                # sanitised): document text can neither render nor make the browser fetch
                # every answer has a thumbs up and down (`on_like`); a thumbs-down asks for the right answer
                chat = gr.Chatbot(label="Chat", elem_id="chat", height=560, feedback_options=("Like", "Dislike"),
                                  placeholder="Ask something about your documents.",
                                  render_markdown=False, sanitize_html=True, latex_delimiters=[],
                                  allow_tags=False, buttons=["copy", "copy_all"], show_label=False)
                with gr.Row(equal_height=True, elem_id="ask-row"):
                    # Enter sends, Shift+Enter starts a new line, Esc stops (the page's script)
                    box = gr.Textbox(placeholder="Ask a question",
                                     show_label=False, elem_id="question", scale=6, autofocus=True, lines=1,
                                     max_lines=6, min_width=150)
                    send = gr.Button("Send", variant="primary", scale=1, elem_id="send", min_width=70)
                    # stops the answer being written or a whole-document answer being read
                    halt = gr.Button("Stop", scale=1, elem_id="stop-answer", min_width=70)
                gr.Markdown("<small>Enter sends · Shift+Enter starts a new line · Esc stops an answer</small>",
                            elem_id="keys-help")
                with gr.Row(visible=False, elem_id="correction-row") as correction_row:
                    correction = gr.Textbox(label="What is the right answer?", elem_id="correction", scale=5,
                                            placeholder="This is wrong: the right answer is …", max_lines=3,
                                            max_length=FEEDBACK_MAX_CORRECTION)
                    send_fix = gr.Button("Send correction", scale=1, elem_id="send-correction")
                feedback_note = gr.Markdown(elem_id="feedback-note")
            with gr.Column(scale=1, min_width=280, elem_id="side-panel"):
                # collections: the one asked and added to, per tab; only those this user may see
                # (the page's config is everyone's: it names only collections nobody owns, and
                # each page gets its user's list when it opens)
                collection = gr.Dropdown(service.public_collection_names(), value=DEFAULT, label="Collection",
                                         elem_id="collection", allow_custom_value=False)
                with gr.Accordion("New or delete collection", open=False, elem_id="collection-tools"):
                    new_name = gr.Textbox(placeholder="name: a-z, 0-9, - or _", show_label=False,
                                          elem_id="new-collection", max_lines=1)
                    shared = gr.Checkbox(label="shared with every signed-in user", value=False,
                                         elem_id="shared-collection")
                    with gr.Row():
                        create = gr.Button("Create", size="sm", elem_id="create-collection")
                        drop = gr.Button("Delete this collection", size="sm", variant="stop",
                                         elem_id="delete-collection")
                collection_note = gr.Markdown(elem_id="collection-note")
                # the document a question is about: "Summarise this" or "List all ..." reads all of it
                ask_doc = gr.Dropdown([ALL_DOCUMENTS], value="", label="Ask about", elem_id="ask-document",
                                      allow_custom_value=False,
                                      info="one document: \"Summarise this\" or \"List all …\" reads all of it")
                files = gr.File(label="Add documents", file_count="multiple", elem_id="upload", height=120)
                gr.Markdown(f"<small>{md_text(upload_help(limits))}</small>", elem_id="upload-help")
                stop = gr.Button("Cancel upload", size="sm", elem_id="cancel-upload")
                upload_note = gr.Markdown(elem_id="upload-note")
                # the documents of the collection shown: what is indexed, taking one out, a re-scan
                with gr.Accordion("Documents in this collection", open=False, elem_id="documents"):
                    doc_table = gr.Dataframe(headers=["document", "type", "chunks", "size", "indexed"],
                                             datatype=["str", "str", "number", "str", "str"], interactive=False,
                                             elem_id="doc-table", wrap=True)
                    doc_pick = gr.Dropdown([], label="Document", elem_id="doc-pick")
                    with gr.Row():
                        remove = gr.Button("Move to trash", size="sm", variant="stop", elem_id="remove-doc")
                        scan = gr.Button("Re-scan the folder", size="sm", elem_id="rescan")
                    doc_note = gr.Markdown(elem_id="doc-note")
                # what experts tune, out of the way: how answers are made, how much is read, the model
                with gr.Accordion("Advanced", open=False, elem_id="advanced"):
                    template = gr.Radio(TEMPLATE_CHOICES, value="auto", label="How the answer is made",
                                        elem_id="template")
                    k = gr.Slider(1, CHAT_MAX_TOP_K, value=min(top_k, CHAT_MAX_TOP_K), step=1,
                                  label="Passages read for each question", elem_id="top-k",
                                  info="more passages: more to go on, slower answers")
                    # the model every answer uses: the operator's to switch, so the page's config
                    # lists none; the operator's page gets them when it opens (by file name), each
                    # with what it costs here
                    picker = gr.Dropdown([], value=None, label="Model", elem_id="model-picker", visible=False,
                                         info="GGUFs on this machine; `rag models pull NAME` adds more")
                    model_note = gr.Markdown(elem_id="model-note")
        turns = gr.State([])
        pending = gr.State("")  # the question on its way from the box to the answer
        conv_id = gr.State(None)  # the saved conversation this tab continues, once it has one
        # what a rating of each answer is about, by the position of its question in the chat
        rated = gr.State({})
        correcting = gr.State(None)  # the question position of the answer awaiting its correction

        # Stop and New conversation end the answer a page is waiting for through this flag, which
        # the exchange reads before every update and answers with its last one ("Stopped.", or
        # the empty new conversation): Gradio's own cancel did not reach an iteration already
        # running in its worker thread, whose update then showed the stopped draft again
        halted: dict[str, dict] = {}

        def session_of(request) -> str:
            return getattr(request, "session_hash", None) or ""

        def halt_answer(request, why: str) -> None:
            flag = halted.get(session_of(request))
            if flag is not None and not flag["why"]:
                flag["why"] = why

        def show_question(question, messages, request: gr.Request):
            """The fast first step (not queued): the question shows in the chat at once and the
            box waits until the answer is in, however long the queue. Its answer's Stop flag
            (`halted`) is raised here, so Stop or New conversation reach an answer still queued."""
            halted[session_of(request)] = {"why": ""}  # an earlier Stop is spent
            messages = list(messages or [])
            if question and question.strip():
                messages.append({"role": "user", "content": html_text(question)})
            return gr.update(value="", interactive=False), gr.update(interactive=False), messages, question

        def on_message(question, messages, past, tmpl, kk, name, cid, document, subjects, search,
                       request: gr.Request):
            session = session_of(request)
            stop = halted.setdefault(session, {"why": ""})  # (raised by show_question)
            shown = bool(question and question.strip())
            user = request_user(request)
            saved = {"id": cid, "note": ""}
            subjects = dict(subjects or {})
            asked = len(messages) - 1 if shown and messages else None  # where the question shows

            def save(answer):
                if stop["why"]:  # stopped while it was checked: the page says "Stopped."
                    return
                try:
                    saved["id"], subject = service.answered(saved["id"], answer, collection=name, user=user)
                except RagError as e:  # the answer still shows; the note says it was not saved
                    saved["note"] = f"⚠️ not saved: {md_text(e)}"
                    return
                if asked is not None:
                    subjects[asked] = subject

            # closed when Stop or New conversation flags it, or when Gradio closes this generator
            with closing(respond(service, question, messages, past, tmpl, kk, shown=shown, collection=name,
                                 user=user, on_answer=save, document=document)) as exchange:
                shown_last, past_last = list(messages or []), list(past or [])
                for _, messages, past in exchange:
                    if stop["why"]:
                        # what came after Stop (even a finished answer) is dropped: the page
                        # already reads "Stopped." and nothing of this answer replaces it
                        messages, past = shown_last, past_last
                        break  # (closing the exchange ends the survey or the generation)
                    shown_last, past_last = list(messages), list(past)
                    yield messages, past, saved["id"], gr.update(), gr.update(), subjects
            if halted.get(session) is stop:
                del halted[session]
            if stop["why"] == "new":  # the page shows a new conversation: nothing of this one
                yield [], [], None, gr.update(value=None), gr.update(), {}
                return
            if stop["why"] == "stop":
                yield stopped(messages), past, saved["id"], gr.update(), gr.update(), subjects
                return
            choices = service.conversation_choices(user=user, search=search)
            yield messages, past, saved["id"], gr.update(choices=choices, value=saved["id"]), \
                saved["note"] or gr.update(), subjects

        def on_like(subjects, messages, data: gr.LikeData, request: gr.Request):
            """A thumb clicked under an answer: saved at once; a thumbs-down opens the box for
            the right answer. A thumb clicked again takes the rating back."""
            subjects = dict(subjects or {})
            asked = question_index(messages, data.index)
            rating = {True: "up", False: "down"}.get(data.liked)  # "": the thumb was unselected
            note = service.rate_answer(subjects.get(asked), rating, user=request_user(request))
            down = rating == "down" and not note.startswith("⚠️")
            return subjects, asked if down else None, gr.update(visible=down), note

        def on_correct(text, asked, subjects, request: gr.Request):
            subjects = dict(subjects or {})
            note = service.correct_answer(subjects.get(asked) if asked is not None else None, text,
                                          user=request_user(request))
            if note.startswith("⚠️"):  # the box stays, with what was written
                return subjects, asked, gr.update(), gr.update(), note
            return subjects, None, gr.update(visible=False), gr.update(value=""), note

        def unlock():
            return gr.update(interactive=True), gr.update(interactive=True)

        def stopped(messages):
            """The chat with a draft or progress line left in it replaced by "Stopped.", or with
            "Stopped." after a question stopped before its answer began (still queued)."""
            messages = list(messages or [])
            if messages and messages[-1].get("role") == "assistant" and \
                    message_text(messages[-1]).startswith('<span class="draft-label">'):
                messages[-1] = {"role": "assistant", "content": STOPPED}
            elif messages and messages[-1].get("role") == "user":
                messages.append({"role": "assistant", "content": STOPPED})
            return messages

        def on_stop(messages, request: gr.Request):
            """Stop pressed: the answer being written or read is flagged (`halted`), ends at its
            next piece and says it stopped; the box is free at once."""
            halt_answer(request, "stop")
            return gr.update(interactive=True), gr.update(interactive=True), stopped(messages)

        def take_back(question, messages):
            messages = list(messages or [])
            if question and messages and messages[-1].get("role") == "user" and \
                    message_text(messages[-1]).strip() == html_text(question).strip():
                messages.pop()
            return gr.update(value=question, interactive=True), gr.update(interactive=True), messages

        def on_upload(files, name, request: gr.Request, progress=gr.Progress(track_tqdm=True)):
            user = request_user(request)
            if not files:
                return "", service.status(name, user=user)
            job = uploads.start(request.session_hash or "")
            _stop_on_cancel(progress, job.cancel)
            report = None
            try:
                progress(0, desc="checking the files")
                # raw file entries (preprocess=False): Gradio must not open, copy or download a
                # path a client names before it is checked against the upload folder
                report = service.add_uploads(
                    files, upload_dir=upload_folder(), owner=request_key(request), progress=True,
                    cancel=job.cancel, collection=name, user=user,
                    on_file=lambda i, n, file: progress((i, n), desc="checking the files", unit="files"))
                note = report.markdown()
            except RagError as e:
                note = f"⚠️ {md_text(e)}"
            finally:
                uploads.finish(request.session_hash or "", job, report)
            return note, service.status(name, user=user)

        def on_cancel_upload(request: gr.Request):
            job = uploads.cancel(request.session_hash or "")
            if job is not None:
                job.done.wait(120)  # it stops at the next file or embedding batch
            if job is not None and job.report is not None and job.report.added:
                note = "The upload was already indexed when it was cancelled.\n\n" + job.report.markdown()
            else:
                note = "Upload cancelled: nothing from it was added."
            return note, service.status()

        def on_pick(name, request: gr.Request):
            user = request_user(request)
            return (service.status(name, user=user), *doc_views(name, user))

        def on_create(name, share, request: gr.Request):
            user = request_user(request)
            try:
                made = service.create_collection(name, user=user, shared=bool(share))
            except RagError as e:
                return gr.update(), f"⚠️ {md_text(e)}", gr.update()
            return (gr.update(choices=service.collection_names(user=user), value=made),
                    f"Collection **{md_text(made)}** created: add documents to it.", "")

        def on_delete(name, request: gr.Request):
            user = request_user(request)
            try:
                service.delete_collection(name, user=user)
            except RagError as e:
                return gr.update(), f"⚠️ {md_text(e)}"
            return (gr.update(choices=service.collection_names(user=user), value=DEFAULT),
                    f"Collection **{md_text(name)}** deleted (its documents are in the trash folder).")

        def on_open(name, request: gr.Request):
            """The page opened: this user's collections (the value stays: the user may have
            picked one already while the page was loading), its documents, their conversations."""
            user = request_user(request)
            names = service.collection_names(user=user)
            name = name if name in names else DEFAULT
            return (gr.update(choices=names, value=name), service.status(name, user=user), *doc_views(name, user),
                    gr.update(choices=service.conversation_choices(user=user)))

        def on_conversation(cid, request: gr.Request):
            user = request_user(request)
            if cid is None:
                return gr.update(), gr.update(), gr.update(), gr.update(), "", gr.update(), gr.update()
            try:
                messages, past, name, subjects = service.reopen(cid, user=user)
            except RagError as e:
                return gr.update(), gr.update(), gr.update(), gr.update(), f"⚠️ {md_text(e)}", gr.update(), \
                    gr.update()
            pick = name if name in service.collection_names(user=user) else gr.update()
            return messages, past, cid, pick, "", subjects, gr.update(visible=False)

        def on_search(text, cid, request: gr.Request):
            """The sidebar shows the conversations whose title, questions or answers hold `text`."""
            found = service.conversation_choices(user=request_user(request), search=text)
            return gr.update(choices=found, value=cid if cid in {i for _, i in found} else None)

        def on_rename(cid, title, search, request: gr.Request):
            user = request_user(request)
            try:
                if cid is None:
                    raise HistoryError("pick a conversation first")
                service.history.rename(cid, title, owner=user or "")
            except RagError as e:
                return gr.update(), f"⚠️ {md_text(e)}", gr.update()
            return gr.update(choices=service.conversation_choices(user=user, search=search), value=cid), "Renamed.", ""

        def on_forget(cid, search, request: gr.Request):
            user = request_user(request)
            try:
                if cid is None:
                    raise HistoryError("pick a conversation first")
                service.history.delete(cid, owner=user or "")
            except RagError as e:
                return gr.update(), gr.update(), gr.update(), gr.update(), f"⚠️ {md_text(e)}", gr.update(), \
                    gr.update()
            return gr.update(choices=service.conversation_choices(user=user, search=search), value=None), [], [], None, \
                "Conversation deleted.", {}, gr.update(visible=False)

        def on_export(cid, request: gr.Request):
            try:
                if cid is None:
                    raise HistoryError("pick a conversation first")
                text = service.history.export_markdown(cid, owner=request_user(request) or "")
            except RagError as e:
                return None, f"⚠️ {md_text(e)}"
            folder = Path(tempfile.mkdtemp(prefix="rag-export-"))
            path = folder / f"conversation-{int(cid)}.md"
            path.write_text(text, encoding="utf-8")
            return str(path), ""

        def on_new(request: gr.Request):
            halt_answer(request, "new")  # an answer being written does not come back into the new conversation
            return ([], [], None, gr.update(value=None), {}, gr.update(visible=False), "",
                    gr.update(interactive=True), gr.update(interactive=True))

        def doc_views(name, user, *, keep: bool = False):
            """The documents table, the remove picker and the "Ask about" picker of collection
            `name`; `keep`: the document asked about stays picked (the same collection, reread)."""
            try:
                rows = service.documents(name, user=user)
            except RagError:
                rows = []
            about = [ALL_DOCUMENTS] + [(r[0], r[0]) for r in rows]
            return (gr.update(value=rows), gr.update(choices=[r[0] for r in rows], value=None),
                    gr.update(choices=about) if keep else gr.update(choices=about, value=""))

        def on_docs(name, request: gr.Request):
            return doc_views(name, request_user(request), keep=True)

        def on_remove(name, source, request: gr.Request):
            user = request_user(request)
            try:
                note = md_text(service.remove_document(name, source, user=user))
            except RagError as e:
                note = f"⚠️ {md_text(e)}"
            return (note, *doc_views(name, user), service.status(name, user=user))

        def on_rescan(name, request: gr.Request):
            user = request_user(request)
            try:
                note = md_text(service.rescan(name, user=user))
            except RagError as e:
                note = f"⚠️ {md_text(e)}"
            return (note, *doc_views(name, user, keep=True), service.status(name, user=user))

        # Gradio finds gr.Request by its annotation, which postponed evaluation leaves a string
        for fn in (show_question, on_upload, on_cancel_upload, on_message, on_stop, on_new, on_pick, on_create, on_delete, on_open,
                   on_docs, on_remove, on_rescan, on_conversation, on_search, on_rename, on_forget, on_export, on_like,
                   on_correct):
            fn.__annotations__["request"] = gr.Request
        on_like.__annotations__["data"] = gr.LikeData
        ask_steps = dict(fn=show_question, inputs=[box, chat], outputs=[box, send, chat, pending],
                         queue=False, api_visibility="private")
        answer_step = dict(fn=on_message,
                           inputs=[pending, chat, turns, template, k, collection, conv_id, ask_doc, rated, search],
                           outputs=[chat, turns, conv_id, conversations, history_note, rated],
                           concurrency_id="llm", concurrency_limit=concurrency,
                           api_visibility="private", show_progress="minimal",
                           show_progress_on=[chat])  # the queue position shows in the chat alone
        answers = []
        for trigger in (box.submit, send.click):
            answered = trigger(**ask_steps).then(**answer_step)
            answers.append(answered)
            answered.success(unlock, outputs=[box, send], queue=False, api_visibility="private")
            # refused ("busy, try again"): the question goes back from the chat to the box
            answered.failure(take_back, inputs=[pending, chat], outputs=[box, send, chat],
                             queue=False, api_visibility="private")
        halt.click(on_stop, inputs=chat, outputs=[box, send, chat], queue=False, api_visibility="private")
        # reading and naming things is quick: not queued behind answers (nor counted against the
        # per-client queue allowance, which a page's opening would otherwise use up)
        quick = dict(api_visibility="private", queue=False)
        # a new conversation while an answer is written ends that answer, and frees the box
        clear.click(on_new, outputs=[chat, turns, conv_id, conversations, rated, correction_row, feedback_note,
                                     box, send], **quick)
        search.input(on_search, inputs=[search, conv_id], outputs=conversations, **quick)
        conversations.input(on_conversation, inputs=conversations,
                            outputs=[chat, turns, conv_id, collection, history_note, rated, correction_row],
                            **quick)
        rename.click(on_rename, inputs=[conv_id, new_title, search], outputs=[conversations, history_note, new_title],
                     **quick)
        forget.click(on_forget, inputs=[conv_id, search],
                     outputs=[conversations, chat, turns, conv_id, history_note, rated, correction_row], **quick)
        chat.like(on_like, inputs=[rated, chat], outputs=[rated, correcting, correction_row, feedback_note], **quick)
        for trigger in (send_fix.click, correction.submit):
            trigger(on_correct, inputs=[correction, correcting, rated],
                    outputs=[rated, correcting, correction_row, correction, feedback_note], **quick)
        export.click(on_export, inputs=conv_id, outputs=[exported, history_note], **quick)
        upload = files.upload(on_upload, inputs=[files, collection], outputs=[upload_note, status],
                              api_name="add_documents", preprocess=False)
        stop.click(on_cancel_upload, outputs=[upload_note, status], cancels=[upload], queue=False,
                   api_name="cancel_upload")
        collection.change(on_pick, inputs=collection, outputs=[status, doc_table, doc_pick, ask_doc], **quick)
        upload.then(on_docs, inputs=collection, outputs=[doc_table, doc_pick, ask_doc], **quick)
        # the uploaded files were taken (added or refused, and deleted from the upload folder):
        # the box empties, so a later upload cannot send them again
        upload.then(lambda: None, outputs=files, **quick)
        remove.click(on_remove, inputs=[collection, doc_pick],
                     outputs=[doc_note, doc_table, doc_pick, ask_doc, status],
                     api_visibility="private", concurrency_id="index")
        scan.click(on_rescan, inputs=collection, outputs=[doc_note, doc_table, doc_pick, ask_doc, status],
                   api_visibility="private", concurrency_id="index")
        create.click(on_create, inputs=[new_name, shared], outputs=[collection, collection_note, new_name], **quick)
        drop.click(on_delete, inputs=collection, outputs=[collection, collection_note], **quick)
        demo.load(on_open, inputs=collection,
                  outputs=[collection, status, doc_table, doc_pick, ask_doc, conversations], **quick)

        def on_model(name, request: gr.Request):
            """Load the picked model (the next questions wait for it); a broken file leaves the
            one in use in place and the picker on it. The operator's alone."""
            user = request_user(request)
            if not service.is_operator(user):
                yield service.use_model(name, user=user), gr.update(), gr.update()
                return
            yield f"Loading {md_text(str(name or '?'))} ...", gr.update(), gr.update()
            note = service.use_model(name, user=user)
            yield f"{note}\n\n{service.model_note()}", service.status(), gr.update(value=service.model_name())

        def refresh_models(request: gr.Request):  # a model pulled while the app runs shows at the next page load
            models = service.model_choices() if service.is_operator(request_user(request)) else []
            return (gr.update(choices=models, value=service.model_name() if models else None, visible=bool(models)),
                    service.model_note() if models else "")

        on_model.__annotations__["request"] = refresh_models.__annotations__["request"] = gr.Request

        # `input`, not `change`: putting the picker back after a failed load is not a new pick
        picker.input(on_model, inputs=picker, outputs=[model_note, status, picker], concurrency_id="llm",
                     api_visibility="private", show_progress="minimal")
        demo.load(refresh_models, outputs=[picker, model_note], api_visibility="private")

        def ask(question: str, template: str = "auto", top_k: int | None = None,
                history: list[list[str]] | None = None, collection: str | None = None,
                document: str | None = None, request: gr.Request = None) -> dict:
            """Answer a question from the indexed documents. Returns the answer, whether it
            abstained, the citations ([n] marker, source, heading, score, chunk text), every
            retrieved passage (hits), timings and token usage; for a question about a whole
            document or collection ("list all ...", "which files mention ...", "summarise
            notes.md") also its scope, coverage (what was read, complete or not) and items.
            `template`: auto (chosen per question), few_shot, zero_shot, cot or extract; `top_k`:
            passages retrieved, 1 to 12 (default: the app's); `history`: up to 20 [question,
            answer] pairs of earlier turns; `collection`: the collection to ask (default: the
            default one); `document`: the indexed document (or folder) the question is about."""
            return api_ask(service, question, template, top_k, history, collection, request_user(request),
                           document=document)

        def feedback(question: str, answer: str, rating: str, correction: str | None = None,
                     collection: str | None = None, citations: list[dict] | None = None,
                     request: gr.Request = None) -> dict:
            """Rate an answer: `rating` "up" or "down", and with "down" the right answer as
            `correction` (up to 2,000 characters). `question` and `answer` are those rated; the
            optional `collection` the one asked, `citations` the answer's (from /ask: objects with
            source and chunk_id). Saved with the collection's model and index version, per
            signed-in user; `rag feedback export` makes the corrections a `rag eval` question set.
            Returns {"saved": true, "id": N}."""
            return api_call(service.api_feedback, question, answer, rating, correction, collection, citations,
                            user=request_user(request))

        def collections(request: gr.Request = None) -> list[str]:
            """The names of the collections you may ask."""
            return service.collection_names(user=request_user(request))

        def create_collection(name: str, shared: bool = False, request: gr.Request = None) -> str:
            """Create an empty collection (yours, unless shared); its name."""
            return api_call(service.create_collection, name, user=request_user(request), shared=bool(shared))

        def delete_collection(name: str, request: gr.Request = None) -> str:
            """Delete one of your collections: its documents go to the trash folder."""
            api_call(service.delete_collection, name, user=request_user(request))
            return name

        def documents(collection: str | None = None, request: gr.Request = None) -> list[dict]:
            """The documents of a collection: source, type, size (bytes), chunks, indexed (time)."""
            user = request_user(request)
            return [asdict(d) for d in api_call(lambda: list_documents(service.get(collection or None, user=user)))]

        def remove_document_(collection: str | None, source: str, request: gr.Request = None) -> str:
            """Take a document out of a collection: its chunks leave the index, its file goes to the trash."""
            return api_call(service.remove_document, collection or None, source, user=request_user(request))

        def rescan_(collection: str | None = None, request: gr.Request = None) -> str:
            """Index what changed in a collection's folder; remove what is gone from it."""
            return api_call(service.rescan, collection or None, user=request_user(request))

        for fn in (ask, feedback, collections, create_collection, delete_collection, documents, remove_document_,
                   rescan_):
            fn.__annotations__["request"] = gr.Request
        gr.api(documents, api_name="documents")
        gr.api(remove_document_, api_name="remove_document", concurrency_id="index")
        gr.api(rescan_, api_name="rescan", concurrency_id="index")
        gr.api(ask, api_name="ask", concurrency_id="llm", concurrency_limit=concurrency)
        gr.api(feedback, api_name="feedback")
        gr.api(collections, api_name="collections")
        gr.api(create_collection, api_name="create_collection")
        gr.api(delete_collection, api_name="delete_collection")
    return demo
