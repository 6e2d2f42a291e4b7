"""PDF files (`rag.readers.pdf`): one section per page; the images of scanned pages found
without decoding, checked against the pixel limit (declared and codestream sizes), decoded once
per document and charged to the `images` and `ocr_pages` budgets (issue 34, finding 3). Each
hostile file is built here, at a bounded size. Then the layout (`rag.readers.pdf_layout`): ruled
tables as tables, columns in reading order, running heads and feet once, on pages drawn here
with made-up facts, and the pages pdfplumber is not given (too large, looping, failing)."""
import io
import logging
import zlib
from pathlib import Path

import pytest

from rag import ingest, samples
from rag.chunk import Chunker
from rag.errors import DocumentError, OverBudget
from rag.readers import ocr
from rag.readers import pdf as pdf_reader
from rag.readers import pdf_layout
from rag.readers.budget import Budget, ReadLimits
from rag.testing import WordTokenizer

from rag.samples import write_text_pdf as make_pdf


def test_pdf_pages(tmp_path):
    f = tmp_path / "manual.pdf"
    make_pdf(f, ["The pump needs 4 bar.", "Grease the chain monthly."], title="Bike manual")
    doc = ingest.load(f)
    assert doc.title == "Bike manual"
    assert doc.sections[0].headings == ("page 1",)
    assert "Grease the chain" in doc.sections[0].text


def image_pdf(path: Path, *, width: int, height: int, data: bytes, pages: int = 1, names: int = 1,
              filter: str = "/FlateDecode", colorspace: str = "/DeviceGray") -> Path:
    """A PDF whose `pages` pages each draw one image XObject (`data`, already encoded with
    `filter`) listed under `names` names in their resources, written by hand."""
    objs: dict[int, bytes] = {}
    page_ids = [4 + 2 * k for k in range(pages)]
    objs[1] = b"<< /Type /Catalog /Pages 2 0 R >>"
    objs[2] = f"<< /Type /Pages /Kids [{' '.join(f'{p} 0 R' for p in page_ids)}] /Count {pages} >>".encode()
    objs[3] = (f"<< /Type /XObject /Subtype /Image /Width {width} /Height {height} /ColorSpace {colorspace} "
               f"/BitsPerComponent 8 /Filter {filter} /Length {len(data)} >>\nstream\n").encode() + data + \
        b"\nendstream"
    xobjects = " ".join(f"/Im{k} 3 0 R" for k in range(names))
    ops = "".join(f"q {width} 0 0 {height} 0 0 cm /Im{k} Do Q\n" for k in range(names)).encode()
    for p in page_ids:
        objs[p] = (f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {width} {height}] /Contents {p + 1} 0 R "
                   f"/Resources << /XObject << {xobjects} >> >> >>").encode()
        objs[p + 1] = f"<< /Length {len(ops)} >>\nstream\n".encode() + ops + b"\nendstream"
    out = b"%PDF-1.4\n"
    offsets = {}
    for i in sorted(objs):
        offsets[i] = len(out)
        out += f"{i} 0 obj\n".encode() + objs[i] + b"\nendobj\n"
    xref = len(out)
    size = max(objs) + 1
    out += f"xref\n0 {size}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offsets[i]:010d} 00000 n \n".encode() for i in range(1, size))
    out += f"trailer\n<< /Size {size} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    path.write_bytes(out)
    return path


def text_scan(path: Path, lines: list[str], **kw) -> Path:
    image = samples.render_text(lines, width=700)
    return image_pdf(path, width=image.width, height=image.height, data=zlib.compress(image.tobytes()), **kw)


def test_one_image_under_forty_names_is_decoded_and_read_once(tmp_path):
    f = text_scan(tmp_path / "names.pdf", ["The gate code is 4417."], names=40)
    budget = Budget(f)
    title, sections = pdf_reader.read(f, f.read_bytes(), budget=budget)
    assert budget.spent["images"] == 1 and budget.spent["ocr_pages"] == 1
    assert "gate code is 4417" in sections[0].text
    assert sections[0].text.count("4417") == 1
    # the same through load: an image budget of one is enough
    assert "4417" in ingest.load(f, limits=ReadLimits(images=1)).sections[0].text


