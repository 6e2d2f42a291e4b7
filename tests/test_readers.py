"""Readers of Word, PowerPoint, Excel/CSV/TSV, EPUB and images, OCR of scans, tables chunked
under their header, locations carried to citations, and every kind of bad office file.

Files are written on the spot by the libraries that read them (rag.samples); OCR runs the real
Tesseract on small rendered images."""
import json
import logging
import zipfile
from pathlib import Path

import pytest

from rag import ingest, samples
from rag.chunk import Chunker
from rag.errors import DocumentError
from rag import index
from rag.readers import ocr
from rag.readers import pdf as pdf_reader
from rag.testing import WordTokenizer
from rag.types import Answer, Chunk, Citation, Location
from rag.samples import write_text_pdf as make_pdf


def chunker(size=60):
    return Chunker(WordTokenizer(), max_tokens=256, chunk_size=size, chunk_overlap=10)


# ---------------------------------------------------------------- each format keeps its structure

def test_docx_headings_paragraphs_and_tables(tmp_path):
    f = samples.write_docx(tmp_path / "bike.docx", [
        ("Pumps", ["The pump needs 4 bar.", "Oil it weekly."]), ("Brakes", ["Pads last 3000 km."])],
        table=[["Part", "Price"], ["Chain", "19 EUR"]], title="Bike notes")
    doc = ingest.load(f)
    assert doc.title == "Bike notes"
    assert [(s.headings, s.text) for s in doc.sections] == [
        (("Pumps",), "The pump needs 4 bar.\nOil it weekly."),
        (("Pumps",), "| Part | Price |\n| --- | --- |\n| Chain | 19 EUR |"),
        (("Brakes",), "Pads last 3000 km.")]
    assert doc.sections[1].table.header == ("Part", "Price")


def test_pptx_slide_numbers_and_titles(tmp_path):
    f = samples.write_pptx(tmp_path / "deck.pptx", [("Welcome", ["Agenda for today"]),
                                                      ("Budget 2025", ["Marketing gets 40 percent"])])
    doc = ingest.load(f)
    assert [(s.headings, s.location.slide, s.text) for s in doc.sections] == [
        (("Welcome",), 1, "Agenda for today"), (("Budget 2025",), 2, "Marketing gets 40 percent")]


def test_xlsx_sheets_with_row_ranges_and_an_empty_sheet_left_out(tmp_path):
    f = samples.write_xlsx(tmp_path / "book.xlsx", {
        "Sales": [["Region", "Q1"], ["North", 10], ["South", 5.0]], "Blank": []})
    doc = ingest.load(f)
    (s,) = doc.sections
    assert s.headings == ("Sales",) and s.location == Location(sheet="Sales", rows=(2, 3))
    assert s.text == "| Region | Q1 |\n| --- | --- |\n| North | 10 |\n| South | 5 |"
    assert s.location.label == "sheet Sales, rows 2-3"


def test_csv_delimiter_is_sniffed_and_tsv_uses_tabs(tmp_path):
    (tmp_path / "a.csv").write_text("name;age\nAnna;31\n\nBo;45\n")
    (tmp_path / "b.tsv").write_text("city\tpeople\nOslo\t700000\n")
    a, b = ingest.load(tmp_path / "a.csv"), ingest.load(tmp_path / "b.tsv")
    assert a.sections[0].table.rows == (("Anna", "31"), ("Bo", "45"))
    assert a.sections[0].location.rows == (2, 4)  # the blank line 3 is still counted
    assert b.sections[0].table.header == ("city", "people")


def test_epub_chapters_in_spine_order_with_heading_paths_and_tables(tmp_path):
    f = samples.write_epub(tmp_path / "book.epub", [
        ("Chapter One", "<p>The keeper was named Orla.</p><table><tr><th>Ship</th><th>Year</th></tr>"
                        "<tr><td>Aurora</td><td>1911</td></tr></table>"),
        ("Chapter Two", "<h2>Storm</h2><p>Waves rose.</p>")], title="Lighthouse")
    doc = ingest.load(f)
    assert doc.title == "Lighthouse"
    assert [(s.headings, s.text) for s in doc.sections] == [
        (("Chapter One",), "The keeper was named Orla."),
        (("Chapter One",), "| Ship | Year |\n| --- | --- |\n| Aurora | 1911 |"),
        (("Chapter Two", "Storm"), "Waves rose.")]


