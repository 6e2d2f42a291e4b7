"""Speed on a laptop (issue 20), each measured against its own "off" switch or the raw library
in the same run:

- `stop_early`: generated tokens against the tokens of the answer shown, with the stop on and off;
- `answer_evals`: the corpus eval set answered with the stop on and off, and with the default
  model requantized (`model_quant`), so the answer metrics decide;
- `prefill`: raw `create_completion` prefill and decode tokens/s of the shipped Q4_1 model and
  its requantized copies on the pipeline's identical prompts, under the AVX2 and AVX-512 builds
  of llama.cpp where the CPU runs both (`flavours`);
- `cold`: a fresh `rag ask` to its first token, this tree against the commit before issue 20,
  split by stage, and the chat's start at a large index;
- `concurrency`: 20 simultaneous chat API users, one question at a time against several;
- `first_word`: the time to the first visible word now that only checked text is shown, against
  the time to the draft's first word, from one stream;
- `mcp_start`: `rag mcp` from its launch to the tool list an agent asks for first, through the
  `mcp` SDK's client, against the same client starting the bare SDK's server of one tool.
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from rag import RAG
from rag.buildflags import choose, cpu_flags
from rag.config import default_llm_path

from . import flavours
from .common import CORPUS_QUESTIONS, ROOT, goal, percentiles, run_json_subprocess, stats
from .generation import _raw, _Recorder

# the commit before issue 20: the "old path" of the cold-start comparison
BASELINE_COMMIT = "37bc46e"


# ---------------------------------------------------------------- 1. stop early

def _shown_tokens(rag: RAG, answer) -> int:
    return rag.llm.count_text_tokens(answer.text) if not answer.abstained else 0


def stop_early(*, index: str, questions: list[str]) -> dict:
    """Each question with the stop on and off, alternating which goes first."""
    rag = RAG(index=index)
    rag.warm_up()
    on, off = rag.settings, dataclasses.replace(rag.settings, stop_early=False)
    rows = []
    for i, q in enumerate(questions):
        runs = {}
        for side in (("on", "off") if i % 2 == 0 else ("off", "on")):
            rag.settings = on if side == "on" else off
            a = rag.ask(q)
            runs[side] = {"tokens": a.usage.completion_tokens, "shown": _shown_tokens(rag, a),
                          "total": a.timings.total, "decode": a.timings.generate, "text": a.text,
                          "abstained": a.abstained, "by_model": a.usage.prompt_tokens > 0}
        rows.append({"question": q, **runs, "same_answer": runs["on"]["text"] == runs["off"]["text"]})
    rag.settings = on
    out = {"questions": len(rows), "per_question": rows}
    for side in ("on", "off"):
        kept = [r[side] for r in rows if r[side]["by_model"] and not r[side]["abstained"]]
        out[side] = {"total_s": percentiles([r[side]["total"] for r in rows]),
                     "decode_s": percentiles([r[side]["decode"] for r in rows if r[side]["by_model"]]),
                     "generated": sum(r["tokens"] for r in kept), "shown": sum(r["shown"] for r in kept),
                     "generated_per_shown": sum(r["tokens"] for r in kept) / max(1, sum(r["shown"] for r in kept)),
                     "answered": len(kept)}
    ratio = out["on"]["generated_per_shown"]
    p50_on, p50_off = out["on"]["total_s"]["p50"], out["off"]["total_s"]["p50"]
    same = sum(r["same_answer"] for r in rows)
    out["goals"] = [
        goal("stop_early: generated tokens per token of the answer shown", target="<= 1.3", measured=ratio,
             met=ratio <= 1.3, note=f"off: {out['off']['generated_per_shown']:.2f}; {same}/{len(rows)} answers "
                                    f"identical"),
        goal("stop_early: ask total p50, on / off", target="reported", measured=p50_on / p50_off, unit="ratio",
             met=True, note=f"{p50_on:.2f} s against {p50_off:.2f} s"),
    ]
    return out


# ---------------------------------------------------------------- first visible word

def first_word(*, index: str, questions: list[str], model: str | None = None) -> dict:
    """What showing only checked text costs the reader: per question, from the call to the first
    piece of the model's draft (what a reader saw first before) and to the first piece of the
    checked answer (what a reader sees first now), both read off the same stream (`drafts=True`)."""
    from rag.types import DraftText

    rag = RAG(index=index, **({"model": model} if model else {}))
    rag.warm_up()
    rag.ask(questions[0])  # first-call costs stay out of the figures
    rows = []
    for q in questions:
        t0 = time.perf_counter()
        draft = checked = None
        stream = rag.stream(q, drafts=True)
        for piece in stream:
            now = time.perf_counter() - t0
            if isinstance(piece, DraftText):
                draft = now if draft is None else draft
            elif checked is None:
                checked = now
        rows.append({"question": q, "draft_s": draft if draft is not None else checked,
                     "checked_s": checked, "abstained": stream.answer.abstained})
    d = percentiles([r["draft_s"] for r in rows])
    c = percentiles([r["checked_s"] for r in rows])
    out = {"questions": len(rows), "per_question": rows, "first_draft_word_s": d, "first_checked_word_s": c}
    out["goals"] = [goal("first visible word: checked answer / draft, p50", target="reported",
                         measured=c["p50"] / d["p50"], unit="ratio", met=True,
                         note=f"{c['p50']:.2f} s against {d['p50']:.2f} s (p95 {c['p95']:.2f} against {d['p95']:.2f})")]
    return out


_BARE_MCP = """
from mcp.server.mcpserver import MCPServer
server = MCPServer("bare")
@server.tool()
def echo(text: str) -> str:
    return text