def test_pages_sharing_one_image_decode_it_once_and_stop_at_the_ocr_page_budget(tmp_path):
    f = text_scan(tmp_path / "shared.pdf", ["Shared stamp 88."], pages=3)
    budget = Budget(f)
    _, sections = pdf_reader.read(f, f.read_bytes(), budget=budget)
    assert [s.location.page for s in sections] == [1, 2, 3] and all("88" in s.text for s in sections)
    assert budget.spent["images"] == 1 and budget.spent["ocr_pages"] == 3

    many = text_scan(tmp_path / "many.pdf", ["Shared stamp 88."], pages=40)
    budget = Budget(many, ReadLimits(ocr_pages=5))
    with pytest.raises(OverBudget, match="over 5 pages or images to OCR; raise read_ocr_pages") as e:
        pdf_reader.read(many, many.read_bytes(), budget=budget)
    assert e.value.resource == "ocr_pages" and budget.spent["ocr_pages"] == 6 and budget.spent["images"] == 1


def test_an_image_declared_over_the_pixel_limit_is_not_decoded(tmp_path, caplog):
    # 100,000 x 100,000 declared (10 gigapixels) in a few bytes: never inflated or allocated
    f = image_pdf(tmp_path / "huge.pdf", width=100_000, height=100_000, data=zlib.compress(b"\xff" * 1000))
    budget = Budget(f)
    with caplog.at_level(logging.WARNING, logger="rag.readers.pdf"), pytest.raises(DocumentError, match="no text"):
        ingest.load(f)
    assert "image not read: 10,000,000,000 pixels, over the limit of 64,000,000" in caplog.text
    assert pdf_reader.read(f, f.read_bytes(), budget=budget)[1] == ()
    assert "images" not in budget.spent

    # a real, decodable image is passed over the same way when its size is over the limit
    g = text_scan(tmp_path / "scan.pdf", ["Plums ripen in late August."])
    small = Budget(g, ReadLimits(pixels=10_000))
    assert pdf_reader.read(g, g.read_bytes(), budget=small)[1] == ()
    assert "images" not in small.spent


def test_a_jpeg_larger_than_its_declared_size_is_not_decoded(tmp_path):
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (2000, 2000), 255).save(buf, format="JPEG")
    # the dictionary says 10 x 10, the JPEG header 2000 x 2000: the header is what Pillow decodes
    f = image_pdf(tmp_path / "liar.pdf", width=10, height=10, data=buf.getvalue(), filter="/DCTDecode")
    budget = Budget(f, ReadLimits(pixels=1_000_000))
    assert pdf_reader.read(f, f.read_bytes(), budget=budget)[1] == ()
    assert "images" not in budget.spent
    budget = Budget(f)  # under the default limit it is decoded
    pdf_reader.read(f, f.read_bytes(), budget=budget)
    assert budget.spent["images"] == 1


def inline_image_pdf(path: Path, lines: list[str]) -> Path:
    """A one-page PDF that draws `lines` as an inline image (BI ... ID ... EI, hex-encoded)."""
    image = samples.render_text(lines, width=600)
    w, h = image.size
    ops = (f"q {w} 0 0 {h} 0 0 cm BI /W {w} /H {h} /CS /G /BPC 8 /F /AHx ID ".encode()
           + image.tobytes().hex().encode() + b"> EI Q\n")
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {w} {h}] /Contents 4 0 R >>".encode(),
            f"<< /Length {len(ops)} >>\nstream\n".encode() + ops + b"\nendstream"]
    out, offsets = b"%PDF-1.4\n", []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 5\n0000000000 65535 f \n" + b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size 5 /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    path.write_bytes(out)
    return path


