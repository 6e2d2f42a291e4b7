"""Readers stay within a document's budget while they read: hostile spreadsheets, zips, Word
tables and TIFFs stop at a limit (OverBudget, with the resource it went over) or are read in
bounded memory, never after the damage is done.

Every hostile file is built here, by the library that reads it or by zipfile, small enough for a
unit test: the limits are lowered to fit, or the file is one that used to cost gigabytes and
now costs kilobytes. Memory is measured with tracemalloc (Python's own allocations, where the
openpyxl padding, zip inflation and cell lists live)."""
import io
import itertools
import re
import struct
import time
import tracemalloc
import warnings
import zipfile
import zlib
from pathlib import Path

import pytest

from rag import samples
from rag.errors import DocumentError, OverBudget
from rag.readers import READERS
from rag.readers import docx as docx_reader
from rag.readers import epub as epub_reader
from rag.readers import image as image_reader
from rag.readers import package
from rag.readers import pptx as pptx_reader
from rag.readers import sheet
from rag.readers.budget import MB, Budget, ReadLimits, unlimited

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def rezip(raw: bytes, replace: dict | None = None, *, extra: list[tuple[str, bytes]] = (),
          compression=zipfile.ZIP_DEFLATED) -> bytes:
    """`raw` zip again, some parts replaced (name -> bytes, or a function of the old bytes)."""
    replace = replace or {}
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(raw)) as zin, zipfile.ZipFile(out, "w", compression) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            new = replace.get(info.filename, data)
            zout.writestr(info.filename, new(data) if callable(new) else new)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Duplicate name", on purpose
            for name, data in extra:
                zout.writestr(name, data)
    return out.getvalue()


def central_entries(raw: bytes):
    """(offset, name) of each central directory entry."""
    pos = raw.find(b"PK\x01\x02")
    while pos >= 0:
        n = struct.unpack_from("<H", raw, pos + 28)[0]
        yield pos, raw[pos + 46:pos + 46 + n].decode()
        pos = raw.find(b"PK\x01\x02", pos + 46 + n)


def peak_python_mb(fn):
    """(result or exception, peak MB of Python allocations while fn ran, seconds)."""
    tracemalloc.start()
    t = time.perf_counter()
    try:
        out = fn()
    except Exception as e:  # noqa: BLE001 - the caller asserts on it
        out = e
    seconds = time.perf_counter() - t
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return out, peak / MB, seconds


def xlsx_bytes(tmp_path, rows) -> bytes:
    return samples.write_xlsx(tmp_path / "base.xlsx", {"Parts": rows}).read_bytes()


def with_sheet_xml(raw: bytes, fn) -> bytes:
    return rezip(raw, {"xl/worksheets/sheet1.xml": fn})


def docx_bytes(tmp_path, paragraphs=("x",), **kw) -> bytes:
    return samples.write_docx(tmp_path / "base.docx", [("Heading", list(paragraphs))], **kw).read_bytes()


def with_body(raw: bytes, body: bytes) -> bytes:
    """The docx with its body's content replaced by `body` (the section properties kept)."""
    def edit(xml):
        head, rest = xml.split(b"<w:body>", 1)
        return head + b"<w:body>" + body + rest[rest.index(b"<w:sectPr"):]
    return rezip(raw, {"word/document.xml": edit})


def markup_of(raw: bytes) -> int:
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        return sum(i.file_size for i in z.infolist() if i.filename.endswith(package.MARKUP_SUFFIXES))


# ---------------------------------------------------------------- spreadsheets (finding 1)

