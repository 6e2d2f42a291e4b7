"""What one request may ask for, in the chat and in `rag serve`: the bounds of both surfaces in
one place. The two surfaces keep their own numbers (the chat's slider stops at 12 passages, the
API takes up to 20), named here so neither is written twice.

The chat checks a question with these numbers in `rag.workspace.check_request`, `rag serve`
its JSON bodies in `rag.serve.app`. A leaf: it imports nothing, so either surface may use it.
"""
from __future__ import annotations

# ---------------------------------------------------------------- the chat (app.py) and its API

CHAT_MAX_TOP_K = 12  # the slider's range; the chat's API is held to the same
CHAT_MAX_HISTORY_TURNS = 20  # [question, answer] pairs a request may carry; the chat keeps the last ones
CHAT_MAX_ANSWER_CHARS = 8000  # per answer in a history
# the templates the chat offers, in the order its picker lists them (and its errors name them)
CHAT_TEMPLATES = ("auto", "few_shot", "zero_shot", "cot", "extract")
# feedback on an answer (the chat's thumbs and its /feedback API): the right answer a user writes,
# the answer rated (a whole-document summary runs long) and the citations it names
FEEDBACK_MAX_CORRECTION = 2000
FEEDBACK_MAX_ANSWER_CHARS = 20000
FEEDBACK_MAX_CITATIONS = 50

# ---------------------------------------------------------------- `rag serve` (OpenAI's protocol)

API_MAX_BODY = 1 << 20  # bytes of a request
API_MAX_TOP_K = 20
API_MAX_MESSAGES = 64
API_MAX_EMBED_INPUTS = 256
API_MAX_EMBED_CHARS = 8192
# Levels of arrays and objects in a request body. OpenAI's requests nest about 6 deep (a tool's
# JSON schema a few more); past this a body is refused (400) before any route reads it.
API_MAX_DEPTH = 64