def test_html_tables_become_markdown_and_hidden_tables_stay_out(tmp_path):
    f = tmp_path / "t.html"
    f.write_text("<h1>Prices</h1><p>See below.</p><table><tr><th>Item</th><th>Cost | net</th></tr>"
                 "<tr><td>Tea<br>green</td><td>3</td></tr><tr><td><table><tr><td>inner</td></tr></table></td>"
                 "<td>4</td></tr></table><table style='display:none'><tr><td>SECRET</td></tr></table><p>After.</p>")
    doc = ingest.load(f)
    assert [s.text for s in doc.sections] == [
        "See below.", "| Item | Cost \\| net |\n| --- | --- |\n| Tea green | 3 |\n| inner | 4 |", "After."]


# ---------------------------------------------------------------- tables in chunks

def test_every_chunk_of_a_long_table_repeats_its_header_and_names_its_rows(tmp_path):
    rows = [["Order", "Customer", "Amount"]] + [[f"A{i}", f"customer {i}", i * 3] for i in range(1, 5001)]
    f = samples.write_xlsx(tmp_path / "orders.xlsx", {"Orders": rows})
    doc = ingest.load(f)
    chunks = chunker().split(doc)
    assert len(chunks) > 100
    head = "| Order | Customer | Amount |\n| --- | --- | --- |\n"
    assert all(c.text.startswith(head) for c in chunks)
    ranges = [c.location.rows for c in chunks]
    assert ranges[0][0] == 2 and ranges[-1][1] == 5001  # row 1 is the header
    assert all(b[0] == a[1] + 1 for a, b in zip(ranges, ranges[1:]))  # every row once, in order
    hit = next(c for c in chunks if "| A4321 |" in c.text)
    assert hit.location.sheet == "Orders" and hit.location.rows[0] <= 4322 <= hit.location.rows[1]
    assert all(len(WordTokenizer().tokenize(c.text)) <= 60 for c in chunks)


def test_a_row_longer_than_a_chunk_is_split_under_the_header(tmp_path):
    long = " ".join(f"word{i}" for i in range(150))
    f = samples.write_xlsx(tmp_path / "wide.xlsx", {"S": [["Key", "Note"], ["k1", long], ["k2", "short"]]})
    chunks = chunker().split(ingest.load(f))
    assert len(chunks) >= 3 and all(c.text.startswith("| Key | Note |") for c in chunks)
    assert [c.location.rows for c in chunks][-1] == (3, 3)


def test_a_header_too_wide_for_a_chunk_is_split_as_text(tmp_path):
    header = [f"column number {i}" for i in range(30)]
    f = samples.write_xlsx(tmp_path / "w.xlsx", {"S": [header, list(range(30))]})
    chunks = chunker().split(ingest.load(f))
    assert chunks and not all(c.text.startswith("| column number 0") for c in chunks)


# ---------------------------------------------------------------- OCR

def test_image_is_read_by_ocr(tmp_path):
    f = tmp_path / "note.png"
    samples.render_text(["The locker code is 7731."], width=700).save(f)
    doc = ingest.load(f)
    assert "locker code is 7731" in doc.sections[0].text


def test_pdf_with_text_and_scanned_pages_reads_both_with_their_pages(tmp_path):
    text_pdf = tmp_path / "t.pdf"
    make_pdf(text_pdf, ["The first page has a text layer."])
    f = samples.write_scanned_pdf(tmp_path / "mixed.pdf", [["Plums ripen in late August."], None],
                                  text_pdf=text_pdf.read_bytes())
    doc = ingest.load(f)
    assert [s.location.page for s in doc.sections] == [1, 2]  # the blank scan yields nothing
    assert doc.sections[0].text.startswith("The first page") and "Plums ripen" in doc.sections[1].text
    assert doc.sections[1].headings == ("page 2",)


