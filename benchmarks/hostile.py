"""Hostile files: twenty kinds of bad input, each read in a process of its own, with its outcome,
peak memory and time.

Each case writes a file that costs little to send and much to read if the reader trusts it (a
sheet declaring 16,384 columns, a zip part that unpacks a thousandfold, one image under forty
names, markup nested 200,000 deep, a truncated or mislabelled file). `measure` reads it with
`ingest.load` in a fresh interpreter whose libraries are imported before the clock starts, under
an address-space cap and a time limit, so a reader that would take the machine down shows as
"killed" instead of doing it. `scale` shrinks every case for the tests; 1.0 is the size the
issue reported (or, where that would take hours unbounded, the size that shows the growth).

    .venv/bin/python benchmarks/hostile.py                   # every case at full size, this tree
    .venv/bin/python benchmarks/hostile.py --repo /tmp/old   # the same files read by another checkout
"""
from __future__ import annotations

import argparse
import io
import json
import os
import resource
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
MB = 1 << 20


# --- zip packages -----------------------------------------------------------------------------

def _docx_parts(document_xml: bytes) -> dict[str, bytes]:
    """The parts of a minimal valid Word document around `document_xml`."""
    return {
        "[Content_Types].xml": b'<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/'
                               b'package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.'
                               b'openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="'
                               b'application/xml"/><Override PartName="/word/document.xml" ContentType="application/'
                               b'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>',
        "_rels/.rels": b'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.'
                       b'org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats'
                       b'.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/>'
                       b'</Relationships>',
        "word/document.xml": document_xml,
    }


W_NS = b'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'


def _write_zip(path: Path, parts: dict[str, bytes | Callable[[], object]]) -> Path:
    """A deflated zip; a callable part yields its bytes in blocks (so a huge part is never held)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, data in parts.items():
            if callable(data):
                with zf.open(name, "w", force_zip64=True) as fh:
                    for block in data():
                        fh.write(block)
            else:
                zf.writestr(name, data)
    return path


def docx_markup(path: Path, scale: float) -> Path:
    """document.xml of ~50 MB of paragraphs (187 KB as a .docx): parsers hold ~20x that."""
    para = b"<w:p><w:r><w:t>" + b"lorem ipsum dolor sit amet " * 8 + b"</w:t></w:r></w:p>"
    n = int(50 * MB * scale) // len(para)
    body = b"<w:document " + W_NS + b"><w:body>" + para * n + b"</w:body></w:document>"
    return _write_zip(path.with_suffix(".docx"), _docx_parts(body))


def docx_unpacked(path: Path, scale: float) -> Path:
    """A 300 MB part of zeros (~300 KB packed) beside a valid document: a classic zip bomb."""
    size = int(300 * MB * scale)

    def zeros():
        for _ in range(size // MB):
            yield bytes(MB)

    parts = {**_docx_parts(b"<w:document " + W_NS + b"><w:body><w:p><w:r><w:t>hello</w:t></w:r></w:p>"
                                                      b"</w:body></w:document>"), "word/media/image1.png": zeros}
    return _write_zip(path.with_suffix(".docx"), parts)


def docx_version(path: Path, scale: float) -> Path:
    """A .docx whose parts say they need zip version 6.4 to extract (NotImplementedError in zipfile)."""
    p = _write_zip(path.with_suffix(".docx"), _docx_parts(b"<w:document " + W_NS + b"><w:body><w:p><w:r><w:t>"
                                                          b"hello</w:t></w:r></w:p></w:body></w:document>"))
    raw = bytearray(p.read_bytes())
    for sig, offset in ((b"PK\x03\x04", 4), (b"PK\x01\x02", 6)):  # local headers, central directory
        i = raw.find(sig)
        while i >= 0:
            raw[i + offset:i + offset + 2] = struct.pack("<H", 64)
            i = raw.find(sig, i + 4)
    p.write_bytes(bytes(raw))
    return p


def docx_entries(path: Path, scale: float) -> Path:
    """A .docx with 60,000 empty parts besides its own: a zip directory as a memory bomb."""
    parts: dict = _docx_parts(b"<w:document " + W_NS + b"><w:body><w:p><w:r><w:t>hello</w:t></w:r></w:p>"
                              b"</w:body></w:document>")
    parts.update({f"word/x/{i}.bin": b"" for i in range(int(60_000 * scale))})
    return _write_zip(path.with_suffix(".docx"), parts)


def _xlsx(path: Path, sheet_xml: Callable[[], object]) -> Path:
    """A workbook written by openpyxl, its one sheet's XML replaced (streamed) by `sheet_xml`."""
    from openpyxl import Workbook

    book = Workbook()
    book.active["A1"] = "x"
    buf = io.BytesIO()
    book.save(buf)
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as src:
        parts: dict = {n: src.read(n) for n in src.namelist()}
    parts["xl/worksheets/sheet1.xml"] = sheet_xml
    return _write_zip(path.with_suffix(".xlsx"), parts)


