"""Generation through `RAG.stream` against raw llama-cpp-python, prefix reuse, threads, cold
start, and end-to-end latency of `ask` split by stage.
"""
from __future__ import annotations

import statistics
import time

from rag import RAG

from .common import CORPUS_QUESTIONS, goal, percentiles, run_json_subprocess, stats


class _Recorder:
    """Wraps `Llama.create_completion` to keep the exact arguments the pipeline used."""

    def __init__(self, llama) -> None:
        self.llama = llama
        self.original = llama.create_completion
        self.calls: list[dict] = []

    def __enter__(self):
        def record(*args, **kwargs):
            self.calls.append(dict(kwargs))
            return self.original(*args, **kwargs)
        self.llama.create_completion = record
        return self

    def __exit__(self, *exc):
        del self.llama.create_completion  # back to the class method


# decode speed wants answers the model writes at length: under `auto` the shipped model quotes a
# sentence through the extract grammar, a handful of tokens
DECODE_TEMPLATE = "few_shot"


def _through_rag(rag: RAG, question: str) -> dict:
    from rag.types import DraftText

    t0 = time.perf_counter()
    first = last = None
    # the draft pieces are the tokens as decoded; the checked text comes after the checks
    stream = rag.stream(question, template=DECODE_TEMPLATE, drafts=True)
    for piece in stream:
        if not isinstance(piece, DraftText):
            continue
        if first is None and piece:
            first = time.perf_counter()
        last = time.perf_counter()
    answer = stream.answer
    end = time.perf_counter()
    # counted as for the raw call: tokens the model evaluated after the prompt
    tokens = rag.llm.warm_up().n_tokens - answer.usage.prompt_tokens
    # decode ends with the last piece; the citation and grounding checks after it are timed apart
    return {"tokens": tokens, "ttft": first - t0, "decode_s": last - first, "checks_s": end - last}


def _raw(llama, kwargs: dict) -> dict:
    t0 = time.perf_counter()
    first = last = None
    for chunk in llama.create_completion(**kwargs):
        if chunk["choices"][0].get("text"):
            last = time.perf_counter()
            first = first or last
    tokens = llama.n_tokens - len(kwargs["prompt"])
    return {"tokens": tokens, "ttft": first - t0, "decode_s": last - first}


def decode_ratio(rag: RAG, questions: list[str]) -> dict:
    """Decode tokens/s through RAG.stream and raw create_completion on the same prompt."""
    llama = rag.llm.warm_up()
    pairs = []
    for i, q in enumerate(questions):
        with _Recorder(llama) as rec:  # this run only captures the pipeline's exact arguments
            llama.reset()
            ours = _through_rag(rag, q)
        # the pipeline ends decoding once the answer is complete (stop_early); the raw side is
        # given that many tokens so that both decode the same ones (the last one sampled is
        # not evaluated, hence the one more)
        kwargs = {**rec.calls[-1], "max_tokens": min(rec.calls[-1]["max_tokens"], ours["tokens"] + 1)}
        runs = {}
        # alternate which side goes first so drift in machine load hits both alike
        for side in (("rag", "raw") if i % 2 == 0 else ("raw", "rag")):
            llama.reset()
            runs[side] = _raw(llama, kwargs) if side == "raw" else _through_rag(rag, q)
        assert ours["tokens"] == runs["raw"]["tokens"], "greedy decoding of one prompt should match"
        pairs.append(runs)
    rate = lambda r: (r["tokens"] - 1) / r["decode_s"]  # noqa: E731 - the first token is prefill
    # a short answer is a handful of token times: too few to compare rates
    ours = [rate(p["rag"]) for p in pairs if p["rag"]["tokens"] > 32]
    raw = [rate(p["raw"]) for p in pairs if p["raw"]["tokens"] > 32]
    return {"questions": len(pairs), "tokens": [p["raw"]["tokens"] for p in pairs],
            "answer_checks_s": stats([p["rag"]["checks_s"] for p in pairs]),
            "rag_tokens_per_s": stats(ours), "raw_tokens_per_s": stats(raw),
            "ratio": stats([a / b for a, b in zip(ours, raw)])}


def prefix_cache(rag: RAG, pairs: list[tuple[str, str]]) -> dict:
    """TTFT of a second question (shared few-shot prefix cached) against a cold first one."""
    llama = rag.llm.warm_up()
    cold, warm, ratios, cached = [], [], [], []
    for a, b in pairs:
        rag.ask(a)
        llama.reset()  # forget the KV cache: the next prompt is evaluated from scratch
        first = rag.ask(a)
        second = rag.ask(b)
        cold.append(first.timings.prefill)
        warm.append(second.timings.prefill)
        ratios.append(second.timings.prefill / first.timings.prefill)
        cached.append(second.usage.cached_tokens / max(1, second.usage.prompt_tokens))
    return {"cold_ttft_s": stats(cold), "warm_ttft_s": stats(warm), "ratio": stats(ratios),
            "cached_fraction_of_prompt": stats(cached)}