def test_inline_images_are_read_within_the_pixel_limit_and_charged(tmp_path):
    f = inline_image_pdf(tmp_path / "inline.pdf", ["Inline code 5521."])
    budget = Budget(f)
    assert "Inline code 5521" in pdf_reader.read(f, f.read_bytes(), budget=budget)[1][0].text
    assert budget.spent == {"ocr_pages": 1, "images": 1}
    budget = Budget(f, ReadLimits(pixels=10_000))  # over it: not decoded
    assert pdf_reader.read(f, f.read_bytes(), budget=budget)[1] == ()
    assert "images" not in budget.spent


# ---------------------------------------------------------------- layout: tables, columns, running lines

SURVEY = [["Reservoir", "Capacity (ML)", "Inspector"], ["Lake Orvane", "8,412", "Tamsin Quell"],
          ["Brackwater Basin", "1,907", "Odo Ferrant"]]


def ruled_table(rows: list[list[str]], *, top: float = 700, columns=(72, 222, 352, 500), height: float = 20) -> list:
    """Drawing items of a table ruled on every side of every cell, its first row at `top`."""
    items = [("rule", columns[0], top - r * height, columns[-1], top - r * height) for r in range(len(rows) + 1)]
    items += [("rule", x, top, x, top - len(rows) * height) for x in columns]
    items += [("text", columns[c] + 4, top - r * height - 14, value)
              for r, row in enumerate(rows) for c, value in enumerate(row)]
    return items


def survey_pdf(path: Path, rows: list[list[str]] = SURVEY) -> Path:
    table_top = 700
    return samples.write_layout_pdf(path, [
        [("text", 72, 720, "Cover page of the Vellmar survey.")],
        [("text", 72, 720, "Quarterly reservoir survey of the Vellmar district."),
         *ruled_table(rows, top=table_top),
         ("text", 72, table_top - 20 * len(rows) - 30, "Figures were checked by the district office.")]])


def test_a_ruled_table_becomes_a_table_on_its_page_with_the_text_around_it(tmp_path):
    f = survey_pdf(tmp_path / "survey.pdf")
    doc = ingest.load(f)
    tables = [s for s in doc.sections if s.table is not None]
    assert len(tables) == 1 and tables[0].location.page == 2 and tables[0].headings == ("page 2",)
    assert tables[0].table.header == ("Reservoir", "Capacity (ML)", "Inspector")
    assert ("Brackwater Basin", "1,907", "Odo Ferrant") in tables[0].table.rows
    texts = [(s.location.page, s.text) for s in doc.sections if s.table is None]
    # the text above and below the table in reading order, and no cell read again as loose words
    assert texts == [(1, "Cover page of the Vellmar survey."),
                     (2, "Quarterly reservoir survey of the Vellmar district."),
                     (2, "Figures were checked by the district office.")]
    chunks = Chunker(WordTokenizer(), max_tokens=256, chunk_size=60, chunk_overlap=10).split(doc)
    hit = next(c for c in chunks if "1,907" in c.text)
    assert hit.location.page == 2
    assert hit.text.startswith("| Reservoir | Capacity (ML) | Inspector |\n| --- | --- | --- |\n")
    assert "| Brackwater Basin | 1,907 | Odo Ferrant |" in hit.text


def test_every_chunk_of_a_long_pdf_table_starts_with_its_header(tmp_path):
    rows = [["Gauge", "Depth (m)"]] + [[f"gauge G{i:02}", f"{i * 7}.5"] for i in range(1, 31)]
    f = survey_pdf(tmp_path / "gauges.pdf", rows)
    chunks = Chunker(WordTokenizer(), max_tokens=256, chunk_size=40, chunk_overlap=5).split(ingest.load(f))
    table_chunks = [c for c in chunks if c.text.startswith("| Gauge | Depth (m) |\n| --- | --- |\n")]
    assert len(table_chunks) > 3 and all(c.location.page == 2 for c in table_chunks)
    body = "\n".join(c.text for c in table_chunks)
    assert all(body.count(f"| gauge G{i:02} | {i * 7}.5 |") == 1 for i in range(1, 31))  # cut between rows


