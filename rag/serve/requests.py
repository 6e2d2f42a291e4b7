"""What `rag serve` reads from a request: its JSON body (`parse_body`: finite numbers, at most
MAX_DEPTH levels of nesting) and a chat-completions request checked field by field
(`parse_chat`); anything wrong is an `APIError(400)` in OpenAI's error shape naming it.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from ..bounds import API_MAX_DEPTH as MAX_DEPTH, API_MAX_MESSAGES as MAX_MESSAGES, API_MAX_TOP_K as MAX_TOP_K
from ..present import without_footer
from ..prompts import TEMPLATE_NAMES
from ..toolbox import MAX_ID_CHARS
from ..types import Turn
from .errors import APIError

MODEL = "rag-local"


@dataclass
class ChatRequest:
    question: str
    history: list[Turn] = field(default_factory=list)
    template: str = "auto"
    model: str = MODEL
    stream: bool = False
    top_k: int | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    sources: bool | None = None  # the Sources footer in the content; None: the server's setting
    include_usage: bool = False  # stream_options.include_usage: a last chunk with usage only
    document: str | None = None  # the indexed document (or folder) the question is about: RAG's `source`


def _reject_constant(name: str):
    raise _NonFinite(name)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses as inf
        raise _NonFinite(text)
    return value


class _NonFinite(ValueError):
    """NaN, Infinity or a number too large for a float: Python's json reads them, JSON has none."""


def _too_deep(data, limit: int) -> bool:
    """Whether `data` nests arrays and objects more than `limit` deep (level by level, no recursion)."""
    level, depth = [data], 0
    while level:
        depth += 1
        if depth > limit:
            return True
        level = [v for x in level for v in (x.values() if isinstance(x, dict) else x)
                 if isinstance(v, (dict, list))]
    return False


def parse_body(body: bytes):
    """A request body as JSON, refused with APIError(400) when it is not JSON, names a
    non-finite number or nests more than MAX_DEPTH levels."""
    try:
        data = json.loads(body or b"null", parse_constant=_reject_constant, parse_float=_finite_float)
    except _NonFinite as e:
        raise APIError(400, f"the request body has the number {e}, which JSON does not allow; send a finite "
                            "number", code="invalid_number") from None
    except RecursionError:  # the C parser stops at the interpreter's recursion limit (~1000 levels)
        raise APIError(400, f"the request body nests arrays or objects more than {MAX_DEPTH} levels deep",
                       code="too_deep") from None
    except ValueError:  # JSONDecodeError, bad UTF-8, an integer of more than 4300 digits
        raise APIError(400, "the request body is not valid JSON") from None
    if isinstance(data, (dict, list)) and _too_deep(data, MAX_DEPTH):
        raise APIError(400, f"the request body nests arrays or objects more than {MAX_DEPTH} levels deep",
                       code="too_deep")
    return data


# ---------------------------------------------------------------- requests

