"""Mutation fuzzing of the document readers through the real index build.

From one valid seed file per format (written by `rag.samples` and the standard library), a
seeded generator makes mutants: bytes flipped, cut, repeated or inserted, and for zip packages
(Office, EPUB) the same done to the XML inside a part and the package rebuilt, so the damage
reaches the parsers rather than stopping at the zip's checksums. Mutants go through
`index.build` in batches, as `rag index` and the chat's uploads run it. What is checked: no
build aborts, every file is either indexed or skipped with a reason, and the process's peak
memory. The same seed gives the same files.

    .venv/bin/python benchmarks/fuzz.py --files 2000 --seed 1            # real embedder
    .venv/bin/python benchmarks/fuzz.py --files 200 --embedder hash      # the reading only
"""
from __future__ import annotations

import argparse
import io
import json
import logging
import random
import re
import resource
import sys
import tempfile
import time
import zipfile
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/fuzz.py` from a clone

from rag import samples  # noqa: E402

SENTENCES = ["The pump in hall 7 is serviced every March.", "Invoices are due within 30 days.",
             "Valve V-12 was replaced after the leak.", "The audit found three missing badges."]


def seeds(folder: Path) -> list[Path]:
    """One small valid file of each supported kind."""
    folder.mkdir(parents=True, exist_ok=True)
    out = [
        samples.write_docx(folder / "seed.docx", [("Maintenance", SENTENCES)], table=[["Part", "Count"], ["valve", "3"]]),
        samples.write_pptx(folder / "seed.pptx", [("Budget", SENTENCES[:2]), ("Audit", SENTENCES[2:])]),
        samples.write_xlsx(folder / "seed.xlsx", {"Orders": [["Order", "Amount"], ["A1", 10], ["A2", 20]]}),
        samples.write_epub(folder / "seed.epub", [("Chapter 1", "".join(f"<p>{s}</p>" for s in SENTENCES))]),
    ]
    (folder / "seed.csv").write_text("part,count\nvalve,3\npump,1\n")
    (folder / "seed.md").write_text("---\ntitle: Notes\n---\n# Plant\n\n" + "\n\n".join(SENTENCES) + "\n\n## More\n- a\n- b\n")
    (folder / "seed.html").write_text("<html><head><title>T</title></head><body><h1>Plant</h1>"
                                      + "".join(f"<p>{s}</p>" for s in SENTENCES)
                                      + "<table><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>2</td></tr></table>"
                                        "<div hidden>secret</div></body></html>")
    (folder / "seed.txt").write_text("\n".join(SENTENCES))
    text_pdf = samples.write_text_pdf(folder / "text.pdf", SENTENCES[:2]).read_bytes()
    samples.write_scanned_pdf(folder / "seed.pdf", [SENTENCES[2:]], text_pdf=text_pdf)
    image = samples.render_text(SENTENCES[:2], width=500, size=20)
    image.save(folder / "seed.png")
    image.save(folder / "seed.tif", save_all=True, append_images=[image])
    out += [folder / f"seed.{s}" for s in ("csv", "md", "html", "txt", "pdf", "png", "tif")]
    for p in out[:4]:  # the zip packages dated, and their "created"/"modified" stamps set, to
        # one fixed time, so that a seed makes the same files on every run
        p.write_bytes(_repack(p.read_bytes(), lambda name, body: STAMP.sub(b"2020-01-01T00:00:00", body)))
    return out


FIXED_TIME = (2020, 1, 1, 0, 0, 0)
STAMP = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?")


def _repack(data: bytes, change) -> bytes:
    """The zip `data` packed again, each part's bytes through `change(name, body)` (None leaves
    the part out), every part dated FIXED_TIME."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        parts = [(i.filename, zf.read(i)) for i in zf.infolist()]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, body in parts:
            body = change(name, body)
            if body is not None:
                zf.writestr(zipfile.ZipInfo(name, date_time=FIXED_TIME), body, compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()


# tokens that steer parsers into their rarer paths when spliced into a file
INTERESTING = [b"<", b">", b"</", b"<div>" * 50, b"\x00", b"\xff\xfe", b"obj", b"endobj", b"stream", b"<<", b">>",
               b"[" * 200, b"/Filter /FlateDecode", b"%%EOF", b"xref", b'"', b",", b"\n", b"\r\n", b"&#x0;",
               b"<!DOCTYPE x [<!ENTITY a \"aaaa\">]>", b"9" * 12, b"-1", b"\xef\xbb\xbf"]


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    """One to eight random edits of `data`."""
    b = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        if not b:
            b += rng.randbytes(16)
        op = rng.randrange(7)
        i = rng.randrange(len(b))
        if op == 0:  # flip bits
            b[i] ^= 1 << rng.randrange(8)
        elif op == 1:  # random byte
            b[i] = rng.randrange(256)
        elif op == 2:  # cut the tail
            del b[max(1, i):]
        elif op == 3:  # delete a run
            del b[i:i + rng.randint(1, 64)]
        elif op == 4:  # repeat a run
            run = b[i:i + rng.randint(1, 256)]
            b[i:i] = run * rng.randint(2, 50)
        elif op == 5:  # splice a token
            b[i:i] = rng.choice(INTERESTING)
        else:  # random bytes
            b[i:i] = rng.randbytes(rng.randint(1, 32))
    return bytes(b)


def mutate_package(data: bytes, rng: random.Random) -> bytes:
    """Mutate one or two parts of a zip package and pack it again (its checksums made right)."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
    targets = set(rng.sample(names, k=min(len(names), rng.randint(1, 2))))

    def change(name: str, body: bytes) -> bytes | None:
        if name in targets:
            body = mutate_bytes(body, rng)
        return None if rng.random() < 0.03 else body  # now and then a part left out

    return _repack(data, change)


def mutants(seed_files: list[Path], n: int, seed: int, folder: Path) -> list[Path]:
    rng = random.Random(seed)
    raw = {p: p.read_bytes() for p in seed_files}
    out = []
    for i in range(n):
        src = seed_files[i % len(seed_files)]
        data = raw[src]
        packaged = src.suffix in (".docx", ".pptx", ".xlsx", ".epub")
        data = mutate_package(data, rng) if packaged and rng.random() < 0.7 else mutate_bytes(data, rng)
        p = folder / f"m{i:05d}{src.suffix}"
        p.write_bytes(data)
        out.append(p)
    return out


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(*, files: int, seed: int, embedder: str = "real", batch: int = 100, log=print) -> dict:
    """Build an index from `files` mutants in batches; counts of outcomes, reasons and peak memory."""
    from rag import index as index_mod
    from rag.stores.faiss import FaissStore

    if embedder == "hash":
        from rag.testing import HashEmbedder

        emb = HashEmbedder()
    else:
        from rag.config import Settings
        from rag.embed import Embedder

        emb = Embedder(Settings.load().embedder_path())
    outcomes: Counter = Counter()
    reasons: Counter = Counter()
    unreasoned, aborted = [], []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        seed_files = seeds(tmp / "seeds")
        emb.embed(SENTENCES)  # the model loaded and run once, so the baseline holds it
        base_mb = peak_mb()
        for start in range(0, files, batch):
            folder = tmp / f"batch{start:05d}"
            folder.mkdir()
            made = mutants(seed_files, min(batch, files - start), seed * 1_000_003 + start, folder)
            try:
                report = index_mod.build([folder], store=FaissStore(tmp / f"index{start:05d}"), embedder=emb,
                                         chunk_size=200, chunk_overlap=40)
            except Exception as e:  # what this run exists to catch: one file stopping a whole build
                aborted.append(f"batch {start}: {type(e).__name__}: {e}")
                outcomes["aborted"] += len(made)
                continue
            skipped = {Path(p).name: why for p, why in report.skipped}
            for p in made:
                if p.name in skipped:
                    why = skipped[p.name]
                    outcomes["skipped"] += 1
                    if not why.strip():
                        unreasoned.append(p.name)
                    reasons[_reason_kind(why)] += 1
                else:
                    outcomes["indexed"] += 1
            log(f"{start + len(made):5d} files  indexed {outcomes['indexed']}  skipped {outcomes['skipped']}  "
                f"aborted builds {len(aborted)}  peak {peak_mb():.0f} MB  {time.perf_counter() - t0:.0f} s")
    return {"files": files, "seed": seed, "embedder": embedder, "outcomes": dict(outcomes),
            "aborted_builds": aborted, "unreasoned": unreasoned, "reasons": dict(reasons.most_common()),
            "peak_mb": peak_mb(), "peak_before_mb": base_mb, "baseline": "with the embedder loaded, before the first file",
            "seconds": time.perf_counter() - t0}


# the chat app's whole budget while it reads uploads, models included (issue 34)
PEAK_MB_GOAL = 1536


@contextmanager
def _quiet():
    """The readers' warnings about each damaged file silenced for the run, and restored after
    (a test that runs `run` must leave logging as it found it)."""
    logger = logging.getLogger("rag")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def section(*, quick: bool) -> dict:
    """benchmarks/run.py's section: 2,000 mutants (200 quick) through index.build with the real embedder."""
    from benchmarks.common import goal

    with _quiet():
        out = run(files=200 if quick else 2000, seed=1)
    out["goals"] = [goal("fuzzed files: aborted builds / skips without a reason", target="0",
                         measured=len(out["aborted_builds"]) + len(out["unreasoned"]), unit="",
                         met=not out["aborted_builds"] and not out["unreasoned"],
                         note=f"{out['files']} mutants, seed {out['seed']}"),
                    goal("fuzzed files: peak RSS of the indexing process (real embedder loaded)",
                         target=f"<= {PEAK_MB_GOAL} MB", measured=out["peak_mb"], unit="MB",
                         met=out["peak_mb"] <= PEAK_MB_GOAL)]
    return out


def _reason_kind(reason: str) -> str:
    """A skip reason without its particulars, to count kinds ("broken PDF (PdfReadError)")."""
    words = reason.split("(")[0].split(":")[0].strip()
    return " ".join(words.split()[:6])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--files", type=int, default=2000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--embedder", choices=("real", "hash"), default="real")
    p.add_argument("--json", help="write the summary here")
    args = p.parse_args(argv)
    with _quiet():
        r = run(files=args.files, seed=args.seed, embedder=args.embedder, batch=args.batch)
    print(json.dumps({k: v for k, v in r.items() if k != "reasons"}, indent=1))
    print("skip reasons:", json.dumps(r["reasons"], indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=1))
    return 1 if r["aborted_builds"] or r["unreasoned"] else 0


if __name__ == "__main__":
    sys.exit(main())