def test_a_table_page_pdfplumber_fails_on_keeps_pypdfs_text(tmp_path, monkeypatch):
    f = survey_pdf(tmp_path / "survey.pdf")

    def broken(self, idnum, number):
        raise ValueError("damaged page")

    monkeypatch.setattr(pdf_reader._PlumbedPages, "_page", broken)
    sections = pdf_reader.read(f, f.read_bytes())[1]
    assert all(s.table is None for s in sections)
    assert "Odo Ferrant" in sections[1].text and sections[1].location.page == 2


def test_a_page_over_what_pdfplumber_may_cost_keeps_pypdfs_text(tmp_path, monkeypatch):
    f = survey_pdf(tmp_path / "survey.pdf")
    monkeypatch.setattr(pdf_reader, "PLUMBER_MAX_OPERATORS", 20)
    sections = pdf_reader.read(f, f.read_bytes())[1]
    assert all(s.table is None for s in sections) and "Odo Ferrant" in sections[1].text


def with_font_program(path: Path, program: bytes) -> Path:
    """The PDF at `path` with a (flate-compressed) font program added to its font."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter(clone_from=path)
    stream = DecodedStreamObject()
    stream.set_data(program)
    descriptor = DictionaryObject({NameObject("/Type"): NameObject("/FontDescriptor"),
                                   NameObject("/FontFile2"): writer._add_object(stream.flate_encode())})
    font = writer.pages[1]["/Resources"]["/Font"]["/F1"].get_object()
    font[NameObject("/FontDescriptor")] = writer._add_object(descriptor)
    writer.write(path)
    return path


def test_a_page_whose_font_inflates_past_the_limit_is_not_given_to_pdfplumber(tmp_path, monkeypatch):
    """pdfminer inflates a font program without a limit: pypdf measures it first, within its own."""
    f = with_font_program(survey_pdf(tmp_path / "survey.pdf"), b"\0" * 200_000)
    assert any(s.table is not None for s in pdf_reader.read(f, f.read_bytes())[1])
    monkeypatch.setattr(pdf_reader, "PLUMBER_MAX_STREAM_BYTES", 100_000)
    sections = pdf_reader.read(f, f.read_bytes())[1]
    assert all(s.table is None for s in sections) and "Odo Ferrant" in sections[1].text


FERRY = ["The Marrowby ferry leaves", "the north quay at 06:40", "on weekdays and at 08:15", "on Sundays, weather",
         "permitting, and its", "return crossing takes", "forty minutes in all", "seasons of the year."]
BRIDGE = ["The Ostrel bridge closes", "for repairs in May, so", "carts must use the", "upper ford by the mill",
          "until the new deck is", "laid and inspected by", "the county surveyor", "before the summer fair."]


def two_columns(path: Path, *, interleaved: bool) -> Path:
    """One page of two columns, the stream drawing them line by line across the page
    (`interleaved`) or the left column first."""
    left = [("text", 72, 700 - 14 * k, line) for k, line in enumerate(FERRY)]
    right = [("text", 320, 700 - 14 * k, line) for k, line in enumerate(BRIDGE)]
    items = [x for pair in zip(left, right) for x in pair] if interleaved else left + right
    return samples.write_layout_pdf(path, [[("text", 72, 740, "Notices of the Marrowby parish"), *items]])


@pytest.mark.parametrize("interleaved", [True, False])
def test_two_columns_are_read_left_column_first(tmp_path, interleaved):
    f = two_columns(tmp_path / "notices.pdf", interleaved=interleaved)
    (section,) = pdf_reader.read(f, f.read_bytes())[1]
    assert section.location.page == 1
    assert section.text.index("seasons of the year.") < section.text.index("The Ostrel bridge closes")
    assert "\n".join(FERRY) in section.text and "\n".join(BRIDGE) in section.text


def test_the_column_switch_off_reads_the_rows_across(tmp_path, monkeypatch):
    monkeypatch.setattr(pdf_layout, "COLUMNS", False)
    f = two_columns(tmp_path / "notices.pdf", interleaved=True)
    (section,) = pdf_reader.read(f, f.read_bytes())[1]
    assert section.text.index("The Ostrel bridge closes") < section.text.index("seasons of the year.")


def boxes(lines: list[tuple[float, str]], *, top: float = 100, glyph: float = 5) -> list:
    """Word boxes of lines given as (x of the first word, text), one line every 14 points."""
    out = []
    for k, (x, text) in enumerate(lines):
        for word in text.split():
            out.append(pdf_layout.Box(x, top + 14 * k, x + glyph * len(word), top + 14 * k + 10, word))
            x += glyph * (len(word) + 1)
    return out


def test_a_gutter_is_found_between_prose_columns_not_beside_a_list_of_short_terms():
    prose = [(72, "the quick brown fox jumps over the lazy dog")] * 6
    right = [(320, "a slow grey cat sleeps under the warm stove")] * 6
    gutter = pdf_layout.find_gutter(boxes([*prose, *right]))
    assert gutter is not None and 72 + 5 * 43 <= gutter[0] < gutter[1] <= 320
    # a term and its value far apart (a list, an unruled table's columns): rows, not columns
    terms = [(72, "ash"), (72, "birch tree"), (72, "oak"), (72, "rowan"), (72, "yew"), (72, "elm")]
    values = [(320, "grows on chalk and clay soils in the north")] * 6
    listing = boxes(terms) + boxes(values)
    assert pdf_layout.find_gutter(listing) is None
    assert pdf_layout.reading_lines(listing)[1] == "birch tree grows on chalk and clay soils in the north"
    # one column of prose has no gutter
    assert pdf_layout.find_gutter(boxes([(72, "the quick brown fox jumps over the lazy dog " * 2)] * 12)) is None
    # a page that sets its text billions of points wide costs what any page does (bins capped)
    far = boxes([(72, "the quick brown fox jumps over the lazy dog")] * 6
                + [(5e10, "a slow grey cat sleeps under the warm stove")] * 6, glyph=1e9)
    gutter = pdf_layout.find_gutter(far)
    assert gutter is not None and 4.3e10 <= gutter[0] < gutter[1] <= 5e10


def running_report(path: Path, pages: int = 5) -> Path:
    """Pages with a running head (its page number changing) and a running foot over their body."""
    return samples.write_layout_pdf(path, [
        [("text", 72, 760, f"Vellmar Waterworks Annual Report - {n}"),
         ("text", 72, 700, f"Pump station {n} lifted {n * 111} megalitres in spring."),
         ("text", 72, 686, "Its filters were cleaned twice."),
         ("text", 72, 40, "Internal draft, not for circulation")] for n in range(1, pages + 1)])


def test_a_running_head_and_foot_are_read_once_and_the_body_on_every_page(tmp_path):
    f = running_report(tmp_path / "report.pdf")
    sections = pdf_reader.read(f, f.read_bytes())[1]
    assert [s.location.page for s in sections] == [1, 2, 3, 4, 5]
    text = "\n".join(s.text for s in sections)
    assert text.count("Vellmar Waterworks Annual Report") == 1 and "Annual Report - 1" in sections[0].text
    assert text.count("Internal draft, not for circulation") == 1
    for n, s in enumerate(sections, 1):
        assert f"Pump station {n} lifted {n * 111} megalitres in spring." in s.text
        assert "Its filters were cleaned twice." in s.text  # repeated body lines are not edges


def test_running_lines_switched_off_are_kept_on_every_page(tmp_path, monkeypatch):
    monkeypatch.setattr(pdf_layout, "RUNNING_LINES", False)
    f = running_report(tmp_path / "report.pdf")
    assert all("Internal draft" in s.text for s in pdf_reader.read(f, f.read_bytes())[1])


def test_running_lines_count_within_their_stretch_and_need_a_few_pages():
    def page(n: int, head: str) -> tuple[int, list[str]]:
        return n, [f"{head} {n}\nWater {n * 3} flowed\nthrough {n * 5} mains\nlast words {n}", f"Valve {n}"]

    kept = pdf_layout.drop_running_lines([page(n, "Chapter 2: Pumps") for n in range(1, 9)]
                                         + [page(n, "Chapter 3: Filters") for n in range(9, 40)])
    assert kept[0][0].startswith("Chapter 2: Pumps 1\n") and kept[1][0].startswith("Water 6 flowed")
    assert kept[8][0].startswith("Chapter 3: Filters 9\n") and kept[9][0].startswith("Water 30 flowed")
    assert kept[0][1] == "Valve 1" and kept[9][1] == ""  # the foot: the last line of the last block
    # a line under the head whose numbers are not page numbers stays on every page
    assert all(f"Water {n * 3} flowed\nthrough {n * 5} mains" in blocks[0] for n, blocks in enumerate(kept, 1))
    # two pages are not enough to call a line a running head
    two = [(n, [f"Minutes of the board\nitem {n}\nitem {n}b\nclosed"]) for n in (1, 2)]
    assert pdf_layout.drop_running_lines(two) == [blocks for _, blocks in two]
    # nor is a row of figures at the top of each page of a long table
    figures = [(n, [f"{n} {n * 7} {n * 9}\nrow {n}\nrow {n}b\nrow {n}c\nend {n}"]) for n in range(1, 9)]
    assert all(blocks[0].startswith(f"{n} ") for (n, _), blocks in zip(figures, pdf_layout.drop_running_lines(figures)))


def test_a_page_whose_forms_draw_each_other_is_not_given_to_pdfplumber(tmp_path):
    from pypdf import PdfWriter
    from pypdf.generic import ArrayObject, DecodedStreamObject, DictionaryObject, NameObject, NumberObject

    writer = PdfWriter(clone_from=survey_pdf(tmp_path / "survey.pdf"))
    form = DecodedStreamObject()
    form.set_data(b"/Fm0 Do")
    ref = writer._add_object(form)
    form.update({NameObject("/Type"): NameObject("/XObject"), NameObject("/Subtype"): NameObject("/Form"),
                 NameObject("/BBox"): ArrayObject([NumberObject(0)] * 2 + [NumberObject(10)] * 2),
                 NameObject("/Resources"): DictionaryObject({NameObject("/XObject"): DictionaryObject(
                     {NameObject("/Fm0"): ref})})})
    page = writer.pages[1]
    page["/Resources"][NameObject("/XObject")] = DictionaryObject({NameObject("/Fm0"): ref})
    content = page.get_contents()
    content.set_data(content.get_data() + b"\n/Fm0 Do")
    page.replace_contents(content)
    f = tmp_path / "loop.pdf"
    writer.write(f)
    sections = pdf_reader.read(f, f.read_bytes())[1]
    assert all(s.table is None for s in sections) and "Odo Ferrant" in sections[1].text


@pytest.mark.e2e
def test_rag_ask_finds_a_pdf_table_cell_with_its_column_header(tmp_path, real_rag):
    """The whole path: a made-up cell of a ruled PDF table, asked by its row and column, comes
    back in a passage that names the column, cited on the table's page."""
    from rag import RAG

    docs = tmp_path / "docs"
    docs.mkdir()
    survey_pdf(docs / "survey.pdf")
    rag = RAG(index=str(tmp_path / "idx"), corpus=str(docs), embedder=real_rag.embedder,
              generator=real_rag.generator, n_ctx=2048)
    rag.index()
    answer = rag.ask("What is the capacity of Brackwater Basin?")
    top = answer.hits[0].chunk
    assert top.page == 2 and "| Reservoir | Capacity (ML) | Inspector |" in top.text
    assert "| Brackwater Basin | 1,907 | Odo Ferrant |" in top.text
    assert not answer.abstained and "1,907" in answer.text
    assert [c.location.page for c in answer.citations] == [2]