def test_ocr_threshold_switches_pdf_ocr_off(tmp_path, monkeypatch):
    f = samples.write_scanned_pdf(tmp_path / "scan.pdf", [["Plums ripen in late August."]])
    monkeypatch.setattr(pdf_reader, "OCR_BELOW_CHARS", 0)
    with pytest.raises(DocumentError, match="no text"):
        ingest.load(f)
    monkeypatch.setenv("RAG_OCR", "off")
    monkeypatch.setattr(pdf_reader, "OCR_BELOW_CHARS", 20)
    with pytest.raises(DocumentError, match="no text"):
        ingest.load(f)


def test_missing_engine_is_a_warning_for_pdfs_and_a_skip_line_for_images(tmp_path, monkeypatch, caplog):
    import pytesseract

    monkeypatch.setattr(pytesseract.pytesseract, "tesseract_cmd", str(tmp_path / "no-tesseract"))
    monkeypatch.setattr(ocr, "_warned", type(ocr._warned)())
    text_pdf = tmp_path / "t.pdf"
    make_pdf(text_pdf, ["The first page has a text layer."])
    f = samples.write_scanned_pdf(tmp_path / "mixed.pdf", [["Plums."]], text_pdf=text_pdf.read_bytes())
    with caplog.at_level(logging.WARNING):
        doc = ingest.load(f)
    assert [s.location.page for s in doc.sections] == [1]
    assert "tesseract is not installed" in caplog.text and "1 page(s) without a text layer" in caplog.text
    img = tmp_path / "a.png"
    samples.render_text(["Hello"], width=300).save(img)
    with pytest.raises(DocumentError, match="no OCR engine"):
        ingest.load(img)


# ---------------------------------------------------------------- bad input, one line each

def _encrypted(plain: Path, out: Path) -> Path:
    from msoffcrypto.format.ooxml import OOXMLFile

    with plain.open("rb") as src, out.open("wb") as dst:
        OOXMLFile(src).encrypt("secret", dst)
    return out


def _bad_files(folder: Path) -> dict[str, str]:
    """name -> the words its one-line reason must hold."""
    tmp = folder.parent / "plain"
    tmp.mkdir()
    _encrypted(samples.write_docx(tmp / "p.docx", [("H", ["secret text"])]), folder / "locked.docx")
    _encrypted(samples.write_xlsx(tmp / "p.xlsx", {"S": [["a"], [1]]}), folder / "locked.xlsx")
    with zipfile.ZipFile(folder / "renamed.docx", "w") as z:
        z.writestr("readme.txt", "just a zip")
    (folder / "cut.pptx").write_bytes(samples.write_pptx(tmp / "p.pptx", [("T", ["x"])]).read_bytes()[:3000])
    samples.write_xlsx(folder / "empty.xlsx", {"Sheet1": [], "Sheet2": []})
    from PIL import Image

    Image.new("1", (12000, 9000), 1).save(folder / "huge.png")  # 108 megapixels, a small file
    Image.new("L", (400, 300), 255).save(folder / "blank.jpg")
    (folder / "fake.epub").write_bytes(b"not a zip")
    return {"locked.docx": "password-protected Word document", "locked.xlsx": "password-protected Excel",
            "renamed.docx": "not a Word document", "cut.pptx": "broken PowerPoint",
            "empty.xlsx": "no text", "huge.png": "image too large", "blank.jpg": "no text found by OCR",
            "fake.epub": "broken EPUB"}


def test_bad_office_files_get_one_line_each_and_the_rest_is_indexed(tmp_path, fake_embedder):
    docs = tmp_path / "docs"
    docs.mkdir()
    expected = _bad_files(docs)
    samples.write_docx(docs / "good.docx", [("Owls", ["Owls hunt at night."])])
    samples.write_xlsx(docs / "big.xlsx", {"Rows": [["Id", "Value"]] + [[i, f"v{i}"] for i in range(5000)]})
    text_pdf = tmp_path / "t.pdf"
    make_pdf(text_pdf, ["The first page has a text layer."])
    samples.write_scanned_pdf(docs / "mixed.pdf", [["Plums ripen in late August."]], text_pdf=text_pdf.read_bytes())
    r = index.build([docs], index_dir=tmp_path / "idx", embedder=fake_embedder, chunk_size=100, chunk_overlap=20)
    assert r.added == ["big.xlsx", "good.docx", "mixed.pdf"]
    assert r.n_chunks > 50
    reasons = {Path(p).name: why for p, why in r.skipped}
    assert set(reasons) == set(expected)
    for name, words in expected.items():
        assert words in reasons[name], (name, reasons[name])
        assert "\n" not in reasons[name] and len(reasons[name]) < 200