def test_a_sparse_declared_dimension_costs_its_cells_not_its_area(tmp_path):
    """The 4.9 KB file of the issue: <dimension ref="A1:XFD200000"/> and a cell in the last row.
    openpyxl padded each row to 16,384 columns (6,000 rows: +1.6 GB, 37 s)."""
    raw = xlsx_bytes(tmp_path, [["Part", "Note"], ["bolt", "M6"]])
    raw = with_sheet_xml(raw, lambda x: re.sub(rb'<dimension ref="[^"]*"/>', b'<dimension ref="A1:XFD200000"/>', x)
                         .replace(b"</sheetData>", b'<row r="200000"><c r="A200000" t="inlineStr"><is><t>far</t>'
                                  b"</is></c></row></sheetData>"))
    assert len(raw) < 10_000
    budget = Budget("sparse.xlsx")
    out, peak, seconds = peak_python_mb(lambda: sheet.read_xlsx(Path("sparse.xlsx"), raw, budget=budget))
    _, (section,) = out
    assert section.table.header == ("Part", "Note")
    assert section.table.rows == (("bolt", "M6"), ("far", ""))
    assert section.table.row_numbers == (2, 200000)
    assert (section.location.sheet, section.location.rows) == ("Parts", (2, 200000))
    assert budget.spent["cells"] == 3 * 2
    assert peak < 20 and seconds < 10, (peak, seconds)


def test_one_cell_per_row_in_the_last_column_is_one_column(tmp_path):
    """Each row's only cell in column XFD: openpyxl's reset_dimensions() still pads every row to
    its last cell, 16,384 wide (20,000 rows: +5.2 GB, 252 s before)."""
    rows = 5000
    body = "".join(f'<row r="{i}"><c r="XFD{i}"><v>{i}</v></c></row>' for i in range(1, rows + 1))
    raw = with_sheet_xml(xlsx_bytes(tmp_path, [["x"]]),
                         lambda _: f'<worksheet xmlns="{MAIN}"><dimension ref="A1:XFD{rows}"/>'
                                   f"<sheetData>{body}</sheetData></worksheet>".encode())
    budget = Budget("far.xlsx")
    out, peak, _ = peak_python_mb(lambda: sheet.read_xlsx(Path("far.xlsx"), raw, budget=budget))
    _, (section,) = out
    assert section.table.header == ("1",) and len(section.table.rows) == rows - 1
    assert section.table.rows[-1] == (str(rows),)
    assert budget.spent["cells"] == rows
    assert peak < 40, peak


def test_a_sheet_of_more_cells_than_its_budget_stops_with_cells(tmp_path):
    raw = xlsx_bytes(tmp_path, [[f"h{j}" for j in range(10)]] + [[i * j for j in range(10)] for i in range(1, 200)])
    budget = Budget("many.xlsx", ReadLimits(cells=500))
    with pytest.raises(OverBudget, match="over 500 table cells") as e:
        sheet.read_xlsx(Path("many.xlsx"), raw, budget=budget)
    assert e.value.resource == "cells"
    assert budget.spent["cells"] == 501  # stopped at the first cell over, not after the sheet
    # the same file within a budget that fits it is read whole
    _, (section,) = sheet.read_xlsx(Path("many.xlsx"), raw, budget=Budget("many.xlsx", ReadLimits(cells=2000)))
    assert len(section.table.rows) == 199


def test_one_row_of_a_hundred_thousand_cells_stops_inside_the_row(tmp_path):
    """openpyxl parses a whole <row> before yielding it; cells are charged one by one here."""
    cells = "<c><v>1</v></c>" * 100_000
    raw = with_sheet_xml(xlsx_bytes(tmp_path, [["x"]]),
                         lambda _: f'<worksheet xmlns="{MAIN}"><sheetData><row r="1">{cells}</row>'
                                   f"</sheetData></worksheet>".encode())
    out, peak, _ = peak_python_mb(
        lambda: sheet.read_xlsx(Path("row.xlsx"), raw, budget=Budget("row.xlsx", ReadLimits(cells=1000))))
    assert isinstance(out, OverBudget) and out.resource == "cells"
    assert peak < 10, peak


def test_a_wide_csv_header_over_many_rows_is_charged_as_its_grid(tmp_path):
    """2,000 columns in the first row and 2,000 one-cell rows are a 4-million-cell table, though
    the file has 6,000 cells: the default budget stops it, at 2 million."""
    text = ",".join(f"c{j}" for j in range(2000)) + "\n" + "x\n" * 2000
    with pytest.raises(OverBudget) as e:
        sheet.read_csv(Path("wide.csv"), text.encode())
    assert e.value.resource == "cells"