SHEET_HEAD = b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'


def xlsx_sparse(path: Path, scale: float) -> Path:
    """Declares A1:XFD200000 and holds two cells; openpyxl pads every row to 16,384 columns."""
    last = max(2, int(200_000 * scale))

    def xml():
        yield SHEET_HEAD + (f'<dimension ref="A1:XFD{last}"/><sheetData><row r="1"><c r="A1" t="inlineStr">'
               f'<is><t>name</t></is></c></row><row r="{last}"><c r="A{last}" t="inlineStr"><is><t>last row</t>'
               f'</is></c></row></sheetData></worksheet>').encode()

    return _xlsx(path, xml)


def xlsx_cells(path: Path, scale: float) -> Path:
    """3,000,000 real cells (30 columns x 100,000 rows) in ~3 MB: over the default cell budget."""
    rows, cols = int(100_000 * scale), 30

    def xml():
        yield SHEET_HEAD + b"<sheetData>"
        for r in range(1, rows + 1):
            yield (f'<row r="{r}">' + "".join(f'<c r="{c}{r}"><v>{r}</v></c>' for c in _columns(cols))
                   + "</row>").encode()
        yield b"</sheetData></worksheet>"

    return _xlsx(path, xml)


def _columns(n: int) -> list[str]:
    out = []
    for i in range(n):
        name, i = "", i + 1
        while i:
            i, rem = divmod(i - 1, 26)
            name = chr(65 + rem) + name
        out.append(name)
    return out


def _epub(path: Path, chapter: Callable[[], object]) -> Path:
    container = (b'<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:'
                 b'container"><rootfiles><rootfile full-path="content.opf" media-type="application/oebps-package'
                 b'+xml"/></rootfiles></container>')
    opf = (b'<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="id">'
           b'<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:identifier id="id">x</dc:identifier>'
           b'<dc:title>Hostile</dc:title><dc:language>en</dc:language></metadata><manifest><item id="c1" '
           b'href="c1.xhtml" media-type="application/xhtml+xml"/></manifest><spine><itemref idref="c1"/></spine>'
           b'</package>')
    # the mimetype entry comes first (readers look for it there); deflating it is tolerated
    return _write_zip(path.with_suffix(".epub"), {"mimetype": b"application/epub+zip",
                                                  "META-INF/container.xml": container, "content.opf": opf,
                                                  "c1.xhtml": chapter})


def epub_deep(path: Path, scale: float) -> Path:
    """An EPUB chapter of <div> nested 200,000 deep."""
    n = int(200_000 * scale)

    def xhtml():
        yield b'<html xmlns="http://www.w3.org/1999/xhtml"><body>' + b"<div>" * n + b"deep" + b"</div>" * n
        yield b"</body></html>"

    return _epub(path, xhtml)