# ---------------------------------------------------------------- locations travel to citations

def test_location_round_trips_through_chunks_and_milvus_rows():
    from rag.stores.milvus import _pack_headings, _unpack_headings

    loc = Location(sheet="Sales", rows=(2, 9))
    c = Chunk("a.xlsx#0", "a.xlsx", "a", ("Sales",), "| x |", loc)
    assert Chunk.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    assert Chunk.from_dict({"id": "x#0", "source": "x", "title": "x", "text": "t"}).location is None
    assert "location" not in Chunk("x#0", "x", "x", (), "t").to_dict()  # older indexes read the same
    assert _unpack_headings(_pack_headings(c)) == (("Sales",), loc)
    assert _unpack_headings('["A", "B"]') == (("A", "B"), None)


def test_citations_print_page_slide_or_sheet_once():
    pdf = Citation(1, "m.pdf", "m.pdf#0", 0.5, "s", heading="page 4", location=Location(page=4))
    slide = Citation(2, "d.pptx", "d.pptx#1", 0.5, "s", heading="Budget", location=Location(slide=2))
    sheet = Citation(3, "b.xlsx", "b.xlsx#7", 0.5, "s", heading="Sales", location=Location(sheet="Sales", rows=(2, 30)))
    assert [c.where for c in (pdf, slide, sheet)] == ["page 4", "Budget > slide 2", "Sales > sheet Sales, rows 2-30"]
    d = Answer("q", "a", citations=[slide, sheet]).to_dict()["citations"]
    assert d[0]["slide"] == 2 and d[0]["location"] == {"slide": 2, "label": "slide 2"}
    assert d[1]["sheet"] == "Sales" and d[1]["location"]["rows"] == [2, 30]
    json.dumps(d)


def test_the_chat_sources_panel_names_the_slide():
    from rag.transcript import answer_messages

    c = Citation(1, "d.pptx", "d.pptx#1", 0.5, "Marketing gets 40 percent", heading="Budget",
                 location=Location(slide=2))
    msgs = answer_messages(Answer("q", "Marketing gets 40 percent [1].", citations=[c]))
    assert any(m.get("metadata", {}).get("title", "").endswith(" d.pptx › slide 2 › Budget") for m in msgs), msgs


def test_pipeline_citations_carry_the_location(tmp_path):
    from rag import RAG
    from rag.testing import HashEmbedder, MemoryStore, ScriptedGenerator

    docs = tmp_path / "docs"
    docs.mkdir()
    samples.write_pptx(docs / "deck.pptx", [("Welcome", ["Agenda for today"]),
                                            ("Budget", ["The marketing budget is forty thousand euros"])])
    rag = RAG(embedder=HashEmbedder(dim=512), generator=ScriptedGenerator(
        ["The marketing budget is forty thousand euros [1]."]), store=MemoryStore(), corpus=str(docs),
        min_score=0.05, compress=False)
    rag.index()
    a = rag.ask("What is the marketing budget?")
    assert a.citations and a.citations[0].location == Location(slide=2)
    assert a.to_dict()["citations"][0]["slide"] == 2


def test_rag_serve_citations_carry_the_page():
    from rag.present import footer, numbered
    from rag.serve.app import extension

    c = Citation(1, "m.pdf", "m.pdf#3", 0.5, "s", heading="page 4", location=Location(page=4))
    answer = Answer("q", "a [1].", citations=[c])
    cited = extension(answer, numbered(answer))["citations"][0]
    assert cited["page"] == 4 and cited["location"]["label"] == "page 4" and cited["slide"] is None
    # the footer a plain-text client shows names the page once, not as a heading too
    assert footer(numbered(answer).citations) == "\n\nSources:\n[1] m.pdf, page 4"