def threads(rag: RAG, question: str, counts: list[int]) -> dict:
    """Raw decode and prefill speed of the same prompt at several llama.cpp thread counts."""
    from llama_cpp import Llama

    llama = rag.llm.warm_up()
    with _Recorder(llama) as rec:
        rag.ask(question)
    kwargs = rec.calls[-1]
    out = {}
    for n in counts:
        other = Llama(model_path=rag.llm.path, n_ctx=llama.n_ctx(), n_threads=n, n_threads_batch=n,
                      seed=rag.settings.seed, verbose=False)
        runs = []
        for _ in range(1):
            other.reset()
            runs.append(_raw(other, kwargs))
        out[str(n)] = {"decode_tokens_per_s": statistics.median((r["tokens"] - 1) / r["decode_s"] for r in runs),
                       "prefill_s": statistics.median(r["ttft"] for r in runs),
                       "prompt_tokens": len(kwargs["prompt"])}
        other.close()
    return out


_COLD = """
import json, sys, time
t0 = time.perf_counter()
from rag import RAG
t1 = time.perf_counter()
rag = RAG(index=sys.argv[1])
answer = rag.ask(sys.argv[2])
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "rag_to_first_answer_s": t2 - t1, "load_s": answer.timings.load,
                  "answer_total_s": answer.timings.total}))
"""


def cold_start(index: str, question: str, repeats: int) -> dict:
    runs = [run_json_subprocess(_COLD, index, question) for _ in range(repeats)]
    return {k: stats([r[k] for r in runs]) for k in runs[0]}


def end_to_end(rag: RAG, questions: list[str]) -> dict:
    """`ask` over the question set in order, as a user would, split by stage."""
    rows = []
    for q in questions:
        a = rag.ask(q)
        rows.append({"question": q, "total": a.timings.total, "retrieve": a.timings.retrieve,
                     "prompt": a.timings.prompt, "prefill": a.timings.prefill,
                     "decode": a.timings.generate, "prompt_tokens": a.usage.prompt_tokens,
                     "cached_tokens": a.usage.cached_tokens, "completion_tokens": a.usage.completion_tokens,
                     "abstained": a.abstained})
    answered = [r for r in rows if r["prompt_tokens"]]
    split = {k: percentiles([r[k] for r in rows]) for k in ("total", "retrieve", "prompt")}
    split.update({k: percentiles([r[k] for r in answered]) for k in ("prefill", "decode")})
    return {"questions": len(rows), "answered_by_model": len(answered), "seconds": split,
            "prompt_tokens": stats([r["prompt_tokens"] for r in answered]),
            "completion_tokens": stats([r["completion_tokens"] for r in answered]), "per_question": rows}


def run(*, quick: bool, index: str) -> dict:
    # the fixed head read back from disk would make the "cold" first question of prefix_cache
    # warm; the cold section measures that path in a fresh process
    rag = RAG(index=index, save_prefix=False)
    rag.warm_up()
    qs = CORPUS_QUESTIONS[:2] if quick else CORPUS_QUESTIONS[:6]
    out = {"n_threads": rag.llm.n_threads, "n_ctx": rag.llm.n_ctx, "max_tokens": rag.settings.max_tokens}
    out["decode"] = decode_ratio(rag, qs)
    pairs = list(zip(CORPUS_QUESTIONS[0::2], CORPUS_QUESTIONS[1::2]))[: 1 if quick else 3]
    out["prefix_cache"] = prefix_cache(rag, pairs)
    if not quick:
        out["threads"] = threads(rag, CORPUS_QUESTIONS[0], [1, 2] if rag.llm.n_threads <= 2 else [1, 2, rag.llm.n_threads])
    out["end_to_end"] = end_to_end(rag, CORPUS_QUESTIONS[:3] if quick else CORPUS_QUESTIONS[:8])
    out["cold_start"] = cold_start(index, CORPUS_QUESTIONS[0], 1 if quick else 2)
    d, p = out["decode"]["ratio"]["median"], out["prefix_cache"]["ratio"]["median"]
    out["goals"] = [
        goal("decode tokens/s through RAG.stream vs raw create_completion", target=">= 0.95",
             measured=d, met=d >= 0.95),
        goal("TTFT of a second question vs the cold first (few-shot prefix cached)", target="<= 0.5",
             measured=p, met=p <= 0.5),
        goal("cold start: RAG(...) to first answer, default models", target="reported",
             measured=out["cold_start"]["rag_to_first_answer_s"]["median"], unit="s", met=True),
        goal("end-to-end ask p50 / p95 over the corpus questions", target="reported",
             measured=out["end_to_end"]["seconds"]["total"]["p50"], unit="s", met=True,
             note=f"p95 {out['end_to_end']['seconds']['total']['p95']:.2f} s"),
    ]
    return out
