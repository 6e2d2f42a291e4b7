"""PDF files (`rag.readers.pdf`): one section per page; the images of scanned pages found
without decoding, checked against the pixel limit (declared and codestream sizes), decoded once
per document and charged to the `images` and `ocr_pages` budgets (issue 34, finding 3). Each
hostile file is built here, at a bounded size."""
import io
import logging
import zlib
from pathlib import Path

import pytest

from rag import ingest, samples
from rag.errors import DocumentError, OverBudget
from rag.readers import pdf as pdf_reader
from rag.readers.budget import Budget, ReadLimits

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