server.run("stdio")
"""


def mcp_start(*, index: str, repeats: int = 5) -> dict:
    """Seconds from launching `rag mcp` over `index` to its tool list in the SDK's client (an
    agent's first request), against the bare SDK's one-tool server started the same way."""
    import anyio
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}

    async def once(params) -> float:
        t0 = time.perf_counter()
        async with Client(params) as c:
            await c.list_tools()
            return time.perf_counter() - t0

    rag_mcp = StdioServerParameters(command=sys.executable, args=["-m", "rag", "mcp", "--index", index], env=env)
    bare = StdioServerParameters(command=sys.executable, args=["-c", _BARE_MCP], env=env)
    rows = {"rag_mcp_s": [], "bare_sdk_s": []}
    for _ in range(repeats):  # interleaved, so a busy moment costs both alike
        rows["rag_mcp_s"].append(anyio.run(once, rag_mcp))
        rows["bare_sdk_s"].append(anyio.run(once, bare))
    r, b = percentiles(rows["rag_mcp_s"]), percentiles(rows["bare_sdk_s"])
    out = {"repeats": repeats, **rows, "rag_mcp": r, "bare_sdk": b}
    out["goals"] = [goal("rag mcp: launch to tool list, p50", target="< 5 s", measured=r["p50"], unit="s",
                         met=r["p50"] < 5, note=f"{r['p50'] / b['p50']:.2f}x the bare SDK server's "
                                                 f"{b['p50']:.2f} s (p95 {r['p95']:.2f} s)")]
    return out


# ---------------------------------------------------------------- answer metrics

EVAL_VARIANTS = (
    ("Q4_1 (shipped), stop_early off", {"stop_early": False, "model_quant": "shipped"}),
    ("Q4_1 (shipped), stop_early on", {"stop_early": True, "model_quant": "shipped"}),
)
# requantized variants evaluated after those two (each eval takes minutes on 2 cores)
EVAL_QUANTS = tuple(q for q in os.environ.get("BENCH_EVAL_QUANTS", "q4_0,q8_0").split(",") if q)
METRICS = (("answer", "contains"), ("answer", "f1"), ("abstention", "recall"),
           ("abstention", "false_abstention_rate"), ("citations", "precision"), ("citations", "hit_rate"))


def answer_evals(*, index: str, dataset: str = "data/eval/corpus.jsonl", limit: int | None = None) -> dict:
    """`rag eval DATASET --templates few_shot` once per variant, in this process; where the CPU runs
    two llama.cpp builds, the shipped model's once more under the one not installed, in a fresh one."""
    out = {"dataset": dataset, "variants": {}}
    variants = list(EVAL_VARIANTS) + [(f"{q.upper()} (requantized), stop_early on",
                                       {"stop_early": True, "model_quant": q}) for q in EVAL_QUANTS]
    for name, overrides in variants:
        out["variants"][name] = eval_variant(index, dataset, overrides, limit)
    v = list(out["variants"].values())
    builds = flavours.pair()
    if builds is not None:
        # the other build's answers: its kernels round differently, so greedy answers may differ
        used = flavours.installed(builds)
        other, options = next(b for b in builds if b[0] != used)
        with tempfile.TemporaryDirectory(prefix="bench-flavour-eval-") as tmp:
            site = flavours.unpack(other, options, Path(tmp))
            x = run_json_subprocess(_EVAL_IN_BUILD, str(site), index, dataset, json.dumps(EVAL_VARIANTS[1][1]),
                                    str(limit or 0), timeout=3600)
        out["variants"][f"Q4_1 (shipped), stop_early on, {other} build instead of {used}"] = x
    # lower is better for false abstentions, higher for the rest
    sign = {m: -1 if m.endswith("false_abstention_rate") else 1 for m in v[0]["metrics"]}
    drop_stop = max(sign[m] * (v[0]["metrics"][m] - v[1]["metrics"][m]) for m in sign)
    out["goals"] = [
        goal("stop_early: largest drop of an answer metric on the corpus eval set", target="<= 0",
             measured=drop_stop, met=drop_stop <= 1e-9,
             note=f"generated per question {v[0]['generated_mean']:.0f} -> {v[1]['generated_mean']:.0f} tokens")]
    for q, x in zip(EVAL_QUANTS, v[2:]):
        worst = max(abs(x["metrics"][m] - v[1]["metrics"][m]) for m in sign)
        out["goals"].append(goal(f"{q.upper()} requantized: largest change of an eval metric against Q4_1",
                                 target="<= 0.02", measured=worst, met=worst <= 0.02 + 1e-9,
                                 note=f"contains {x['metrics']['answer.contains']:.3f} against "
                                      f"{v[1]['metrics']['answer.contains']:.3f}"))
    return out


