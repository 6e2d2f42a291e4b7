"""Sample documents of every supported format, written by the libraries that read them.

For tests and benchmarks: each writer puts given facts where a reader must find them (a
heading, a slide, a sheet row, a scanned page) so retrieval and citations can be checked on
files made on the spot. Nothing here is used when indexing.
"""
from __future__ import annotations

import io
from pathlib import Path


def write_docx(path: Path, sections: list[tuple[str, list[str]]], *, table: list[list[str]] | None = None,
               title: str = "") -> Path:
    """A Word file: each (heading, paragraphs) under a Heading 1; `table` after the first section."""
    import docx

    d = docx.Document()
    if title:
        d.core_properties.title = title
    for i, (heading, paragraphs) in enumerate(sections):
        d.add_heading(heading, level=1)
        for p in paragraphs:
            d.add_paragraph(p)
        if i == 0 and table:
            t = d.add_table(rows=len(table), cols=len(table[0]))
            for r, row in enumerate(table):
                for c, value in enumerate(row):
                    t.cell(r, c).text = str(value)
    d.save(path)
    return path


def write_pptx(path: Path, slides: list[tuple[str, list[str]]]) -> Path:
    """A PowerPoint file: one title-and-content slide per (title, bullet lines)."""
    from pptx import Presentation

    deck = Presentation()
    layout = deck.slide_layouts[1]
    for title, lines in slides:
        slide = deck.slides.add_slide(layout)
        slide.shapes.title.text = title
        slide.placeholders[1].text_frame.text = "\n".join(lines)
    deck.save(path)
    return path


def write_xlsx(path: Path, sheets: dict[str, list[list]]) -> Path:
    """An Excel workbook with one sheet per name, rows as given (the first is the header)."""
    from openpyxl import Workbook

    book = Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    book.save(path)
    return path


def write_epub(path: Path, chapters: list[tuple[str, str]], *, title: str = "Sample book") -> Path:
    """An EPUB with one XHTML chapter per (heading, HTML body)."""
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("rag-sample")
    book.set_title(title)
    book.set_language("en")
    items = []
    for i, (heading, body) in enumerate(chapters, 1):
        ch = epub.EpubHtml(title=heading, file_name=f"ch{i}.xhtml", lang="en")
        ch.content = f"<html><body><h1>{heading}</h1>{body}</body></html>"
        book.add_item(ch)
        items.append(ch)
    book.toc = items
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", *items]
    epub.write_epub(str(path), book)
    return path


def render_text(lines: list[str], *, width: int = 1240, size: int = 30, margin: int = 60):
    """A grey-scale PIL image of `lines` in black on white, like a page scanned at about 150 dpi."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=size)
    step = int(size * 1.7)
    image = Image.new("L", (width, margin * 2 + step * max(1, len(lines))), 255)
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((margin, margin + i * step), line, fill=0, font=font)
    return image


def write_text_pdf(path: Path, lines: list[str], *, title: str = "") -> Path:
    """A minimal one-page PDF with real text objects, written by hand."""
    text_ops = "BT /F1 12 Tf 72 720 Td 14 TL " + " ".join(
        "(" + line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ") '" for line in lines) + " ET"
    objs = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        "/Resources << /Font << /F1 5 0 R >> >> >>",
        f"<< /Length {len(text_ops)} >>\nstream\n{text_ops}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    if title:
        objs.append(f"<< /Title ({title}) >>")
    out = b"%PDF-1.4\n"
    offsets = []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode()
    info = f" /Info {len(objs)} 0 R" if title else ""
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R{info} >>\nstartxref\n{xref}\n%%EOF\n".encode()
    path.write_bytes(out)
    return path


def write_layout_pdf(path: Path, pages: list[list[tuple]]) -> Path:
    """A PDF of Letter pages drawn by hand, each from a list of ("text", x, y, string) in
    Helvetica 10 pt and ("rule", x0, y0, x1, y1), a stroked line (points from the bottom left),
    in that order in the page's content stream: layouts (a ruled table, two columns whose lines
    are drawn in turn, a running head) whose stream order the test chooses."""
    def escaped(text: str) -> str:
        return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    def draw(item: tuple) -> str:
        if item[0] == "text":
            _, x, y, text = item
            return f"BT /F1 10 Tf {x} {y} Td ({escaped(text)}) Tj ET"
        _, x0, y0, x1, y1 = item
        return f"0.5 w {x0} {y0} m {x1} {y1} l S"

    n = len(pages)
    objs = ["<< /Type /Catalog /Pages 2 0 R >>",
            f"<< /Type /Pages /Kids [{' '.join(f'{4 + 2 * k} 0 R' for k in range(n))}] /Count {n} >>",
            "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"]
    for k, items in enumerate(pages):
        ops = "\n".join(draw(item) for item in items)
        objs.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {5 + 2 * k} 0 R "
                    "/Resources << /Font << /F1 3 0 R >> >> >>")
        objs.append(f"<< /Length {len(ops.encode('latin-1'))} >>\nstream\n{ops}\nendstream")
    out = b"%PDF-1.4\n"
    offsets = []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode()
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    path.write_bytes(out)
    return path


def write_scanned_pdf(path: Path, pages: list[list[str] | None], *, text_pdf: bytes | None = None) -> Path:
    """A PDF of image-only pages (each a rendered list of lines); with `text_pdf`, the pages of
    that PDF first, so one file mixes a text layer and scans. A None page is a blank scan."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    if text_pdf is not None:
        for page in PdfReader(io.BytesIO(text_pdf)).pages:
            writer.add_page(page)
    for lines in pages:
        image = render_text(lines or [""]).convert("RGB")
        buf = io.BytesIO()
        image.save(buf, format="PDF", resolution=150)
        writer.add_page(PdfReader(buf).pages[0])
    with open(path, "wb") as fh:
        writer.write(fh)
    return path