def epub_markup(path: Path, scale: float) -> Path:
    """An EPUB chapter of ~50 MB of paragraphs (~200 KB packed)."""
    para = b"<p>" + b"lorem ipsum dolor sit amet " * 8 + b"</p>"
    n = int(50 * MB * scale) // len(para)

    def xhtml():
        yield b'<html xmlns="http://www.w3.org/1999/xhtml"><body>'
        for _ in range(max(1, n // 1000)):
            yield para * 1000
        yield b"</body></html>"

    return _epub(path, xhtml)


# --- markup and text --------------------------------------------------------------------------

def html_deep(path: Path, scale: float) -> Path:
    """<div> nested 200,000 deep (2.2 MB): 761 s in the app before."""
    n = int(200_000 * scale)
    p = path.with_suffix(".html")
    p.write_bytes(b"<html><body>" + b"<div>" * n + b"deep text" + b"</div>" * n + b"</body></html>")
    return p


def html_unmatched(path: Path, scale: float) -> Path:
    """100,000 open tags then 100,000 end tags that match none of them."""
    n = int(100_000 * scale)
    p = path.with_suffix(".html")
    p.write_bytes(b"<html><body>" + b"<span>" * n + b"text" + b"</b>" * n + b"</body></html>")
    return p


def html_table(path: Path, scale: float) -> Path:
    """A table of 3,000 x 1,000 empty-ish cells (~27 MB of markup)."""
    rows, cols = int(3_000 * scale), 1_000
    p = path.with_suffix(".html")
    with p.open("wb") as fh:
        fh.write(b"<html><body><table>")
        row = b"<tr>" + b"<td>1</td>" * cols + b"</tr>"
        for _ in range(rows):
            fh.write(row)
        fh.write(b"</table></body></html>")
    return p


def csv_wide(path: Path, scale: float) -> Path:
    """One 20 MB line of 10,000,000 empty fields, no newline."""
    p = path.with_suffix(".csv")
    p.write_bytes(b"a" + b"," * int(10_000_000 * scale))
    return p


def txt_binary(path: Path, scale: float) -> Path:
    """Random bytes named .txt."""
    p = path.with_suffix(".txt")
    p.write_bytes(os.urandom(int(4 * MB * scale) or 1024))
    return p


def txt_one_line(path: Path, scale: float) -> Path:
    """60 MB of words and no line break: read in blocks, cut at spaces."""
    p = path.with_suffix(".txt")
    word = b"lorem ipsum dolor sit amet "
    with p.open("wb") as fh:
        for _ in range(max(1, int(60 * scale))):
            fh.write(word * (MB // len(word)))
    return p


# --- PDF and images ---------------------------------------------------------------------------

def _pdf(path: Path, objects: list[bytes], *, root: int = 1) -> Path:
    """A PDF from numbered object bodies (1-based), with a correct cross-reference table."""
    out = bytearray(b"%PDF-1.5\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root {root} 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    p = path.with_suffix(".pdf")
    p.write_bytes(bytes(out))
    return p


def _stream(head: str, data: bytes) -> bytes:
    return f"<< {head} /Length {len(data)} >>\nstream\n".encode() + data + b"\nendstream"


def _image_pages(path: Path, *, side: int, names: int, pages: int) -> Path:
    """`pages` pages, each drawing one shared blank side x side image under `names` names."""
    image = _stream(f"/Type /XObject /Subtype /Image /Width {side} /Height {side} /ColorSpace /DeviceGray "
                    "/BitsPerComponent 8 /Filter /FlateDecode", zlib.compress(bytes(side * side), 9))
    xobjects = " ".join(f"/Im{i} 3 0 R" for i in range(names))
    draw = " ".join(f"q 612 0 0 792 0 0 cm /Im{i} Do Q" for i in range(names)).encode()
    first_page = 5
    kids = " ".join(f"{first_page + i} 0 R" for i in range(pages))
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode(),
               image, _stream("", draw)]
    page = (f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
            f"/Resources << /XObject << {xobjects} >> >> >>").encode()
    objects += [page] * pages
    return _pdf(path, objects)


def pdf_image_names(path: Path, scale: float) -> Path:
    """One blank 6000x6000 image listed under 40 names on a page without text (37 KB): +1.6 GB before."""
    return _image_pages(path, side=max(64, int(6000 * scale)), names=40, pages=1)


def pdf_ocr_pages(path: Path, scale: float) -> Path:
    """20,000 text-less pages sharing one 3000x3000 scan (~2.4 MB): about 2 hours of OCR before."""
    return _image_pages(path, side=3000 if scale >= 1 else 600, names=1, pages=max(2, int(20_000 * scale)))


def pdf_flate(path: Path, scale: float) -> Path:
    """A page content stream that inflates to 1 GB of spaces (~1 MB packed)."""
    size = int(1024 * MB * scale)
    z = zlib.compressobj(9)
    packed = b"".join(z.compress(bytes(b" ") * MB) for _ in range(size // MB)) + z.flush()
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
               _stream("/Filter /FlateDecode", packed)]
    return _pdf(path, objects)


def pdf_nested(path: Path, scale: float) -> Path:
    """An object of arrays nested 100,000 deep in the page dictionary (RecursionError in parsers)."""
    n = int(100_000 * scale)
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /X " + b"[" * n + b"]" * n
               + b" >>", _stream("", b"BT /F1 12 Tf 72 720 Td (nested) Tj ET")]
    return _pdf(path, objects)


def _png(width: int, height: int, data: bytes) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", data) + chunk(b"IEND", b""))


def png_pixels(path: Path, scale: float) -> Path:
    """A PNG header of 60000x60000 pixels over a few bytes of data."""
    side = max(64, int(60_000 * scale))
    p = path.with_suffix(".png")
    p.write_bytes(_png(side, side, zlib.compress(b"\x00" * 1024)))
    return p


def tiff_frame(path: Path, scale: float) -> Path:
    """A two-page TIFF: a small first page, a second page declared 40000x40000."""
    from PIL import Image

    side = max(64, int(40_000 * scale))
    first, second = Image.new("L", (37, 37), 255), Image.new("L", (41, 41), 255)
    p = path.with_suffix(".tif")
    first.save(p, save_all=True, append_images=[second])
    raw = bytearray(p.read_bytes())
    for tag in (256, 257):  # ImageWidth, ImageLength of the second page (Pillow writes LONGs)
        entry = struct.pack("<HHII", tag, 4, 1, 41)
        i = raw.find(entry)
        if i < 0:
            raise RuntimeError("TIFF layout not as expected")
        raw[i:i + len(entry)] = struct.pack("<HHII", tag, 4, 1, side)
    p.write_bytes(bytes(raw))
    return p


CASES: dict[str, Callable[[Path, float], Path]] = {
    "xlsx_sparse": xlsx_sparse, "xlsx_cells": xlsx_cells,
    "docx_markup": docx_markup, "docx_unpacked": docx_unpacked, "docx_version": docx_version,
    "docx_entries": docx_entries, "epub_markup": epub_markup, "epub_deep": epub_deep,
    "html_deep": html_deep, "html_unmatched": html_unmatched, "html_table": html_table,
    "pdf_image_names": pdf_image_names, "pdf_ocr_pages": pdf_ocr_pages, "pdf_flate": pdf_flate,
    "pdf_nested": pdf_nested, "png_pixels": png_pixels, "tiff_frame": tiff_frame,
    "csv_wide": csv_wide, "txt_binary": txt_binary, "txt_one_line": txt_one_line,
}


# --- measuring --------------------------------------------------------------------------------

_CHILD = r"""
import json, os, resource, sys, time
sys.path.insert(0, sys.argv[1])
from pathlib import Path
import docx, openpyxl, pypdf, ebooklib, PIL.Image, pptx  # imported before the clock and the baseline
from rag import ingest
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
base = rss()
t = time.perf_counter()
try:
    doc = ingest.load(Path(sys.argv[2]))
    chars = sum(len(s.text) for s in doc.sections)
    outcome = f"read: {chars:,} characters"
except Exception as e:
    outcome = f"{type(e).__name__}: {' '.join(str(e).split())}"
out = {"outcome": outcome, "seconds": time.perf_counter() - t, "base_mb": base / 2**20}
print("RESULT " + json.dumps(out), flush=True)
"""


def measure(path: Path, *, repo: Path = ROOT, timeout: float = 300.0, memory_cap_mb: int = 6144) -> dict:
    """Read `path` with `repo`'s ingest.load in a fresh interpreter capped at `memory_cap_mb` of
    address space and `timeout` seconds. Returns outcome, seconds, peak RSS and its increase over
    the interpreter with its libraries loaded."""
    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (memory_cap_mb * MB, memory_cap_mb * MB))

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(repo), str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, preexec_fn=cap, env=env, cwd=str(repo))
    killed = False
    deadline = t0 + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            proc.kill()
            killed = True
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.05)
    out = proc.stdout.read().decode(errors="replace")
    proc.stdout.close()
    peak = usage.ru_maxrss / 1024  # kilobytes on Linux
    line = next((ln for ln in out.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        why = f"killed at the {timeout:.0f} s limit" if killed else (
            f"died (exit {os.waitstatus_to_exitcode(status)}; memory cap {memory_cap_mb} MB)")
        return {"outcome": why, "seconds": time.perf_counter() - t0, "peak_mb": peak, "extra_mb": None}
    r = json.loads(line[len("RESULT "):])
    return {"outcome": r["outcome"], "seconds": r["seconds"], "peak_mb": peak,
            "extra_mb": max(0.0, peak - r["base_mb"])}


def run(*, scale: float = 1.0, repo: Path = ROOT, only=None, timeout: float = 300.0, log=print) -> dict:
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, make in CASES.items():
            if only and name not in only:
                continue
            path = make(Path(tmp) / name, scale)
            r = measure(path, repo=repo, timeout=timeout)
            r["file_kb"] = path.stat().st_size / 1024
            r["doc"] = (make.__doc__ or "").strip().splitlines()[0]
            results[name] = r
            path.unlink()
            log(f"{name:16} {r['file_kb']:9.0f} KB  {r['seconds']:7.2f} s  peak {r['peak_mb']:7.0f} MB  "
                f"{r['outcome'][:110]}")
    return results


# the read of one hostile file may cost at most this much memory above the interpreter's own:
# the app's whole budget is 1.5 GB, with the models (~0.8 GB) in it
EXTRA_MB_GOAL = 600


def section(*, quick: bool, before: str | None = None) -> dict:
    """benchmarks/run.py's section: every case read by this tree and, with `before` (a checkout
    of an older commit; RAG_BENCH_BEFORE), by that one too, under a shorter time limit."""
    from benchmarks.common import goal

    scale = 0.05 if quick else 1.0
    out = {"scale": scale, "after": run(scale=scale)}
    before = before or os.environ.get("RAG_BENCH_BEFORE")
    if before:
        out["before"] = run(scale=scale, repo=Path(before).resolve(), timeout=120.0)
        out["before_repo"] = before
    worst = max(r["extra_mb"] or 0 for r in out["after"].values())
    slowest = max(r["seconds"] for r in out["after"].values())
    out["goals"] = [goal("hostile files: largest memory increase reading one (20 kinds)", target=f"<= {EXTRA_MB_GOAL} MB",
                         measured=worst, unit="MB", met=worst <= EXTRA_MB_GOAL),
                    goal("hostile files: slowest read (20 kinds)", target="within read_seconds (300 s)",
                         measured=slowest, unit="s", met=slowest <= 300)]
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--repo", default=str(ROOT), help="the checkout whose rag package reads the files")
    p.add_argument("--only", nargs="+", choices=sorted(CASES))
    p.add_argument("--timeout", type=float, default=300.0, help="seconds before a read is killed")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    results = run(scale=args.scale, repo=Path(args.repo).resolve(), only=args.only, timeout=args.timeout)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