def eval_variant(index: str, dataset: str, overrides: dict, limit: int | None) -> dict:
    """One `rag eval DATASET --templates few_shot` with `overrides`, as the row the report shows."""
    from rag.config import Settings
    from rag.evaluation.data import load_dataset
    from rag.evaluation.runner import CACHE_ROOT, run_eval

    evalset = load_dataset(str(ROOT / dataset), cache_root=CACHE_ROOT)
    rag = RAG(Settings.load(index=index, **overrides), build_missing=False)
    rep = run_eval(evalset, rag, templates=["few_shot"], limit=limit).to_dict()
    t = rep["templates"]["few_shot"]
    rag.llm.warm_up().close()
    return {"settings": overrides, "model": Path(rag.llm.path).name,
            "metrics": {f"{g}.{k}": t[g][k] for g, k in METRICS},
            "generated_mean": t["tokens"]["generated_mean"],
            "total_p50_s": t["latency"]["total_p50_s"], "seconds": rep["seconds"]}


# one eval variant under another llama.cpp build: argv = site, index, dataset, overrides, limit
_EVAL_IN_BUILD = r"""
import json, sys
sys.path.insert(0, sys.argv[1])  # that build's llama_cpp ahead of the venv's
from benchmarks.speed import eval_variant
row = eval_variant(sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), int(sys.argv[5]) or None)
import llama_cpp
assert llama_cpp.__file__.startswith(sys.argv[1]), llama_cpp.__file__
print(json.dumps(row))
"""


# ---------------------------------------------------------------- 2. prefill

QUANTS = ("shipped", "q4_0", "q8_0")


