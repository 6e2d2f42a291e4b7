"""A `Generator` over HTTP: any server speaking OpenAI's chat-completions protocol (llama.cpp's
server, llama-cpp-python's `python -m llama_cpp.server`, vLLM, Ollama, LM Studio).

Set `llm_url` (e.g. `http://127.0.0.1:8080/v1`) and no GGUF is loaded in-process. Answers
stream through server-sent events. What the server offers beyond the protocol is found once:

- token counts for context packing: llama.cpp's `/apply-template` + `/tokenize` (exact), or
  llama-cpp-python's `/extras/tokenize/count` (each message's text, plus what the chat template
  adds around it), else an estimate of one token per 3 characters plus 8 per message; every
  count but the exact one gets a 10% margin, so a prompt never overflows the server's window;
- the context size: llama.cpp's `/props`, else the `n_ctx` setting;
- grammars (the `extract` template): the two llama.cpp servers take a GBNF `grammar` field;
  other servers get the template refused with one line;
- prefix reuse: `cache_prompt` is sent (llama.cpp reuses the fixed head of the prompt), and the
  cached share is read from the usage when the server reports it.

Failures are one line each (`ServerError`): unreachable, refused key, unknown model, time-out,
a stream cut off or malformed. Nothing is retried once a token has streamed; a refused
connection is retried once, after a second, before anything was sent.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from typing import Iterator

from ..errors import ConfigError, GeneratorUnreachable
from ..prompts import Message
from ..types import Capabilities, Generation
from .streaming import Decoding

log = logging.getLogger(__name__)

MARGIN = 1.10  # on estimated token counts
CHARS_PER_TOKEN = 3.0  # a conservative estimate for English prose: real tokenizers give ~4
PER_MESSAGE = 8  # tokens a chat template adds around each message, at most, for common ones


class ServerError(GeneratorUnreachable):
    """The LLM server could not be used: down, refusing, or answering something unusable."""


class ServerGenerator:
    """Chat completions from `url` (the base ending in `/v1`). Construction sends nothing."""

    def __init__(self, url: str, *, api_key: str = "", model: str = "", timeout: float = 120.0,
                 n_ctx: int = 4096, seed: int = 0, extra: dict | None = None) -> None:
        url = url.rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"llm_url must start with http:// or https://, got {url!r}")
        self.url = url
        self.root = url[:-3] if url.endswith("/v1") else url  # where llama.cpp's extras live
        self.api_key = api_key
        self.model = model
        self.timeout = timeout
        self._n_ctx_setting = n_ctx
        self.seed = seed
        # sampling options the llama.cpp servers read and others ignore: greedy, as in-process
        self.extra = {"top_k": 1, "repeat_penalty": 1.1, **(extra or {})}
        self._client = None
        self._discovery = threading.Lock()  # two first questions at once share one client
        self._kind: str | None = None  # "llama.cpp", "llama-cpp-python" or "openai"
        self._n_ctx: int | None = None
        self._counts: dict[str, int] = {}
        self.n_params: int | None = None  # a server does not say; guards=auto takes it as capable

    # ---------------------------------------------------------------- discovery

    @property
    def name(self) -> str:
        return f"{self.model or '?'} @ {self.url}"

    @property
    def capabilities(self) -> Capabilities:
        """Early stops always (the stream is closed); a grammar where the server is one of the two
        llama.cpp servers, which is known once it has been asked (`warm_up`)."""
        self.warm_up()
        return Capabilities(grammar=self._kind in ("llama.cpp", "llama-cpp-python"), stop_when=True)

    @property
    def supports_grammar(self) -> bool:  # the name `capabilities.grammar` had before
        return self.capabilities.grammar

    @property
    def n_ctx(self) -> int:
        self.warm_up()
        return self._n_ctx

    def warm_up(self):
        """Ask the server which model it serves and what it offers (once)."""
        if self._kind is not None:
            return self
        with self._discovery:
            if self._kind is None:
                self._discover()
        return self

    def _discover(self) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        if self._client is not None:  # an earlier discovery failed: start clean
            self._client.close()
        self._client = httpx.Client(headers=headers, timeout=httpx.Timeout(self.timeout, connect=10.0),
                                    trust_env=False)  # a loopback server is never behind a proxy
        models = self._get_json(f"{self.url}/models")
        ids = [m.get("id") for m in (models.get("data") or []) if isinstance(m, dict) and m.get("id")]
        if not self.model:
            if not ids:
                raise ServerError(f"the LLM server at {self.url} lists no models; set llm_model")
            self.model = ids[0]
        elif ids and self.model not in ids:
            raise ServerError(f"the LLM server at {self.url} does not serve model {self.model!r}; "
                              f"it serves {', '.join(map(repr, ids[:10]))}")
        props = self._get_json(f"{self.root}/props", optional=True)
        if props is not None:
            n = (props.get("default_generation_settings") or {}).get("n_ctx") or props.get("n_ctx")
            self._n_ctx = int(n) if n else self._n_ctx_setting
            kind = "llama.cpp"
        else:
            probe = self._post_json(f"{self.root}/extras/tokenize/count", {"input": "probe"}, optional=True)
            kind = "llama-cpp-python" if probe is not None else "openai"
            self._n_ctx = self._n_ctx_setting
        # set last: another thread that sees a kind finds the client and n_ctx ready
        self._kind = kind
        log.info("LLM server %s: %s, model %s, n_ctx %d", self.url, self._kind, self.model, self._n_ctx)

    # ---------------------------------------------------------------- tokens

    def count_tokens(self, messages: list[Message]) -> int:
        self.warm_up()
        msgs = [{"role": m.role, "content": m.content} for m in messages]
        if self._kind == "llama.cpp":
            rendered = self._post_json(f"{self.root}/apply-template", {"messages": msgs}, optional=True)
            if rendered and isinstance(rendered.get("prompt"), str):
                out = self._post_json(f"{self.root}/tokenize", {"content": rendered["prompt"]}, optional=True)
                if out and isinstance(out.get("tokens"), list):
                    return len(out["tokens"])
        total = 0
        for m in msgs:
            n = self._counts.get(m["content"])
            if n is None:
                n = self._count_text(m["content"])
                if len(self._counts) > 10_000:
                    self._counts.clear()
                self._counts[m["content"]] = n
            total += n + PER_MESSAGE
        return int(total * MARGIN) + PER_MESSAGE  # and the generation prompt

    def _count_text(self, text: str) -> int:
        if self._kind == "llama-cpp-python":
            out = self._post_json(f"{self.root}/extras/tokenize/count", {"input": text, "model": self.model},
                                  optional=True)
            if out and isinstance(out.get("count"), int):
                return out["count"]
        return int(len(text) / CHARS_PER_TOKEN) + 1

    # ---------------------------------------------------------------- generation

    def stream(self, messages: list[Message], *, max_tokens: int = 256, temperature: float = 0.0,
               stop: tuple[str, ...] = (), grammar: str | None = None,
               stop_when=None) -> Iterator[str | Generation]:
        """Yield text pieces as the server streams them, then one `Generation`. When `stop_when`
        returns a `stopping.Stop`, the stream is closed: the server stops at the disconnect."""
        self.warm_up()
        body = {"model": self.model, "messages": [{"role": m.role, "content": m.content} for m in messages],
                "max_tokens": max_tokens, "temperature": temperature, "stream": True, "seed": self.seed,
                "stream_options": {"include_usage": True}, "cache_prompt": True, **self.extra}
        if stop:
            body["stop"] = list(stop)[:4]  # OpenAI's limit; llama.cpp takes more but the first four suffice
        if grammar is not None:
            if not self.capabilities.grammar:
                raise ConfigError(f"the LLM server at {self.url} takes no grammar; choose a template "
                                  f"other than extract")
            body["grammar"] = grammar
        decoding = Decoding(stop_when)
        usage: dict = {}  # the last usage the server reported
        yield from decoding.run(_pieces(self._events(f"{self.url}/chat/completions", body), usage))
        if decoding.stopped is not None:  # no usage comes after a disconnect: pieces stand for tokens
            usage.pop("completion_tokens", None)
        elif not decoding.finish:
            raise ServerError(f"the LLM server at {self.url} ended its stream without finishing the "
                              f"answer (after {decoding.n_pieces} pieces); try again")
        details = usage.get("prompt_tokens_details") or {}
        timings = usage.get("timings") or {}
        yield decoding.result(
            prompt_tokens=int(usage.get("prompt_tokens") or self.count_tokens(messages)),
            completion_tokens=min(max_tokens, int(usage.get("completion_tokens") or decoding.n_pieces)),
            cached_tokens=int(details.get("cached_tokens") or timings.get("cache_n") or 0))

    def _events(self, url: str, body: dict) -> Iterator[dict]:
        """The JSON events of one server-sent-events response, up to `[DONE]`."""
        import httpx

        try:
            with self._client.stream("POST", url, json=body) as r:
                if r.status_code >= 400:
                    r.read()
                    raise ServerError(self._refusal(r))
                for line in r.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    try:
                        event = json.loads(data)
                    except ValueError:
                        raise ServerError(f"the LLM server at {self.url} sent a malformed event: "
                                          f"{data[:80]!r}") from None
                    if isinstance(event, dict) and event.get("error"):
                        raise ServerError(f"the LLM server at {self.url} failed mid-answer: "
                                          f"{_message(event['error'])}")
                    if isinstance(event, dict):
                        yield event
        except httpx.TimeoutException:
            raise ServerError(f"the LLM server at {self.url} did not answer within {self.timeout:g}s "
                              f"(llm_timeout)") from None
        except httpx.TransportError as e:
            raise ServerError(f"the LLM server at {self.url} broke off: {_reason(e)}") from None

    # ---------------------------------------------------------------- plumbing

    def _get_json(self, url: str, *, optional: bool = False) -> dict | None:
        return self._call("GET", url, None, optional)

    def _post_json(self, url: str, body: dict, *, optional: bool = False) -> dict | None:
        return self._call("POST", url, body, optional)

    def _call(self, method: str, url: str, body: dict | None, optional: bool) -> dict | None:
        import httpx

        for attempt in (1, 2):
            try:
                r = self._client.request(method, url, json=body)
                break
            except httpx.ConnectError as e:
                if attempt == 2:  # nothing was sent: one retry is safe
                    raise ServerError(f"cannot reach the LLM server at {self.url}: {_reason(e)}") from None
                time.sleep(1.0)
            except httpx.TimeoutException:
                raise ServerError(f"the LLM server at {self.url} did not answer within {self.timeout:g}s "
                                  f"(llm_timeout)") from None
            except httpx.TransportError as e:
                raise ServerError(f"the LLM server at {self.url} broke off: {_reason(e)}") from None
        if optional and r.status_code in (404, 405, 422, 501):
            return None
        if r.status_code >= 400:
            raise ServerError(self._refusal(r))
        try:
            out = r.json()
        except ValueError:
            if optional:
                return None
            raise ServerError(f"the LLM server at {self.url} answered {url} with something other "
                              f"than JSON") from None
        return out if isinstance(out, dict) else ({} if not optional else None)

    def _refusal(self, r) -> str:
        if r.status_code == 401:
            return f"the LLM server at {self.url} refused the API key (401); set llm_api_key"
        if r.status_code == 403:
            return f"the LLM server at {self.url} refused access (403)"
        try:
            body = r.json()
        except ValueError:
            body = None
        detail = _message(body.get("error") or body.get("detail") or r.text) if isinstance(body, dict) else r.text
        if r.status_code == 404 and "model" in detail.lower():
            return f"the LLM server at {self.url} does not know model {self.model!r}: {detail[:200]}"
        return f"the LLM server at {self.url} answered {r.status_code}: {' '.join(detail.split())[:200]}"


def _message(error) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error)


def _reason(e: Exception) -> str:
    text = str(e) or type(e).__name__
    return "connection refused" if "refused" in text.lower() else text.splitlines()[0][:120]


def _pieces(events: Iterator[dict], usage: dict) -> Iterator[tuple[str, str | None]]:
    """The server's events as (text, finish reason), the last usage reported kept in `usage`;
    closing this closes the stream (the server stops at the disconnect)."""
    try:
        for event in events:
            if event.get("usage"):
                usage.clear()
                usage.update(event["usage"])
            for choice in event.get("choices") or []:
                yield (choice.get("delta") or {}).get("content") or "", choice.get("finish_reason")
    finally:
        events.close()
