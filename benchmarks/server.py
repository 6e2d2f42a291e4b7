"""Answers through an LLM server against the same GGUF in-process, on identical prompts.

A llama-cpp-python server (`python -m llama_cpp.server`) is started on a loopback port with
the default model and the same thread count. For each corpus question the pipeline's prompt
is built once; then, alternating which side goes first, the prompt is generated greedily
through `ServerGenerator.stream` (HTTP, server-sent events) and through raw
`Llama.create_completion` in this process. Neither side's KV cache is reset, so both reuse the
fixed head of the prompt as they would in use.
"""
from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from rag import RAG
from rag.prompts import get_template
from rag.server_llm import ServerGenerator

from .common import goal, stats

QUESTIONS = ["What are autoencoders used for?", "What is transfer learning?", "What are GANs?",
             "How do transformers use attention?", "What is LoRA?", "What does dropout do?"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(model: str, n_threads: int, n_ctx: int) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    log = tempfile.NamedTemporaryFile("w", prefix="bench-llama-server-", suffix=".log", delete=False)
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", model, "--host", "127.0.0.1",
                             "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", str(n_threads),
                             "--n_threads_batch", str(n_threads), "--interrupt_requests", "False"],
                            stdout=log, stderr=subprocess.STDOUT)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    for _ in range(400):
        try:
            with opener.open(f"http://127.0.0.1:{port}/v1/models", timeout=2):
                return proc, f"http://127.0.0.1:{port}/v1"
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited; see {log.name}")
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("llama_cpp.server did not start")


def _timed(pieces) -> dict:
    t0 = time.perf_counter()
    first = last = None
    n = 0
    for piece in pieces:
        if not piece:
            continue
        now = time.perf_counter()
        first = first or now
        last = now
        n += 1
    return {"tokens": n, "ttft": first - t0, "decode_s": last - first, "total_s": last - t0}


def run(*, quick: bool, index: str, max_tokens: int = 128) -> dict:
    rag = RAG(index=index, guards="small")
    llm = rag.generator
    llama = llm.warm_up()
    proc, url = _start(llm.path, llm.n_threads, llama.n_ctx())
    try:
        server = ServerGenerator(url, timeout=600)
        server.warm_up()
        tmpl = get_template("few_shot")
        pairs = []
        for i, q in enumerate(QUESTIONS[:2] if quick else QUESTIONS):
            hits = rag.search(q)
            prompt, _ = rag._prompt(q, rag._context(q, hits, rag.policy()), tmpl, [])
            messages = list(prompt.messages)
            ids, _ = llm.tokens(messages)
            runs = {}
            for side in (("server", "raw") if i % 2 == 0 else ("raw", "server")):
                if side == "server":
                    runs[side] = _timed(p for p in server.stream(messages, max_tokens=max_tokens)
                                        if isinstance(p, str))
                else:
                    runs[side] = _timed(c["choices"][0]["text"] for c in llama.create_completion(
                        prompt=ids, max_tokens=max_tokens, temperature=0.0, top_k=1, repeat_penalty=1.1,
                        stream=True))
            pairs.append(runs)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    rate = lambda r: (r["tokens"] - 1) / r["decode_s"] if r["decode_s"] > 0 else 0.0  # noqa: E731
    long = [p for p in pairs if min(p["server"]["tokens"], p["raw"]["tokens"]) > 16]
    ratio = stats([rate(p["server"]) / rate(p["raw"]) for p in long]) if long else stats([0.0])
    overhead = stats([p["server"]["total_s"] - p["raw"]["total_s"] for p in pairs])
    return {
        "questions": len(pairs), "max_tokens": max_tokens,
        "tokens": {"server": [p["server"]["tokens"] for p in pairs], "raw": [p["raw"]["tokens"] for p in pairs]},
        "server_tokens_per_s": stats([rate(p["server"]) for p in long]),
        "raw_tokens_per_s": stats([rate(p["raw"]) for p in long]),
        "decode_ratio": ratio,
        "server_ttft_s": stats([p["server"]["ttft"] for p in pairs]),
        "raw_ttft_s": stats([p["raw"]["ttft"] for p in pairs]),
        "ttft_ratio": stats([p["server"]["ttft"] / p["raw"]["ttft"] for p in pairs]),
        "http_overhead_s": overhead,
        "goals": [goal("decode tokens/s through an LLM server / in-process raw create_completion",
                       target=">= 0.9", measured=ratio["median"], met=ratio["median"] >= 0.9, unit="ratio (median)",
                       note=f"{len(long)} questions with more than 16 tokens on both sides")],
    }