def _text(content) -> str | None:
    """A message's text: a string, or OpenAI's list of {"type": "text", "text": ...} parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) for p in content):
        parts = [p.get("text") for p in content if p.get("type") == "text"]
        if all(isinstance(p, str) for p in parts) and parts:
            return "\n".join(parts)
    return None


def parse_chat(data: dict, *, n_ctx: int) -> ChatRequest:
    """A chat-completions body checked field by field; APIError(400) names what is wrong."""
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise APIError(400, "messages must be a non-empty list", param="messages")
    if len(messages) > MAX_MESSAGES:
        raise APIError(400, f"at most {MAX_MESSAGES} messages", param="messages")
    turns: list[tuple[str, str]] = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "developer", "user", "assistant", "tool"):
            raise APIError(400, f"messages[{i}] must be an object with a role of system, user or assistant",
                           param=f"messages[{i}]")
        text = _text(m.get("content"))
        if text is None and m["role"] in ("user", "assistant"):
            raise APIError(400, f"messages[{i}].content must be text", param=f"messages[{i}].content")
        if m["role"] in ("user", "assistant"):
            turns.append((m["role"], without_footer(text) if m["role"] == "assistant" else text))
    if not turns or turns[-1][0] != "user":
        raise APIError(400, "the last message must be the user's question", param="messages")
    history = [Turn(q, a) for (rq, q), (ra, a) in zip(turns, turns[1:]) if rq == "user" and ra == "assistant"]
    model = data.get("model") or MODEL
    if not isinstance(model, str) or not (model == MODEL or model.startswith(MODEL + ":")):
        raise APIError(404, f"model {model!r} does not exist; this server answers as {MODEL!r} or "
                            f"{MODEL}:<template>", param="model", code="model_not_found")
    template = model.partition(":")[2] or "auto"
    if template not in TEMPLATE_NAMES:
        raise APIError(404, f"model {model!r} does not exist: templates are {', '.join(TEMPLATE_NAMES)}",
                       param="model", code="model_not_found")
    req = ChatRequest(question=turns[-1][1], history=history, template=template, model=model)
    req.stream = _field(data, "stream", bool, default=False)
    req.top_k = _field(data, "top_k", int, low=1, high=MAX_TOP_K)
    req.max_tokens = _field(data, "max_completion_tokens", int, low=1, high=n_ctx // 2) or \
        _field(data, "max_tokens", int, low=1, high=n_ctx // 2)
    req.temperature = _field(data, "temperature", float, low=0.0, high=2.0)
    _refuse_unsupported(data)
    req.sources = _field(data, "sources", bool)
    req.document = _document(data)
    options = data.get("stream_options")
    if options is not None:
        if not isinstance(options, dict):
            raise APIError(400, "stream_options must be an object", param="stream_options")
        if not req.stream:
            raise APIError(400, "stream_options is only allowed with stream: true", param="stream_options")
        req.include_usage = _field(options, "include_usage", bool, default=False)
    return req


def _document(data: dict) -> str | None:
    """`document`: an indexed path or folder (checked against the index by the app), bounded."""
    value = data.get("document")
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_ID_CHARS or "\x00" in value:
        raise APIError(400, f"document must be a document's path as the index names it: a non-empty text of "
                            f"at most {MAX_ID_CHARS} characters", param="document")
    return value


def _refuse_unsupported(data: dict) -> None:
    """A 400 naming each OpenAI option this server cannot honour, rather than an answer that
    silently ignores it: a client asking for tool calls, JSON or log-probabilities would
    otherwise take plain text for what it asked for."""
    n = _field(data, "n", int, low=1, default=1)
    if n != 1:
        raise APIError(400, "n must be 1: this server gives one checked answer per request",
                       param="n", code="unsupported_parameter")
    tools, choice = data.get("tools"), data.get("tool_choice")
    if tools not in (None, []) or choice not in (None, "none"):
        raise APIError(400, "tools and tool_choice are not supported: this server answers from your documents "
                            "and calls no tools (omit them, or send tool_choice \"none\")",
                       param="tools" if tools not in (None, []) else "tool_choice", code="unsupported_parameter")
    if data.get("functions") not in (None, []) or data.get("function_call") not in (None, "none"):
        raise APIError(400, "functions and function_call are not supported: this server calls no functions",
                       param="functions", code="unsupported_parameter")
    fmt = data.get("response_format")
    if fmt is not None and not (isinstance(fmt, dict) and fmt.get("type") == "text"):
        kind = fmt.get("type") if isinstance(fmt, dict) else None
        raise APIError(400, f"response_format {str(kind or fmt)[:40]!r} is not supported: answers are text "
                            "with citations (send {\"type\": \"text\"} or omit it)",
                       param="response_format", code="unsupported_parameter")
    for name in ("logprobs", "top_logprobs"):
        value = data.get(name)
        if value not in (None, False, 0):
            raise APIError(400, f"{name} is not supported: the checked answer is not the model's raw tokens",
                           param=name, code="unsupported_parameter")


def _field(data: dict, name: str, kind, *, low=None, high=None, default=None):
    value = data.get(name)
    if value is None:
        return default
    if kind is bool:
        ok = isinstance(value, bool)
    else:  # (an int is whole as it is: float() of one of 400 digits would overflow)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and \
            (kind is float or isinstance(value, int) or value.is_integer())
    if not ok:
        raise APIError(400, f"{name} must be {'a boolean' if kind is bool else 'an integer' if kind is int else 'a number'}",
                       param=name)
    shown = str(value)
    try:
        value = kind(value)
    except OverflowError:  # an integer too large for a float: out of any range
        value = None
    # NaN compares false with any bound; the body parser refuses it already, callers of
    # parse_chat with a dict of their own are held to the same rule
    if value is None or kind is float and not math.isfinite(value) or \
            (low is not None and value < low) or (high is not None and value > high):
        shown = shown if len(shown) <= 40 else f"{shown[:20]}...({len(shown)} digits)"
        span = f"at least {low}" if high is None else f"between {low} and {high}"
        raise APIError(400, f"{name} must be {span}, got {shown}", param=name)
    return value