def prefill(*, index: str, questions: list[str], repeats: int = 3, flavour_prompts: int = 2) -> dict:
    """Raw create_completion of the pipeline's own prompts with each quantization, alternating;
    then the first `flavour_prompts` of them with each llama.cpp build this CPU can run."""
    import llama_cpp
    from llama_cpp import Llama

    from rag.quantize import requantize

    rag = RAG(index=index)
    llama = rag.llm.warm_up()
    prompts = []
    for q in questions:
        with _Recorder(llama) as rec:
            rag.ask(q)
        if rec.calls:
            prompts.append(rec.calls[-1])
    src = default_llm_path()
    with tempfile.TemporaryDirectory(prefix="bench-quant-") as tmp:
        t0 = time.perf_counter()
        requantize(src, "q4_0", cache=Path(tmp))
        quantize_s = time.perf_counter() - t0
    paths = {q: str(requantize(src, q)) for q in QUANTS}
    n = rag.llm.n_threads
    models = {q: Llama(model_path=p, n_ctx=llama.n_ctx(), n_threads=n, n_threads_batch=n, seed=0, verbose=False)
              for q, p in paths.items()}
    runs: dict[str, list[dict]] = {q: [] for q in QUANTS}
    for r in range(repeats):
        for i, kwargs in enumerate(prompts):
            order = QUANTS if (r + i) % 2 == 0 else tuple(reversed(QUANTS))
            for q in order:
                models[q].reset()
                res = _raw(models[q], {**kwargs, "max_tokens": 64})
                runs[q].append({**res, "prompt": len(kwargs["prompt"])})
    out = {"threads": n, "prompts": len(prompts), "repeats": repeats, "quantize_s": quantize_s,
           "prompt_tokens": stats([len(k["prompt"]) for k in prompts]), "quants": {}}
    for q in QUANTS:
        rs = runs[q]
        out["quants"][q] = {"file": Path(paths[q]).name, "size_mb": os.path.getsize(paths[q]) / 2 ** 20,
                            "prefill_tokens_per_s": stats([x["prompt"] / x["ttft"] for x in rs]),
                            "decode_tokens_per_s": stats([(x["tokens"] - 1) / x["decode_s"] for x in rs
                                                          if x["tokens"] > 8])}
    for m in models.values():
        m.close()
    flags = cpu_flags()
    # the build installed, which RAG_LLAMA_AVX512 may have made the AVX-512 one
    flavour, options = choose(flags, avx512=b"AVX512 = 1" in llama_cpp.llama_print_system_info())
    # the portable AVX2 build against the AVX-512 one, in fresh interpreters (None: no AVX-512)
    builds = flavours.compare(prompts[:flavour_prompts], paths, threads=n, n_ctx=llama.n_ctx(),
                              repeats=repeats, flags=flags)
    out["build"] = {"flavour": flavour, "cmake": options,
                    "avx512": sorted(f for f in flags if f.startswith("avx512")),
                    "measured_avx512": builds is not None, "flavours": builds}
    base = out["quants"]["shipped"]["prefill_tokens_per_s"]["median"]
    q40 = out["quants"]["q4_0"]["prefill_tokens_per_s"]["median"]
    out["goals"] = [goal("prefill tokens/s, Q4_0 requantized / Q4_1 shipped (raw create_completion)",
                         target="reported", measured=q40 / base, unit="ratio", met=True,
                         note=f"{q40:.0f} against {base:.0f} tok/s")]
    if builds is not None:
        row = builds["models"]["shipped"]
        fb, ch = builds["fallback"], builds["chosen"]
        # reported: the set-up builds the portable wheel unless asked (rag/buildflags.py says why)
        out["goals"].append(goal(
            f"prefill tokens/s, the AVX-512 {ch} build / the portable {fb} build (shipped Q4_1)",
            target="reported", measured=row["prefill_ratio"], unit="ratio", met=True,
            note=f"{row[ch]['prefill_tokens_per_s']['median']:.0f} against "
                 f"{row[fb]['prefill_tokens_per_s']['median']:.0f} tok/s; decode x{row['decode_ratio']:.2f}; "
                 f"{row['same_text']}/{len(prompts[:flavour_prompts])} answers identical"))
    return out


# ---------------------------------------------------------------- 3. cold start