def test_a_shared_string_table_named_like_a_sheet_still_counts_as_markup(tmp_path):
    """Worksheets are streamed, so they are not markup. Which parts are worksheets comes from the
    relationships and content types, so a part openpyxl parses whole (here a shared-string table,
    found by its content type) cannot pass as one by its name or by a worksheet relationship."""
    raw = xlsx_bytes(tmp_path, [["Name"]] + [[f"name {i}"] for i in range(3000)])
    sheet_size = zipfile.ZipFile(io.BytesIO(raw)).getinfo("xl/worksheets/sheet1.xml").file_size
    budget = Budget("s.xlsx", unlimited().limits)
    package.open_package(Path("s.xlsx"), raw, "xlsx", budget=budget).close()
    assert budget.spent["markup_bytes"] == markup_of(raw) - sheet_size  # the sheet is not markup

    strings = (f'<sst xmlns="{MAIN}">' + "<si><t>s</t></si>" * 3000 + "</sst>").encode()
    hidden = rezip(raw, {
        "[Content_Types].xml": lambda x: x.replace(b"</Types>", b'<Override PartName="/xl/worksheets/strings.xml" '
                                                   b'ContentType="application/vnd.openxmlformats-officedocument.'
                                                   b'spreadsheetml.sharedStrings+xml"/></Types>'),
        "xl/_rels/workbook.xml.rels": lambda x: x.replace(b"</Relationships>", b'<Relationship Type="http://schemas.'
                                                          b'openxmlformats.org/officeDocument/2006/relationships/'
                                                          b'worksheet" Target="worksheets/strings.xml" Id="rId9"/>'
                                                          b"</Relationships>")},
        extra=[("xl/worksheets/strings.xml", strings)])
    budget = Budget("s.xlsx", unlimited().limits)
    package.open_package(Path("s.xlsx"), hidden, "xlsx", budget=budget).close()
    assert budget.spent["markup_bytes"] >= markup_of(hidden) - sheet_size  # strings.xml counted
    assert sheet.read_xlsx(Path("s.xlsx"), hidden)[1]  # and openpyxl does read it, as shared strings


# ---------------------------------------------------------------- zip packages (findings 2 and 5)

def test_a_word_document_over_the_markup_budget_stops_before_it_is_parsed(tmp_path):
    small = docx_bytes(tmp_path)
    limits = ReadLimits(markup_bytes=markup_of(small) + 50_000)
    docx_reader.read(Path("small.docx"), small, budget=Budget("small.docx", limits))  # fits
    big = with_body(small, b"<w:p><w:r><w:t>The pump needs four bar.</w:t></w:r></w:p>" * 5000)  # ~290 KB
    out, peak, seconds = peak_python_mb(lambda: docx_reader.read(Path("big.docx"), big,
                                                                 budget=Budget("big.docx", limits)))
    assert isinstance(out, OverBudget) and out.resource == "markup_bytes", out
    assert "markup" in str(out) and str(out).startswith("big.docx: not read")
    assert peak < 5 and seconds < 2


