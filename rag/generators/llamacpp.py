"""The in-process generator (`llm_url` unset): a GGUF model through llama-cpp-python, loaded on
first use.

The prompt is rendered with the model's own chat template (read from the GGUF) and tokenized
here, so that packing counts exactly the tokens the model will see; llama.cpp's KV cache is
reused up to the last message boundary shared with the previous call (see `_prefill_head`).
"""
from __future__ import annotations

import logging
import os
from typing import Iterator

from ..errors import ConfigError, QueryError
from ..prefix_cache import FOLDER as PREFIX_FOLDER, PrefixCache
from ..prompts import Message
from ..types import Capabilities, Generation
from .streaming import Decoding

log = logging.getLogger(__name__)

# Used only when a GGUF carries no chat template of its own.
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
          "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def default_threads() -> int:
    # llama.cpp's own default is half the logical cores; on a 2-core laptop that idles a core
    return max(1, min(8, os.cpu_count() or 1))


class LLM:
    """A local GGUF chat model. Construction is cheap; `warm_up()` (or first use) loads it."""

    def __init__(self, path: str, *, n_ctx: int = 4096, n_threads: int = 0, n_gpu_layers: int = 0,
                 seed: int = 0, prefix_cache: str | os.PathLike | None = PREFIX_FOLDER) -> None:
        self.path = path
        self.prefix_folder = prefix_cache  # where fixed prompt heads' KV states are kept; None: nowhere
        self._prefix = None
        self.n_ctx_requested = n_ctx
        self.n_threads = n_threads or default_threads()
        self.n_gpu_layers = n_gpu_layers
        self.seed = seed
        self._llama = None
        self._formatter = None
        self._head_formatter = None
        self._pieces: set[int] = set()  # token positions where the cached prompt's pieces end

    # grammars, early stops and a fixed head kept on disk: llama.cpp's own sampler and KV cache
    capabilities = Capabilities(grammar=True, stop_when=True, cache_head=True)
    supports_grammar = capabilities.grammar  # the name this declaration had before `capabilities`

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    @property
    def n_params(self) -> int:
        """Parameter count, from the loaded GGUF (guards=auto picks its profile by it)."""
        return int(self.warm_up()._model.n_params())

    def warm_up(self):
        if self._llama is not None:
            return self._llama
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        try:
            llama = Llama(model_path=self.path, n_ctx=self.n_ctx_requested, n_threads=self.n_threads,
                          n_threads_batch=self.n_threads, n_gpu_layers=self.n_gpu_layers,
                          seed=self.seed, verbose=False)
        except (ValueError, RuntimeError, OSError) as e:
            raise ConfigError(f"cannot load model {self.path}: {e}") from e
        template = llama.metadata.get("tokenizer.chat_template") or CHATML
        eos = llama.detokenize([llama.token_eos()], special=True).decode("utf-8", "ignore")
        bos_id = llama.token_bos()
        bos = llama.detokenize([bos_id], special=True).decode("utf-8", "ignore") if bos_id >= 0 else ""
        self._formatter = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos,
                                              add_generation_prompt=True)
        self._head_formatter = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos,
                                                   add_generation_prompt=False)
        if self.prefix_folder:
            self._prefix = PrefixCache(self.path, n_ctx=llama.n_ctx(), n_gpu_layers=self.n_gpu_layers,
                                       folder=self.prefix_folder)
        self._llama = llama
        log.info("model %s loaded (n_ctx %d, %d threads, %d GPU layers)", self.name, llama.n_ctx(),
                 self.n_threads, self.n_gpu_layers)
        return llama

    def reset(self) -> None:
        """Forget the KV cache: the next prompt is evaluated from its first token."""
        self.warm_up().reset()
        self._pieces = set()

    @property
    def n_ctx(self) -> int:
        return self.warm_up().n_ctx()

    def tokens(self, messages: list[Message]) -> tuple[list[int], list[str]]:
        """The exact token ids of the rendered chat prompt, and the template's stop strings."""
        llama = self.warm_up()
        out = self._formatter(messages=[{"role": m.role, "content": m.content} for m in messages])
        # the template writes BOS itself when the model wants one
        ids = llama.tokenize(out.prompt.encode("utf-8"), add_bos=False, special=True)
        stop = out.stop if isinstance(out.stop, list) else [out.stop] if out.stop else []
        return ids, stop

    def _boundaries(self, messages: list[Message], ids: list[int]) -> dict[int, int]:
        """Token positions in `ids` where each message but the last ends, by the number of
        messages before them."""
        llama = self.warm_up()
        out: dict[int, int] = {}
        for i in range(1, len(messages)):
            try:
                text = self._head_formatter(messages=[{"role": m.role, "content": m.content}
                                                      for m in messages[:i]]).prompt
            except Exception:  # noqa: BLE001 - a template may refuse a conversation's start
                continue
            head = llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)
            # a template that renders a conversation's start differently gives no boundary here
            if head and len(head) < len(ids) and ids[:len(head)] == head and (
                    not out or len(head) > max(out.values())):
                out[i] = len(head)
        return out

    def _prefill_head(self, ids: list[int], boundaries: list[int], fixed: int = 0) -> int:
        """Bring the KV cache to the prompt's last message boundary, reusing what matches.

        The cache is reused only up to a message boundary and the rest is evaluated message by
        message, so that every prompt is computed in the same pieces whatever came before.
        Reusing the longest token match instead made the answer depend on the previous question:
        the logits of a prompt prefilled in one batch differ in the last bits from those of the
        same prompt split at another point, and a small model's greedy pick flips on that
        ("None." against "Google [4]" for one question, asked after different ones).

        `fixed`, when one of `boundaries`, ends the head that holds no user data: a cache that
        has nothing to reuse reads its state from disk (`prefix_cache`), or saves it once
        evaluated, so that the first question of a process is spared its prefill too."""
        llama = self.warm_up()
        prev = llama.input_ids[: llama.n_tokens].tolist()
        match = 0
        for a, b in zip(prev, ids):
            if a != b:
                break
            match += 1
        # only the ends of pieces the last call prefilled: its final message went in one batch with
        # the generation prompt, and its answer a token at a time
        reuse = max([b for b in boundaries if b <= match and b in self._pieces], default=0)
        if reuse and not llama._ctx.kv_cache_seq_rm(-1, reuse, -1):
            reuse = 0  # a model whose cache cannot be cut part way (recurrent) starts afresh
        saved = self._prefix if fixed in boundaries else None
        if not reuse:
            llama.reset()
            if saved is not None and saved.load(llama, ids[:fixed]):
                reuse = fixed
        llama.n_tokens = reuse
        for start, end in zip([reuse] + boundaries, boundaries):
            if end > reuse:
                llama.eval(ids[max(start, reuse):end])
                if end == fixed and saved is not None:
                    saved.save(llama, ids[:end])
        self._pieces = set(boundaries)
        return reuse

    def count_tokens(self, messages: list[Message]) -> int:
        return len(self.tokens(messages)[0])

    def count_text_tokens(self, text: str) -> int:
        return len(self.warm_up().tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def stream(self, messages: list[Message], *, max_tokens: int = 256, temperature: float = 0.0,
               stop: tuple[str, ...] = (), grammar: str | None = None,
               stop_when=None, cache_head: int = 0) -> Iterator[str | Generation]:
        """Yield text pieces as they are decoded, then one final `Generation`.

        `grammar` (GBNF) limits what may be generated; see `extract.span_grammar`. `stop_when`
        reads the text so far and ends decoding when it returns a `stopping.Stop`. The first
        `cache_head` messages are fixed text whose KV state may be kept on disk."""
        llama = self.warm_up()
        ids, template_stop = self.tokens(messages)
        if len(ids) + max_tokens > llama.n_ctx():
            raise QueryError(f"prompt of {len(ids)} tokens plus {max_tokens} answer tokens exceeds "
                             f"the context window of {llama.n_ctx()}")
        decoding = Decoding(stop_when, finish="stop")  # started before the prefill: it is the ttft
        bounds = self._boundaries(messages, ids)
        cached = self._prefill_head(ids, list(bounds.values()), bounds.get(cache_head, 0))
        constraint = None
        if grammar is not None:
            from llama_cpp import LlamaGrammar

            constraint = LlamaGrammar.from_string(grammar, verbose=False)
        chunks = llama.create_completion(
            prompt=ids, max_tokens=max_tokens, temperature=temperature, top_k=1 if temperature == 0 else 40,
            repeat_penalty=1.1, stop=list(stop) + template_stop, seed=self.seed, stream=True,
            grammar=constraint)
        yield from decoding.run(_pieces(chunks))
        n_chunks = decoding.n_chunks
        if decoding.stopped is not None:
            # complete, not cut off by the limit: the last token sampled was not evaluated yet
            completion = min(max_tokens, max(llama.n_tokens - len(ids) + 1, n_chunks))
        else:
            # tokens decoded after the prompt; the last one sampled is not evaluated, and a
            # stream's closing chunk carries no token, so neither count alone is right
            completion = min(max_tokens, max(llama.n_tokens - len(ids),
                                             n_chunks - 1 if decoding.finish == "length" else n_chunks))
        yield decoding.result(prompt_tokens=len(ids), completion_tokens=completion, cached_tokens=cached)

    def generate(self, messages: list[Message], **kwargs) -> Generation:
        """The whole completion at once; same options as `stream`."""
        for item in self.stream(messages, **kwargs):
            if isinstance(item, Generation):
                return item
        raise RuntimeError("generation ended without a result")  # unreachable by construction


def _pieces(chunks) -> Iterator[tuple[str, str | None]]:
    """llama.cpp's completion chunks as (text, finish reason); closing this closes them."""
    try:
        for chunk in chunks:
            choice = chunk["choices"][0]
            yield choice.get("text") or "", choice.get("finish_reason")
    finally:
        chunks.close()
