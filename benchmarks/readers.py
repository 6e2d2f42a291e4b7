"""Document readers against their raw libraries, and OCR speed and accuracy.

For each format a generated file is read by `ingest.load` (what `rag index` runs: structure,
headings, locations, Markdown tables) and by the library's own plainest extraction of the same
text (python-docx paragraphs and cells, python-pptx text frames, openpyxl cell values, the csv
module, ebooklib's chapter bytes, pypdf's extract_text), alternating which goes first. OCR: pages
rendered from known text (rag.samples), read through the image reader and through a scanned PDF,
against pytesseract's own image_to_string on the same images; accuracy is the character
similarity of what was read to what was rendered.
"""
from __future__ import annotations

import csv
import difflib
import io
import random
import tempfile
import time
from pathlib import Path

from rag import ingest, samples

from .common import goal

WORDS = ("pump valve turbine gasket sensor relay bracket filter cable spindle rotor seal bearing "
         "inspection warehouse schedule budget invoice quarterly target engineer station").split()


def _sentence(rng: random.Random, n: int = 12) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def _files(folder: Path, *, quick: bool) -> dict[str, tuple[Path, int, str]]:
    """format -> (file, units in it, unit name)."""
    rng = random.Random(7)
    k = 1 if quick else 4
    sections = [(f"Section {i}", [_sentence(rng) for _ in range(8)]) for i in range(40 * k)]
    table = [["Part", "Warehouse", "Count"]] + [[f"part {i}", f"w{i % 9}", i] for i in range(100 * k)]
    out = {"docx": (samples.write_docx(folder / "a.docx", sections, table=table), len(sections), "sections")}
    slides = [(f"Slide {i}", [_sentence(rng) for _ in range(4)]) for i in range(30 * k)]
    out["pptx"] = (samples.write_pptx(folder / "a.pptx", slides), len(slides), "slides")
    rows = [["Order", "Customer", "Region", "Amount"]] + \
        [[f"A{i}", f"customer {i}", rng.choice(WORDS), i * 3] for i in range(5000 * k)]
    out["xlsx"] = (samples.write_xlsx(folder / "a.xlsx", {"Orders": rows}), len(rows), "rows")
    with (folder / "a.csv").open("w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    out["csv"] = (folder / "a.csv", len(rows), "rows")
    chapters = [(f"Chapter {i}", "".join(f"<p>{_sentence(rng)}</p>" for _ in range(20))) for i in range(20 * k)]
    out["epub"] = (samples.write_epub(folder / "a.epub", chapters), len(chapters), "chapters")
    out["pdf"] = (_text_pdf(folder / "a.pdf", [[_sentence(rng) for _ in range(30)] for _ in range(20 * k)]),
                  20 * k, "pages")
    return out


def _text_pdf(path: Path, pages: list[list[str]]) -> Path:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for i, lines in enumerate(pages):
        one = path.with_name(f".page{i}.pdf")
        samples.write_text_pdf(one, lines)
        writer.add_page(PdfReader(one).pages[0])
        one.unlink()
    with path.open("wb") as fh:
        writer.write(fh)
    return path


def _raw(kind: str, path: Path) -> int:
    """The library's own extraction; returns the characters it produced."""
    raw = path.read_bytes()
    if kind == "docx":
        import docx

        d = docx.Document(io.BytesIO(raw))
        parts = [p.text for p in d.paragraphs] + [c.text for t in d.tables for r in t.rows for c in r.cells]
    elif kind == "pptx":
        from pptx import Presentation

        parts = [s.text_frame.text for slide in Presentation(io.BytesIO(raw)).slides
                 for s in slide.shapes if s.has_text_frame]
    elif kind == "xlsx":
        from openpyxl import load_workbook

        book = load_workbook(io.BytesIO(raw), read_only=True, data_only=True)
        parts = [str(v) for ws in book.worksheets for row in ws.iter_rows(values_only=True) for v in row]
        book.close()
    elif kind == "csv":
        parts = [c for row in csv.reader(io.StringIO(raw.decode())) for c in row]
    elif kind == "epub":
        import warnings

        from ebooklib import ITEM_DOCUMENT, epub

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            book = epub.read_epub(io.BytesIO(raw), options={"ignore_ncx": True})
        parts = [i.get_content().decode() for i in book.get_items_of_type(ITEM_DOCUMENT)]
    else:
        from pypdf import PdfReader

        parts = [p.extract_text() for p in PdfReader(io.BytesIO(raw)).pages]
    return sum(len(p) for p in parts)


def _ours(path: Path) -> int:
    return sum(len(s.text) for s in ingest.load(path).sections)


def _best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def measure(kind: str, path: Path, units: int, unit: str, *, repeats: int) -> dict:
    """Our reader and the raw library on one file: units and MB per second, and their ratio."""
    mb = path.stat().st_size / 1e6
    _ours(path), _raw(kind, path)  # warm: imports and first-call costs out of the figures
    ours = _best_of(lambda: _ours(path), repeats)
    raw = _best_of(lambda: _raw(kind, path), repeats)
    return {"file_mb": mb, "units": units, "unit": unit, "ours_units_per_s": units / ours,
            "raw_units_per_s": units / raw, "ours_mb_per_s": mb / ours, "raw_mb_per_s": mb / raw,
            "ratio": raw / ours, "ours_chars": _ours(path), "raw_chars": _raw(kind, path)}


def accuracy(truth: str, read: str) -> float:
    """Character similarity (0..1) of the read text to the rendered text, whitespace folded."""
    a, b = " ".join(truth.split()), " ".join(read.split())
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def _ocr(folder: Path, *, quick: bool) -> dict:
    import pytesseract

    from rag.readers import ocr

    rng = random.Random(11)
    n = 2 if quick else 6
    pages = [[_sentence(rng, 9) for _ in range(22)] for _ in range(n)]
    truths = ["\n".join(p) for p in pages]
    images = [samples.render_text(p) for p in pages]
    pngs = []
    for i, im in enumerate(images):
        pngs.append(folder / f"scan{i}.png")
        im.save(pngs[-1])
    pdf = samples.write_scanned_pdf(folder / "scans.pdf", pages)
    t = time.perf_counter()
    raw = [pytesseract.image_to_string(im) for im in images]
    raw_s = time.perf_counter() - t
    t = time.perf_counter()
    ours = [ingest.load(p).sections[0].text for p in pngs]
    ours_s = time.perf_counter() - t
    t = time.perf_counter()
    doc = ingest.load(pdf)
    pdf_s = time.perf_counter() - t
    by_page = {s.location.page: s.text for s in doc.sections}
    w, h = images[0].size
    return {"pages": n, "image_px": [w, h], "engine": ocr.engine_path(),
            "tesseract": str(pytesseract.get_tesseract_version()),
            "raw_pages_per_s": n / raw_s, "image_reader_pages_per_s": n / ours_s, "pdf_reader_pages_per_s": n / pdf_s,
            "raw_accuracy": sum(map(accuracy, truths, raw)) / n,
            "image_reader_accuracy": sum(map(accuracy, truths, ours)) / n,
            "pdf_reader_accuracy": sum(accuracy(t, by_page.get(i + 1, "")) for i, t in enumerate(truths)) / n}


PARSING_RAW = ("docx", "pptx", "xlsx", "pdf")


def run(*, quick: bool) -> dict:
    repeats = 1 if quick else 3
    out: dict = {"formats": {}, "goals": []}
    with tempfile.TemporaryDirectory(prefix="rag-bench-readers-") as tmp:
        folder = Path(tmp)
        for kind, (path, units, unit) in _files(folder, quick=quick).items():
            out["formats"][kind] = measure(kind, path, units, unit, repeats=repeats)
        out["ocr"] = _ocr(folder, quick=quick)
    # the goal holds where the raw side parses the format too; raw csv (a C parser) and raw
    # ebooklib (chapter bytes, no HTML parsing) do less work than any reader can, so they are shown only
    worst = min(((k, v) for k, v in out["formats"].items() if k in PARSING_RAW), key=lambda kv: kv[1]["ratio"])
    out["goals"].append(goal("readers: slowest of docx/pptx/xlsx/pdf vs its raw library", target=">= 0.5",
                             measured=worst[1]["ratio"], met=worst[1]["ratio"] >= 0.5, unit="x",
                             note=f"{worst[0]}"))
    o = out["ocr"]
    out["goals"].append(goal("OCR character accuracy on generated scans", target=">= 0.95",
                             measured=min(o["image_reader_accuracy"], o["pdf_reader_accuracy"]),
                             met=min(o["image_reader_accuracy"], o["pdf_reader_accuracy"]) >= 0.95))
    return out
