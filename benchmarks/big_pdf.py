"""A real manual of thousands of pages (issue 33): R's reference manual from Debian's r-doc-pdf.

- `manual`: the whole PDF read (pages/s, peak RSS) and indexed (total, chunks/s of embedding,
  peak RSS), each in a fresh process; reading a 120-page slice of it alone gives the peak RSS
  that a bounded reader should not outgrow by much on 20 times the pages;
- `resume`: the manual cut into 20 PDFs in a folder, indexed whole, then indexed again from
  scratch but SIGKILLed as the 17th file is read (80% done), then resumed: the resumed build's
  time as a share of the whole one's, every one a `rag index` process with its model load (wall
  and CPU time: the CPU time's ratio is the steadier one when other work shares the cores);
- `overlap`: reading the next file in a thread while the current one's chunks are embedded,
  against reading and embedding in turn (as `rag index` does), on the same files in one process;
- `questions`: ten questions with gold answers and gold pages (benchmarks/refman_questions.json)
  asked of the manual's index with the shipped model: how many contain the answer, how many cite
  the right page, and how many retrieved it at all.

Run: `python -m benchmarks.run --only big_pdf` (needs `apt-get install r-doc-pdf`; RAG_BENCH_PDF
names another PDF, whose questions then are not asked).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import ROOT, goal

MANUAL = Path(os.environ.get("RAG_BENCH_PDF", "/usr/share/R/doc/manual/refman.pdf"))
QUESTIONS = Path(__file__).with_name("refman_questions.json")

_READ = """
import json, resource, sys, time
from pathlib import Path
from rag import ingest
t = time.perf_counter()
doc = ingest.load(Path(sys.argv[1]))
pages = sum(1 for s in doc.sections)
print(json.dumps({"pages": pages, "read_s": time.perf_counter() - t,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

_BUILD = """
import json, resource, sys, time
from pathlib import Path
from rag import RAG
rag = RAG(index=sys.argv[2])
# the model load stays out of the build's time: through the SentenceTransformer that builds embed
# with (a few texts through embed() would go to the ONNX twin and leave torch to load in the build)
rag.embedder.model.encode(["warm up the model"] * 8)
t = time.perf_counter()
report = rag.index([sys.argv[1]])
print(json.dumps({"build_s": time.perf_counter() - t, "chunks": report.n_chunks, "skipped": report.skipped,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

_KILLED = """
import os, signal, sys
from rag import RAG, index, ingest
real_load, loads = ingest.load, []
def load(path, **kw):
    loads.append(path)
    if len(loads) == int(sys.argv[3]):
        os.kill(os.getpid(), signal.SIGKILL)
    return real_load(path, **kw)
ingest.load = load
RAG(index=sys.argv[2]).index([sys.argv[1]])
"""


def _python(code: str, *args: str, timeout: float = 3600) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env,
                         timeout=timeout, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"benchmark step failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _slices(pdf: Path, folder: Path, *, parts: int) -> list[Path]:
    """`pdf` cut into `parts` PDFs of consecutive pages, written with pypdf."""
    from pypdf import PdfReader, PdfWriter

    reader = PdfReader(str(pdf))
    n = len(reader.pages)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(parts):
        w = PdfWriter()
        for p in range(i * n // parts, (i + 1) * n // parts):
            w.add_page(reader.pages[p])
        path = folder / f"{pdf.stem}-part{i + 1:02d}.pdf"
        with path.open("wb") as fh:
            w.write(fh)
        out.append(path)
    return out


def _children_cpu_s() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _rag_index(folder: Path, index: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of one `rag index` process. The CPU time is the steadier figure when
    other work shares the cores: waiting for them stretches the wall time, not the CPU time."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    t, cpu = time.perf_counter(), _children_cpu_s()
    out = subprocess.run([sys.executable, "-m", "rag", "index", str(folder), "--index", str(index)],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=7200)
    if out.returncode != 0:
        raise RuntimeError(f"rag index failed:\n{out.stderr[-3000:]}")
    return time.perf_counter() - t, _children_cpu_s() - cpu


def manual(pdf: Path, work: Path) -> dict:
    read = _python(_READ, str(pdf))
    part = _slices(pdf, work / "slice", parts=20)[0]
    read_part = _python(_READ, str(part))
    folder = work / "manual"
    folder.mkdir()
    shutil.copy(pdf, folder / pdf.name)
    build = _python(_BUILD, str(folder), str(work / "manual-index"))
    embed_s = build["build_s"] - read["read_s"]
    return {"pdf": pdf.name, "pages": read["pages"], "read_s": read["read_s"],
            "read_pages_per_s": read["pages"] / read["read_s"], "read_peak_rss_mb": read["peak_rss_mb"],
            "slice_pages": read_part["pages"], "slice_read_peak_rss_mb": read_part["peak_rss_mb"],
            "chunks": build["chunks"], "build_s": build["build_s"],
            "embed_chunks_per_s": build["chunks"] / embed_s if embed_s > 0 else None,
            "build_peak_rss_mb": build["peak_rss_mb"], "skipped": build["skipped"],
            "index": str(work / "manual-index")}


def resume(pdf: Path, work: Path, *, parts: int = 20, done: int = 16) -> dict:
    folder = work / "parts"
    _slices(pdf, folder, parts=parts)
    full_s, full_cpu_s = _rag_index(folder, work / "full-index")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(ROOT)}
    killed = subprocess.run([sys.executable, "-c", _KILLED, str(folder), str(work / "resumed-index"), str(done + 1)],
                            capture_output=True, text=True, env=env, cwd=ROOT, timeout=7200)
    if killed.returncode != -signal.SIGKILL:
        raise RuntimeError(f"the build was not killed ({killed.returncode}):\n{killed.stderr[-3000:]}")
    resumed_s, resumed_cpu_s = _rag_index(folder, work / "resumed-index")
    return {"files": parts, "done_before_kill": done, "full_s": full_s, "resumed_s": resumed_s,
            "ratio": resumed_s / full_s, "full_cpu_s": full_cpu_s, "resumed_cpu_s": resumed_cpu_s,
            "cpu_ratio": resumed_cpu_s / full_cpu_s}


_OVERLAP = """
import json, queue, sys, threading, time
from pathlib import Path
from rag import RAG, ingest
from rag.chunk import Chunker, embed_text
files = sorted(Path(sys.argv[1]).glob("*.pdf"))
rag = RAG()
emb = rag.embedder
emb.model.encode(["warm up the model"] * 8)
chunker = Chunker(emb.tokenizer, max_tokens=emb.max_seq_length, chunk_size=rag.settings.chunk_size,
                  chunk_overlap=rag.settings.chunk_overlap)
def read(f):
    return chunker.split(ingest.load(f))
def embed(chunks):
    for i in range(0, len(chunks), 256):
        emb.embed([embed_text(c) for c in chunks[i:i + 256]])
def in_turn():
    for f in files:
        embed(read(f))
def overlapped():
    q = queue.Queue(maxsize=1)
    def reader():
        for f in files:
            q.put(read(f))
        q.put(None)
    threading.Thread(target=reader, daemon=True).start()
    while (chunks := q.get()) is not None:
        embed(chunks)
out = {"in_turn_s": [], "overlapped_s": []}
for _ in range(int(sys.argv[2])):  # interleaved, so a busy moment costs both alike
    for name, fn in (("in_turn_s", in_turn), ("overlapped_s", overlapped)):
        t = time.perf_counter()
        fn()
        out[name].append(time.perf_counter() - t)
print(json.dumps(out))
"""


def overlap(folder: Path, *, repeats: int = 2) -> dict:
    out = _python(_OVERLAP, str(folder), str(repeats))
    best_turn, best_over = min(out["in_turn_s"]), min(out["overlapped_s"])
    return {**out, "files": len(list(folder.glob("*.pdf"))), "speedup": best_turn / best_over}


def questions(index: str) -> dict:
    from rag import RAG

    data = json.loads(QUESTIONS.read_text(encoding="utf-8"))
    rag = RAG(index=index)
    rows = []
    for q in data["questions"]:
        t = time.perf_counter()
        a = rag.ask(q["question"])
        norm = " ".join(a.text.lower().split())
        rows.append({"question": q["question"], "page": q["page"], "answer": a.text, "abstained": a.abstained,
                     "contains": any(" ".join(g.lower().split()) in norm for g in q["answers"]),
                     "cited_pages": [c.location.page if c.location else None for c in a.citations],
                     "right_page": any(c.location and c.location.page == q["page"] for c in a.citations),
                     "retrieved_page": any(h.chunk.page == q["page"] for h in a.hits),
                     "seconds": time.perf_counter() - t})
    n = len(rows)
    return {"manual": data["manual"], "questions": n, "per_question": rows,
            "contains": sum(r["contains"] for r in rows) / n, "right_page": sum(r["right_page"] for r in rows) / n,
            "retrieved_page": sum(r["retrieved_page"] for r in rows) / n}


def run(*, quick: bool) -> dict:
    if not MANUAL.is_file():
        return {"skipped": f"{MANUAL} is not here: apt-get install r-doc-pdf, or set RAG_BENCH_PDF"}
    with tempfile.TemporaryDirectory(prefix="rag-bench-pdf-") as tmp:
        work = Path(tmp)
        out = {"manual": manual(MANUAL, work)}
        if MANUAL.name == "refman.pdf":
            out["questions"] = questions(out["manual"]["index"])
        del out["manual"]["index"]  # a temporary folder, gone with this run
        if not quick:
            out["resume"] = resume(MANUAL, work)
            smaller = [MANUAL.parent / f"R-{n}.pdf" for n in ("data", "lang", "ints", "admin")]
            if all(f.is_file() for f in smaller):  # four of the R manuals, 276 pages together
                (work / "overlap").mkdir()
                for f in smaller:
                    shutil.copy(f, work / "overlap" / f.name)
                out["overlap"] = overlap(work / "overlap")
    m = out["manual"]
    out["goals"] = [
        goal(f"{m['pdf']} ({m['pages']} pages): read pages/s", target="reported", measured=m["read_pages_per_s"],
             unit="pages/s", met=True, note=f"read {m['read_s']:.0f} s; build {m['build_s']:.0f} s for "
                                            f"{m['chunks']} chunks, embedding {m['embed_chunks_per_s']:.1f} chunks/s"),
        goal("peak RSS reading the whole manual / a 120-page slice of it", target="<= 2",
             measured=m["read_peak_rss_mb"] / m["slice_read_peak_rss_mb"], unit="ratio",
             met=m["read_peak_rss_mb"] / m["slice_read_peak_rss_mb"] <= 2,
             note=f"{m['read_peak_rss_mb']:.0f} MB for {m['pages']} pages against "
                  f"{m['slice_read_peak_rss_mb']:.0f} MB for {m['slice_pages']}; the build's peak "
                  f"{m['build_peak_rss_mb']:.0f} MB"),
    ]
    if "resume" in out:
        r = out["resume"]
        out["goals"].append(goal("build resumed after a SIGKILL at 80% / a whole build", target="<= 0.2",
                                 measured=r["ratio"], unit="ratio", met=r["ratio"] <= 0.2,
                                 note=f"{r['resumed_s']:.0f} s against {r['full_s']:.0f} s, {r['files']} files, "
                                      f"killed as file {r['done_before_kill'] + 1} was read"
                                      + (f"; CPU time {r['resumed_cpu_s']:.0f} s against {r['full_cpu_s']:.0f} s, "
                                         f"ratio {r['cpu_ratio']:.3f}" if "cpu_ratio" in r else "")))
    if "overlap" in out:
        o = out["overlap"]
        out["goals"].append(goal("reading the next file while embedding / in turn: speed-up", target="reported",
                                 measured=o["speedup"], unit="x", met=True,
                                 note=f"best of {len(o['in_turn_s'])}: {min(o['in_turn_s']):.0f} s in turn, "
                                      f"{min(o['overlapped_s']):.0f} s overlapped, {o['files']} R manuals"))
    if "questions" in out:
        q = out["questions"]
        out["goals"].append(goal("refman questions cited to the right page (shipped model)", target="reported",
                                 measured=q["right_page"], unit="share", met=True,
                                 note=f"contains the answer {q['contains']:.1f}, right page retrieved "
                                      f"{q['retrieved_page']:.1f}, of {q['questions']}"))
    return out
