"""Questions about a whole document or collection (issue 32): how long a list, a "which
documents" question and a summary take over the shipped corpus (58 chunks) and over a real
collection of about 1,000 chunks (the Git manual pages the evaluation uses, with R's
"Introduction to R" PDF when `r-doc-pdf` is installed), against the same question answered
from the top-k passages with `whole=off` in the same run; and how often a survey says how far
it has got (its Progress lines), so a long one never runs silent.

Run: `python -m benchmarks.run --only whole`.
"""
from __future__ import annotations

import dataclasses
import shutil
import tempfile
import time
from pathlib import Path

from rag import RAG

from .common import ROOT, goal, percentiles

CORPUS_QUESTIONS = {
    "list": "List the key features of transformer networks.",
    "documents": "Which files talk about transfer learning?",
    "summary": "Summarise deep-learning-overview.md",
}
BIG_QUESTIONS = {
    "list": "Which merge strategies are there?",  # over the whole collection: no file named
    "documents": "Which pages mention the reflog?",
    "summary": "Summarise git-rebase.html",
}
R_INTRO = Path("/usr/share/R/doc/manual/R-intro.pdf")


def _timed(rag: RAG, question: str, repeats: int) -> dict:
    """Seconds per answer (after one warm-up answer), the answer's coverage and the longest wait
    between two things the reader is shown (progress lines, then the answer)."""
    rag.ask(question)
    times, gaps = [], []
    answer = None
    for _ in range(repeats):
        t0 = last = time.perf_counter()
        stream = rag.stream(question, drafts=True)
        longest = 0.0
        for _piece in stream:  # a progress line or the answer: either tells the reader something
            now = time.perf_counter()
            longest, last = max(longest, now - last), now
        times.append(time.perf_counter() - t0)
        gaps.append(longest)
        answer = stream.answer
    cov = answer.coverage
    return {"seconds": {**percentiles(times), "min": min(times), "max": max(times)}, "longest_silence_s": max(gaps), "scope": answer.scope,
            "items": len(answer.items), "coverage": cov.to_dict() if cov else None}


def _collection(dest: Path) -> tuple[str, int]:
    docs = dest / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    for f in (ROOT / "data" / "eval" / "git-docs").glob("*.html"):
        shutil.copy(f, docs / f.name)
    if R_INTRO.exists():
        shutil.copy(R_INTRO, docs / R_INTRO.name)
    return str(docs), len(list(docs.iterdir()))


def run(*, index: str, quick: bool = False) -> dict:
    repeats = 1 if quick else 3
    out: dict = {"repeats": repeats, "corpus": {}, "big": {}}
    rag = RAG(index=index)
    off = RAG(dataclasses.replace(rag.settings, whole="off"), embedder=rag.embedder, generator=rag.generator,
              build_missing=False)
    for kind, q in CORPUS_QUESTIONS.items():
        out["corpus"][kind] = _timed(rag, q, repeats)
    # the same list question answered from the top-k passages by the model: the "off" switch
    out["corpus"]["list_off"] = _timed(off, CORPUS_QUESTIONS["list"], repeats)
    with tempfile.TemporaryDirectory() as tmp:
        folder, n_files = _collection(Path(tmp))
        big = RAG(dataclasses.replace(rag.settings, index=str(Path(tmp) / "index")), embedder=rag.embedder,
                  generator=rag.generator, build_missing=False)
        t0 = time.perf_counter()
        report = big.index([folder])
        out["big"]["build_s"] = time.perf_counter() - t0
        out["big"]["files"], out["big"]["chunks"] = n_files, report.n_chunks
        for kind, q in BIG_QUESTIONS.items():
            out["big"][kind] = _timed(big, q, repeats)
    lst, lst_off = out["corpus"]["list"]["seconds"]["p50"], out["corpus"]["list_off"]["seconds"]["p50"]
    big_list = out["big"]["list"]["seconds"]["p50"]
    silence = max(x["longest_silence_s"] for k, x in out["big"].items() if isinstance(x, dict) and "seconds" in x)
    out["goals"] = [
        goal("whole: a list question over the shipped corpus, p50", target="< 5 s", measured=round(lst, 3), unit="s",
             met=lst < 5, note=f"{lst / lst_off:.2f}x the same question answered from top-k by the model "
                               f"(whole=off, {lst_off:.2f} s)"),
        goal(f"whole: a list question over {out['big']['chunks']:,} chunks, p50", target="< 30 s",
             measured=round(big_list, 3), unit="s", met=big_list < 30,
             note=f"longest wait without a progress line or the answer: {silence:.2f} s"),
    ]
    return out


def render(s: dict) -> list[str]:
    out = ["", "## Whole-document and whole-collection questions (issue 32)", "",
           f"`RAG.ask` on a list, a \"which documents\" and a summary question; seconds per answer after a "
           f"warm-up, median (min-max, {s['repeats']} runs). \"silence\": the longest wait between two things "
           f"the reader is shown (progress lines, then the answer). The big collection: {s['big']['files']} "
           f"files, {s['big']['chunks']:,} chunks, built in {s['big']['build_s']:.0f} s.", "",
           "| collection | question | scope | seconds | silence s | entries | read |", "|---|---|---|---|---|---|---|"]
    for where, qs in (("corpus", {**CORPUS_QUESTIONS, "list_off": CORPUS_QUESTIONS["list"] + " (whole=off)"}),
                      ("big", BIG_QUESTIONS)):
        for kind, q in qs.items():
            x = s[where][kind]
            p = x["seconds"]
            cov = x["coverage"] or {}
            read = f"{cov.get('chunks_read', 0):,}/{cov.get('chunks_total', 0):,}" if cov else "top-k"
            out.append(f"| {where} | {q} | {x['scope'] or 'ordinary'} | {p['p50']:.2f} ({p['min']:.2f}-{p['max']:.2f}) | "
                       f"{x['longest_silence_s']:.2f} | {x['items']} | {read} |")
    return out
