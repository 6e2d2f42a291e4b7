"""`rag serve` against `RAG.ask` in this process, for the same questions, in one run.

The server (`python -m rag serve`, the default models, the same index and settings) is asked
through HTTP with a non-streamed chat completion; this process asks its own `RAG`. The two
alternate which goes first for each question, so both see the same KV-cache history. What the
server adds is its total minus `RAG.ask`'s: HTTP, JSON, the queue and the worker thread.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

from rag import RAG

from .common import goal, percentiles
from .server import QUESTIONS, _free_port


def run(*, quick: bool, index: str) -> dict:
    port = _free_port()
    log = tempfile.NamedTemporaryFile("w", prefix="bench-rag-serve-", suffix=".log", delete=False)
    proc = subprocess.Popen([sys.executable, "-m", "rag", "serve", "--port", str(port), "--index", index],
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "RAG_GUARDS": "small"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                with opener.open(url + "/health", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError(f"rag serve exited; see {log.name}")
                time.sleep(0.5)
        rag = RAG(index=index, guards="small")
        rag.warm_up()

        def http(q: str) -> float:
            body = json.dumps({"model": "rag-local", "messages": [{"role": "user", "content": q}]}).encode()
            req = urllib.request.Request(url + "/v1/chat/completions", data=body,
                                         headers={"Content-Type": "application/json"})
            t = time.perf_counter()
            with opener.open(req, timeout=600) as r:
                json.loads(r.read())
            return time.perf_counter() - t

        def local(q: str) -> float:
            t = time.perf_counter()
            rag.ask(q)
            return time.perf_counter() - t

        http(QUESTIONS[0])  # first-call costs of both sides stay out
        local(QUESTIONS[0])
        rows = []
        for i, q in enumerate(QUESTIONS[:2] if quick else QUESTIONS):
            order = (("http", http), ("local", local)) if i % 2 == 0 else (("local", local), ("http", http))
            rows.append({name: fn(q) for name, fn in order})
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    added = [r["http"] - r["local"] for r in rows]
    p = percentiles(added)
    return {"questions": len(rows), "per_question": rows, "added_s": p,
            "http_total_s": percentiles([r["http"] for r in rows]), "local_total_s": percentiles([r["local"] for r in rows]),
            "goals": [goal("latency rag serve adds over RAG.ask (p50)", target="reported", measured=p["p50"],
                           met=True, unit="s")]}