def _page_with_a_figure(folder: Path, figure_lines: list[str]) -> Path:
    """A page with a text layer and, drawn over it, a scanned figure holding `figure_lines`."""
    from pypdf import PdfReader, PdfWriter

    folder.mkdir(parents=True, exist_ok=True)
    text = make_pdf(folder / "text.pdf", ["The pump diagram below shows the cooling loop of the Varnholt rig."])
    scan = samples.write_scanned_pdf(folder / "scan.pdf", [figure_lines])
    writer = PdfWriter(clone_from=str(text))
    writer.pages[0].merge_page(PdfReader(str(scan)).pages[0])
    out = folder / "figure.pdf"
    with out.open("wb") as fh:
        writer.write(fh)
    return out


def _figure_sections(path: Path) -> list:
    return [s for s in ingest.load(path).sections if s.text.startswith(pdf_reader.FIGURE_LABEL)]


@pytest.mark.skipif(not ocr.available(), reason="tesseract is not installed")
def test_the_words_of_a_figure_on_a_text_page_are_read_on_its_page(tmp_path):
    f = _page_with_a_figure(tmp_path, ["COOLANT PUMP QX-7", "FLOW 42 LITRES PER MINUTE"])
    figure = _figure_sections(f)
    assert len(figure) == 1 and figure[0].location.page == 1
    assert "COOLANT PUMP" in figure[0].text and "LITRES" in figure[0].text
    assert any("Varnholt rig" in s.text for s in ingest.load(f).sections)  # the text layer as before