_COLD = r"""
import json, sys, time
t0 = time.perf_counter()
T = {}
from rag import RAG
T["import"] = time.perf_counter() - t0
rag = RAG(index=sys.argv[1])
r = rag._get_retriever()
T["index"] = time.perf_counter() - t0
r.bm25
T["bm25"] = time.perf_counter() - t0
rag.embedder.embed([sys.argv[2]])
T["embedder"] = time.perf_counter() - t0
rag.generator.warm_up()
T["model"] = time.perf_counter() - t0
try:  # the first token as generated: this tree shows it only as a draft, older ones as the answer
    stream = rag.stream(sys.argv[2], drafts=True)
except TypeError:
    stream = rag.stream(sys.argv[2])
for piece in stream:
    T["first_token"] = time.perf_counter() - t0
    T["first_token_at"] = time.time()  # against the parent's clock: the interpreter's start counts
    break
stream.close()
T["heavy"] = sorted(m for m in ("torch", "sentence_transformers", "transformers") if m in sys.modules)
print(json.dumps(T))
"""


def _old_tree(dest: Path) -> Path:
    tar = subprocess.run(["git", "-C", str(ROOT), "archive", BASELINE_COMMIT, "rag"], capture_output=True,
                         check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=tar, check=True)
    return dest


def _cold_run(tree: Path, index: str, question: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    launched = time.time()
    proc = subprocess.run([sys.executable, "-c", _COLD, index, question], capture_output=True, text=True,
                          env=env, timeout=900, cwd=tree)
    if proc.returncode != 0:
        raise RuntimeError(f"cold start failed:\n{proc.stderr[-2000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["wall_to_first_token"] = out["first_token_at"] - launched
    return out


_BIG = r"""
import json, sys, time
t0 = time.perf_counter()
from rag import RAG
rag = RAG(index=sys.argv[1])
rag.warm_up()
t1 = time.perf_counter()
hits = rag.search("autoencoders denoising images")
print(json.dumps({"chat_start_s": t1 - t0, "first_search_s": time.perf_counter() - t1, "hits": len(hits)}))
"""


def big_index(n: int, dest: Path) -> dict:
    """A FAISS index of n synthetic chunks (texts from the corpus vocabulary) with the real
    embedder's record, written as `rag index` writes a version (BM25 saved with it)."""
    import random

    import numpy as np

    from rag.stores import faiss as faiss_store
    from rag.config import Settings
    from rag.embed import Embedder
    from rag.manifest import FORMAT_VERSION, embedder_record
    from rag.types import Chunk

    from .common import synthetic_vectors

    emb = Embedder(Settings.load().embedder_path(), name="all-MiniLM-L6-v2")
    words = sorted({w for p in (ROOT / "corpus").iterdir() for w in p.read_text(errors="ignore").split()
                    if w.isalpha()})
    rng = random.Random(0)
    chunks = [Chunk(id=f"doc{i // 20}.txt#{i % 20}", source=f"doc{i // 20}.txt", title=f"doc {i // 20}",
                    headings=(), text=" ".join(rng.choices(words, k=40))) for i in range(n)]
    vectors = np.vstack([synthetic_vectors(min(100_000, n - s), seed=s) for s in range(0, n, 100_000)])
    manifest = {"format_version": FORMAT_VERSION, "embedder": {**embedder_record(emb), "dim": 384}, "n_chunks": n,
                "chunker": {"chunk_size": 200, "chunk_overlap": 40},
                "documents": {f"doc{d}.txt": {} for d in range(0, (n + 19) // 20)}}
    dest.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    version = faiss_store._write_version(dest, manifest, chunks, vectors)
    write_s = time.perf_counter() - t0
    bm25_mb = sum(p.stat().st_size for p in (version / "bm25").iterdir()) / 2 ** 20
    return {"chunks": n, "write_s": write_s, "bm25_mb": bm25_mb}


def cold(*, index: str, question: str, repeats: int, big: int) -> dict:
    """A fresh `rag ask` to its first token: this tree against BASELINE_COMMIT, alternating."""
    with tempfile.TemporaryDirectory(prefix="bench-old-tree-") as tmp:
        old = _old_tree(Path(tmp))
        runs = {"new": [], "old": []}
        _cold_run(ROOT, index, question)  # the ONNX twin exported and the files cached for both
        for i in range(repeats):
            for side in (("new", "old") if i % 2 == 0 else ("old", "new")):
                runs[side].append(_cold_run(ROOT if side == "new" else old, index, question))
    out = {"question": question, "baseline_commit": BASELINE_COMMIT}
    for side, rs in runs.items():
        out[side] = {k: stats([r[k] for r in rs]) for k in ("import", "index", "bm25", "embedder", "model",
                                                            "first_token", "wall_to_first_token")}
        out[side]["heavy_modules"] = rs[-1]["heavy"]
    ratio = out["new"]["wall_to_first_token"]["median"] / out["old"]["wall_to_first_token"]["median"]
    goals = [goal("cold rag ask to the first token, this tree / the commit before", target="<= 0.4",
                  measured=ratio, met=ratio <= 0.4,
                  note=f"{out['new']['wall_to_first_token']['median']:.2f} s against "
                       f"{out['old']['wall_to_first_token']['median']:.2f} s")]
    if big:
        with tempfile.TemporaryDirectory(prefix="bench-big-index-") as tmp:
            out["big"] = big_index(big, Path(tmp) / "index")
            out["big"].update(run_json_subprocess(_BIG, str(Path(tmp) / "index"), timeout=1800))
        goals.append(goal(f"chat start (RAG.warm_up, models included) at {big:,} chunks", target="reported",
                          measured=out["big"]["chat_start_s"], unit="s", met=True,
                          note=f"index written in {out['big']['write_s']:.0f} s with its BM25"))
    out["goals"] = goals
    return out


# ---------------------------------------------------------------- 4. concurrency

def _one_app(index: str, concurrency: int, users: int, questions: list[str]) -> dict:
    from gradio_client import Client

    from .server import _free_port

    port = _free_port()
    log = tempfile.NamedTemporaryFile("w", prefix=f"bench-app-c{concurrency}-", suffix=".log", delete=False)
    with tempfile.TemporaryDirectory(prefix="bench-app-") as tmp:
        corpus = Path(tmp) / "corpus"
        corpus.mkdir()
        proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port), "--index", index,
                                 "--corpus", str(corpus), "--concurrency", str(concurrency),
                                 "--queue-per-client", "0", "--queue-size", "0"],
                                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        url = f"http://127.0.0.1:{port}/"
        try:
            client = None
            for _ in range(600):
                if proc.poll() is not None:
                    raise RuntimeError(f"app.py exited; see {log.name}")
                try:
                    client = Client(url, verbose=False)
                    break
                except Exception:  # noqa: BLE001 - not up yet
                    time.sleep(0.5)
            client.predict(questions[0], "few_shot", 4, None, api_name="/ask")  # warm
            results: list[dict] = [{} for _ in range(users)]
            start = threading.Barrier(users)

            def user(i: int) -> None:
                c = Client(url, verbose=False)
                start.wait()
                t0 = time.perf_counter()
                d = c.predict(questions[i % len(questions)], "few_shot", 4, None, api_name="/ask")
                total = time.perf_counter() - t0
                t = d["timings"]
                work = t["retrieve"] + t["prompt"] + t["prefill"] + t["generate"] + t["check"]
                results[i] = {"total": total, "wait": total - work, "work": work,
                              "tokens": d["usage"]["completion_tokens"]}

            threads = [threading.Thread(target=user, args=(i,)) for i in range(users)]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            span = time.perf_counter() - t0
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    return {"concurrency": concurrency, "users": users, "all_answered_s": span,
            "answer_s": percentiles([r["total"] for r in results]),
            "wait_s": percentiles([r["wait"] for r in results]),
            "work_s": percentiles([r["work"] for r in results])}


def concurrency(*, index: str, users: int, levels: tuple[int, ...] = (1, 4)) -> dict:
    qs = CORPUS_QUESTIONS
    out = {"users": users, "levels": {str(c): _one_app(index, c, users, qs) for c in levels}}
    one, many = out["levels"][str(levels[0])], out["levels"][str(levels[-1])]
    out["goals"] = [goal(f"{users} chat API users at once: answer p95, concurrency {levels[-1]} / {levels[0]}",
                         target="reported", measured=many["answer_s"]["p95"] / one["answer_s"]["p95"],
                         unit="ratio", met=True,
                         note=f"p50 / p95 {many['answer_s']['p50']:.1f} / {many['answer_s']['p95']:.1f} s "
                              f"against {one['answer_s']['p50']:.1f} / {one['answer_s']['p95']:.1f} s")]
    return out