def test_markup_dense_in_nodes_is_charged_by_its_nodes(tmp_path):
    """Two tree nodes in five bytes (`<a/>b`) take ~50x their size in lxml, plain paragraphs
    ~10x: the same byte count is under the budget as text and over it as nodes."""
    small = docx_bytes(tmp_path)
    limits = ReadLimits(markup_bytes=markup_of(small) + 400_000)
    paragraph = b"<w:p><w:r><w:t>The pump needs four bar of pressure.</w:t></w:r></w:p>"
    text = with_body(small, paragraph * 4000)
    dense = with_body(small, b"<a/>b" * (len(paragraph) * 4000 // 5))
    assert abs(markup_of(text) - markup_of(dense)) < 10
    _, sections = docx_reader.read(Path("text.docx"), text, budget=Budget("text.docx", limits))
    assert "four bar" in sections[0].text
    with pytest.raises(OverBudget) as e:
        docx_reader.read(Path("dense.docx"), dense, budget=Budget("dense.docx", limits))
    assert e.value.resource == "markup_bytes"


def test_the_declared_unpacked_size_is_checked_against_the_budget(tmp_path):
    raw = docx_bytes(tmp_path)
    with pytest.raises(OverBudget) as e:
        docx_reader.read(Path("d.docx"), raw, budget=Budget("d.docx", ReadLimits(unpacked_bytes=100_000)))
    assert e.value.resource == "unpacked_bytes"


def test_zip_version_needed_above_6_3_is_a_document_error(tmp_path):
    """zipfile raises NotImplementedError for it, which stopped a whole `rag index`."""
    raw = bytearray(docx_bytes(tmp_path))
    for pos, _ in list(central_entries(bytes(raw))):
        struct.pack_into("<H", raw, pos + 6, 64)
    with pytest.raises(DocumentError, match="unsupported zip feature: zip file version 6.4"):
        docx_reader.read(Path("v.docx"), bytes(raw))


def test_a_part_that_inflates_past_its_declared_size_is_refused_in_bounded_memory(tmp_path):
    """zipfile's read() inflates a part's whole deflate stream before cutting it at the declared
    size: a 931 KB docx declaring its document.xml as 1.5 KB peaked at +1.8 GB."""
    raw = docx_bytes(tmp_path)
    real = zipfile.ZipFile(io.BytesIO(raw)).read("word/document.xml")
    padded = bytearray(rezip(raw, {"word/document.xml": real + b" " * (20 * MB)}))
    for pos, name in central_entries(bytes(padded)):
        if name == "word/document.xml":  # declare the real part's size and checksum
            struct.pack_into("<LLL", padded, pos + 16, zlib.crc32(real), struct.unpack_from("<L", padded, pos + 20)[0],
                             len(real))
    out, peak, _ = peak_python_mb(lambda: docx_reader.read(Path("lie.docx"), bytes(padded)))
    assert isinstance(out, DocumentError) and "unpacks past the" in str(out), out
    assert peak < 5, peak


def _flag_encrypted(raw: bytes) -> bytes:
    out = bytearray(raw)
    for pos, name in central_entries(raw):
        if name == "word/document.xml":
            out[pos + 8] |= 1
    return bytes(out)


@pytest.mark.parametrize("make, words", [
    (lambda raw: rezip(raw, extra=[("word/document.xml", b"<other/>")]), "appears twice"),
    (_flag_encrypted, "encrypted Word document"),
    (lambda raw: rezip(raw, compression=zipfile.ZIP_BZIP2), "compression method 12"),
    (lambda raw: rezip(raw, extra=[(f"pad/{i}", b"") for i in range(package.MAX_ENTRIES + 1)]), "over 10,000 parts"),
], ids=["duplicate-name", "encrypted-part", "bzip2", "too-many-parts"])
def test_zip_features_outside_the_formats_are_document_errors(tmp_path, make, words):
    raw = make(docx_bytes(tmp_path))
    with pytest.raises(DocumentError, match=words):
        docx_reader.read(Path("z.docx"), raw)


# ---------------------------------------------------------------- Word and PowerPoint tables

def _table(rows: list[list[str]], spans: dict | None = None, vmerge: set | None = None) -> bytes:
    """A w:tbl; spans: (row, col) -> gridSpan, vmerge: (row, col) continuing the cell above."""
    spans, vmerge = spans or {}, vmerge or set()
    out = ["<w:tbl><w:tblPr/><w:tblGrid><w:gridCol/><w:gridCol/></w:tblGrid>"]
    for r, row in enumerate(rows):
        out.append("<w:tr>")
        for c, text in enumerate(row):
            props = (f'<w:gridSpan w:val="{spans[r, c]}"/>' if (r, c) in spans else "") + \
                    ("<w:vMerge/>" if (r, c) in vmerge else "")
            out.append(f"<w:tc><w:tcPr>{props}</w:tcPr><w:p><w:r><w:t>{text}</w:t></w:r></w:p></w:tc>")
        out.append("</w:tr>")
    out.append("</w:tbl>")
    return "".join(out).encode()


def test_a_forged_grid_span_is_not_expanded(tmp_path):
    """python-docx's row.cells repeats a cell once per grid column it spans: a gridSpan of a
    billion would be a billion-cell tuple."""
    raw = with_body(docx_bytes(tmp_path), _table([["Tool", "Size"], ["wrench", "13 mm"]], spans={(1, 0): 10**9}))
    out, peak, seconds = peak_python_mb(lambda: docx_reader.read(Path("span.docx"), raw))
    _, (table,) = out
    assert table.table.header == ("Tool", "Size") and table.table.rows == (("wrench", "13 mm"),)
    assert peak < 5 and seconds < 2


def test_a_long_vertical_merge_reads_without_walking_up_the_rows(tmp_path):
    """python-docx finds a continued cell by XPath through every row above it, recursively:
    1,500 rows were a RecursionError and quadratic time."""
    rows = [["Group", "Item"]] + [["first", f"item {i}"] for i in range(1500)]
    raw = with_body(docx_bytes(tmp_path), _table(rows, vmerge={(r, 0) for r in range(2, 1501)}))
    _, (table,) = docx_reader.read(Path("merge.docx"), raw)
    assert len(table.table.rows) == 1500
    assert table.table.rows[-1] == ("first", "item 1499")  # the merged cell's text in each row it covers


def test_word_and_powerpoint_table_cells_are_charged(tmp_path):
    raw = docx_bytes(tmp_path, table=[[f"r{r}c{c}" for c in range(6)] for r in range(20)])
    with pytest.raises(OverBudget) as e:
        docx_reader.read(Path("t.docx"), raw, budget=Budget("t.docx", ReadLimits(cells=100)))
    assert e.value.resource == "cells"

    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[5])
    grid = slide.shapes.add_table(20, 6, Inches(0.5), Inches(1.5), Inches(9), Inches(5)).table
    for r, c in itertools.product(range(20), range(6)):
        grid.cell(r, c).text = f"r{r}c{c}"
    buf = io.BytesIO()
    deck.save(buf)
    with pytest.raises(OverBudget) as e:
        pptx_reader.read(Path("t.pptx"), buf.getvalue(), budget=Budget("t.pptx", ReadLimits(cells=100)))
    assert e.value.resource == "cells"
    _, sections = pptx_reader.read(Path("t.pptx"), buf.getvalue())
    assert any(s.table is not None and s.table.rows[-1][-1] == "r19c5" for s in sections)


# ---------------------------------------------------------------- images (finding 5, TIFF)

def tiff(*sizes, declared: dict | None = None) -> bytes:
    """A multi-frame TIFF of blank frames; `declared`: frame -> (w, h) written into that frame's
    header instead of its real size (its data stays a few bytes)."""
    from PIL import Image

    frames = [Image.new("L", size, 255) for size in sizes]
    buf = io.BytesIO()
    frames[0].save(buf, format="TIFF", save_all=True, append_images=frames[1:])
    raw = bytearray(buf.getvalue())
    ifd = struct.unpack_from("<I", raw, 4)[0]
    for frame in range(len(sizes)):
        n = struct.unpack_from("<H", raw, ifd)[0]
        for k in range(n):
            entry = ifd + 2 + 12 * k
            tag = struct.unpack_from("<H", raw, entry)[0]
            if declared and frame in declared and tag in (256, 257):  # ImageWidth, ImageLength
                struct.pack_into("<HHII", raw, entry, tag, 4, 1, declared[frame][tag - 256])
        ifd = struct.unpack_from("<I", raw, ifd + 2 + 12 * n)[0]
    return bytes(raw)


def test_a_later_tiff_frame_over_the_pixel_limit_stops_before_it_is_decoded():
    """Only frame 0 was size-checked: a 4 KB TIFF whose second frame declares 40000x40000
    reached Pillow's decoder (DecompressionBombError, not a DocumentError)."""
    raw = tiff((64, 64), (1, 1), declared={1: (40000, 40000)})
    out, peak, seconds = peak_python_mb(lambda: image_reader.read(Path("scan.tif"), raw))
    assert isinstance(out, OverBudget) and out.resource == "pixels", out
    assert "page 2 of the image too large for OCR (40000x40000 pixels" in str(out)
    assert peak < 5 and seconds < 2


@pytest.mark.parametrize("resource", ["images", "ocr_pages"])
def test_tiff_frames_are_counted_before_any_is_read(resource):
    raw = tiff((32, 32), (32, 32), (32, 32))
    with pytest.raises(OverBudget) as e:
        image_reader.read(Path("scan.tif"), raw, budget=Budget("scan.tif", ReadLimits(**{resource: 2})))
    assert e.value.resource == resource


def test_an_ordinary_oversized_image_keeps_its_message():
    from PIL import Image

    buf = io.BytesIO()
    Image.new("1", (12000, 9000), 1).save(buf, format="PNG")
    with pytest.raises(OverBudget, match=r"huge.png: image too large for OCR \(12000x9000 pixels, limit 64"):
        image_reader.read(Path("huge.png"), buf.getvalue())


# ---------------------------------------------------------------- time

def _samples(tmp_path) -> dict[str, bytes]:
    return {
        ".docx": samples.write_docx(tmp_path / "a.docx", [("H", ["p1", "p2"])]).read_bytes(),
        ".pptx": samples.write_pptx(tmp_path / "a.pptx", [("One", ["x"]), ("Two", ["y"])]).read_bytes(),
        ".xlsx": samples.write_xlsx(tmp_path / "a.xlsx", {"S": [["a"], [1]]}).read_bytes(),
        ".epub": samples.write_epub(tmp_path / "a.epub", [("One", "<p>x</p>"), ("Two", "<p>y</p>")]).read_bytes(),
        ".tif": tiff((32, 32), (32, 32)),
    }


@pytest.mark.parametrize("suffix", [".docx", ".pptx", ".xlsx", ".epub", ".tif"])
def test_a_time_budget_of_almost_nothing_stops_every_multi_part_reader(tmp_path, suffix):
    raw = _samples(tmp_path)[suffix]
    reader = READERS[suffix][1]
    with pytest.raises(OverBudget, match="took over") as e:
        reader(Path("a" + suffix), raw, budget=Budget("a" + suffix, ReadLimits(seconds=1e-9)))
    assert e.value.resource == "seconds"


def test_the_clock_is_asked_inside_the_loops_not_only_up_front(tmp_path):
    """A clock that moves one second per reading: the package checks pass, the paragraph loop
    of a 400-paragraph document is where the time runs out."""
    raw = docx_bytes(tmp_path, [f"paragraph {i}" for i in range(400)])
    ticks = itertools.count()
    budget = Budget("slow.docx", ReadLimits(seconds=100), clock=lambda: next(ticks))
    with pytest.raises(OverBudget) as e:
        docx_reader.read(Path("slow.docx"), raw, budget=budget)
    assert e.value.resource == "seconds"
    ticks = itertools.count()
    assert docx_reader.read(Path("slow.docx"), raw, budget=Budget("slow.docx", ReadLimits(seconds=1000),
                                                                  clock=lambda: next(ticks)))[1]


# ---------------------------------------------------------------- the default budget

def test_every_reader_reads_without_a_budget_given(tmp_path):
    for suffix, raw in _samples(tmp_path).items():
        if suffix == ".tif":
            continue  # reading one needs Tesseract; its checks are above
        _, sections = READERS[suffix][1](Path("a" + suffix), raw)
        assert sections, suffix
    assert epub_reader.read(Path("a.epub"), _samples(tmp_path)[".epub"])[1]


def test_ocr_time_counts_against_its_own_limit_not_the_reading_one():
    """A review found 40-page scans refused: OCR at ~7.7 s a page passed read_seconds (300) long
    before read_ocr_pages (200). Time inside `Budget.ocr()` is OCR time only."""
    now = [0.0]
    budget = Budget("scan.pdf", ReadLimits(seconds=10, ocr_seconds=100), clock=lambda: now[0])
    for _ in range(9):  # 9 pages of 8 s of OCR each, 0.5 s of reading between them
        with budget.ocr() as left:
            assert left > 0
            now[0] += 8
        now[0] += 0.5
        budget.check_time()
    assert budget.elapsed() == pytest.approx(4.5)
    with budget.ocr():
        now[0] += 40  # past the OCR limit: 112 s of OCR
    with pytest.raises(OverBudget, match="of OCR; raise read_ocr_seconds") as e:
        budget.check_time()
    assert e.value.resource == "ocr_seconds"