@pytest.mark.skipif(not ocr.available(), reason="tesseract is not installed")
def test_figures_switched_off_or_wordless_add_nothing(tmp_path, monkeypatch):
    assert _figure_sections(_page_with_a_figure(tmp_path / "marks", ["42 17", "-- 9 --"])) == []
    words = _page_with_a_figure(tmp_path / "words", ["COOLANT PUMP QX-7", "FLOW 42 LITRES PER MINUTE"])
    monkeypatch.setattr(pdf_reader, "OCR_FIGURES", False)
    assert _figure_sections(words) == []


def test_a_read_killed_on_a_page_goes_on_from_there_with_the_same_sections(tmp_path, monkeypatch):
    # pages kept as they are read (rag.resume.PageLog): the next read takes them up without
    # reading them, and what comes out is what one uninterrupted read gives, running lines and
    # the ruled table on the last pages included (both are found once every page is there)
    from pypdf import PageObject

    from rag.resume import PageLog

    pages = [[("text", 72, 760, f"Vellmar Waterworks Annual Report - {n}"),
              ("text", 72, 700, f"Pump station {n} lifted {n * 111} megalitres in spring."),
              ("text", 72, 40, "Internal draft, not for circulation")] for n in range(1, 7)]
    pages[5] += ruled_table(SURVEY, top=600)
    f = samples.write_layout_pdf(tmp_path / "report.pdf", pages)
    whole = pdf_reader.read(f, f.read_bytes())

    class Killed(Exception):
        pass

    def killed_after_page_4(self, number, blocks):
        real_add(self, number, blocks)
        if number == 4:
            raise Killed

    real_add = PageLog.add
    monkeypatch.setattr(PageLog, "add", killed_after_page_4)
    with pytest.raises(DocumentError):  # (the reader's own failure, as any exception while reading)
        pdf_reader.read(f, f.read_bytes(), page_log=PageLog(tmp_path / "report.jsonl"))
    monkeypatch.setattr(PageLog, "add", real_add)

    read = []
    real_extract = PageObject.extract_text
    monkeypatch.setattr(PageObject, "extract_text", lambda self, *a, **k: read.append(1) or real_extract(self, *a, **k))
    resumed = pdf_reader.read(f, f.read_bytes(), page_log=PageLog(tmp_path / "report.jsonl"))
    assert len(read) == 2  # pages 5 and 6 alone
    assert resumed == whole
    assert sum(s.table is not None for s in resumed[1]) == 1
    assert "\n".join(s.text for s in resumed[1]).count("Internal draft") == 1


def test_pages_are_kept_only_until_ocr_has_run(tmp_path):
    # OCR carries state from page to page (an image read once for every page that shows it),
    # which the pages' text alone would not bring back: from there on, pages are read again
    from rag.resume import PageLog

    f = text_scan(tmp_path / "shared.pdf", ["Shared stamp 88."], pages=3)
    log = PageLog(tmp_path / "shared.jsonl")
    sections = pdf_reader.read(f, f.read_bytes(), page_log=log)[1]
    assert all("88" in s.text for s in sections)
    assert PageLog(tmp_path / "shared.jsonl").pages() == []
