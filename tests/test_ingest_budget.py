"""Hostile files for `rag.ingest` and the index build (issue 34, findings 3, 4, 5 and 15): every
document is read within its budget, one bad file never stops a build, and links do not lead out
of a corpus folder. Each hostile file is built here, at a bounded size; budgets are made small
so that the test shows the reader stopping rather than running out of memory or time."""
import io
import logging
import os
import time
import zipfile
import zlib
from pathlib import Path

import pytest

from rag import index, ingest, samples
from rag.errors import DocumentError, OverBudget
from rag.readers import READERS, ocr
from rag.readers import pdf as pdf_reader
from rag.readers.budget import Budget, ReadLimits

from test_ingest import make_pdf

GOOD = "owls.md"


def build(paths, idx, emb, **kw):
    return index.build(paths, index_dir=idx, embedder=emb, chunk_size=100, chunk_overlap=20, **kw)


def reasons(report) -> dict[str, str]:
    out = {os.path.basename(p): r for p, r in report.skipped}
    assert all("\n" not in r for r in out.values())
    return out


@pytest.fixture
def docs(tmp_path):
    d = tmp_path / "docs"
    d.mkdir()
    (d / GOOD).write_text("# Owls\nOwls hunt at night and sleep by day.")
    return d


def best_of(n, fn) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


# ---------------------------------------------------------------- HTML (finding 4)

def test_deep_nesting_stops_at_the_depth_cap_or_reads_in_linear_time(tmp_path):
    n = 10_000
    deep = "<div>" * n + "<p>bottom</p>" + "</div>" * n
    flat = "<div></div>" * n + "<p>bottom</p>"
    (tmp_path / "deep.html").write_text(deep)
    (tmp_path / "flat.html").write_text(flat)
    with pytest.raises(OverBudget, match="nests markup over 512 levels deep") as e:
        ingest.load(tmp_path / "deep.html")
    assert e.value.resource == "depth"

    # with the cap lifted the parse is linear: a stack of 10,000 costs about what 10,000 siblings
    # do (the old scan of the whole stack per tag made it about 9 times slower at this size, and
    # 100 times that at 200,000 deep)
    deep_limits = ReadLimits(depth=10 * n)
    doc = ingest.load(tmp_path / "deep.html", limits=deep_limits)
    assert [s.text for s in doc.sections] == ["bottom"]
    t_flat = best_of(2, lambda: ingest.load(tmp_path / "flat.html", limits=deep_limits))
    t_deep = best_of(2, lambda: ingest.load(tmp_path / "deep.html", limits=deep_limits))
    assert t_deep < 5 * t_flat, (t_deep, t_flat)


def test_unmatched_end_tags_do_not_scan_the_stack(tmp_path):
    # 10,000 end tags that match nothing under 5,000 open elements: each used to scan the stack
    stray = "<div>" * 5_000 + "</span>" * 10_000 + "<p>kept</p>" + "</div>" * 5_000
    flat = "<div></div>" * 5_000 + "<i></i>" * 10_000 + "<p>kept</p>"
    (tmp_path / "stray.html").write_text(stray)
    (tmp_path / "flat.html").write_text(flat)
    with pytest.raises(OverBudget):  # 5,000 deep is over the default cap
        ingest.load(tmp_path / "stray.html")
    deep_limits = ReadLimits(depth=10_000)
    assert [s.text for s in ingest.load(tmp_path / "stray.html", limits=deep_limits).sections] == ["kept"]
    t_flat = best_of(2, lambda: ingest.load(tmp_path / "flat.html", limits=deep_limits))
    t_stray = best_of(2, lambda: ingest.load(tmp_path / "stray.html", limits=deep_limits))
    assert t_stray < 5 * t_flat, (t_stray, t_flat)


def test_end_tags_still_close_what_they_match_and_hidden_is_inherited(tmp_path):
    f = tmp_path / "mix.html"
    f.write_text("<h1>Top</h1><div hidden><b>inner <span>deep</i> still hidden</b></div>shown "
                 "<section style='display:none'><div><p>nope</div></section><p>after</p>")
    doc = ingest.load(f)
    text = " ".join(s.text for s in doc.sections)
    assert "shown" in text and "after" in text
    assert not any(w in text for w in ("inner", "deep", "still hidden", "nope"))


def test_valid_pages_that_leave_out_end_tags_stay_under_the_depth_cap(tmp_path):
    # <p>, <li>, <tr> and <td> may go unclosed in valid HTML; 2,000 of each must not read as
    # nesting 2,000 deep
    rows = "".join(f"<tr><td>r{i}<td>{i}" for i in range(2_000))
    items = "".join(f"<li>item {i}" for i in range(2_000))
    paras = "".join(f"<p>para {i}" for i in range(2_000))
    f = tmp_path / "loose.html"
    f.write_text(f"<h1>Loose</h1>{paras}<ul>{items}</ul><table><tr><th>k<th>v{rows}</table><p>end")
    doc = ingest.load(f)
    text = "\n".join(s.text for s in doc.sections)
    assert "para 1999" in text and "item 1999" in text and "| r1999 | 1999 |" in text and "end" in text


def test_html_over_the_size_or_time_budget_is_refused(tmp_path):
    # HTML is parsed as a stream, so its size counts against unpacked_bytes, not the lower cap
    # on markup that tree parsers hold
    f = tmp_path / "big.html"
    f.write_text("<p>" + "word " * 2_000 + "</p>")
    assert ingest.load(f, limits=ReadLimits(markup_bytes=1_000)).sections
    with pytest.raises(OverBudget) as e:
        ingest.load(f, limits=ReadLimits(unpacked_bytes=1_000))
    assert e.value.resource == "unpacked_bytes"
    with pytest.raises(OverBudget) as e:
        ingest.load(f, limits=ReadLimits(seconds=1e-9))
    assert e.value.resource == "seconds"


def test_html_table_cells_are_charged_as_they_are_read(tmp_path):
    f = tmp_path / "grid.html"
    f.write_text("<table>" + "".join("<tr>" + "<td>x" * 10 for _ in range(100)) + "</table>")
    assert len(ingest.load(f).sections[0].text.splitlines()) == 101  # header, rule and 99 rows
    with pytest.raises(OverBudget, match="over 500 table cells") as e:
        ingest.load(f, limits=ReadLimits(cells=500))
    assert e.value.resource == "cells"


def test_a_large_text_file_is_read_within_the_time_budget(tmp_path, monkeypatch):
    monkeypatch.setattr(ingest, "LARGE_FILE_BYTES", 1_000)
    monkeypatch.setattr(ingest, "BLOCK_BYTES", 512)
    f = tmp_path / "log.txt"
    f.write_text("a line of a long log\n" * 500)
    doc = ingest.load(f)
    assert sum(len(s.text) for s in doc.sections) > 9_000  # read in blocks, lazily, as before
    with pytest.raises(OverBudget) as e:
        ingest.load(f, limits=ReadLimits(seconds=1e-9))
    assert e.value.resource == "seconds"


# ---------------------------------------------------------------- PDF images (finding 3)

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


def test_a_scanned_pdf_through_the_build_stops_at_the_ocr_budget_and_the_rest_is_indexed(
        docs, tmp_path, fake_embedder):
    assert ocr.available(), "tesseract is installed in this project's environment"
    text_scan(docs / "scan.pdf", ["Shared stamp 88."], pages=4)
    r = build([docs], tmp_path / "idx", fake_embedder, read_limits=ReadLimits(ocr_pages=2))
    assert r.added == [GOOD]
    assert "over 2 pages or images to OCR" in reasons(r)["scan.pdf"]


# ---------------------------------------------------------------- any reader failure (finding 5)

def docx_needing_zip_version(path: Path, version: int) -> Path:
    """A real .docx whose central directory says it needs zip version `version` / 10 to extract
    (zipfile raises NotImplementedError for anything above 6.3)."""
    samples.write_docx(path, [("Heading", ["Some words."])])
    raw = bytearray(path.read_bytes())
    at = raw.find(b"PK\x01\x02")  # first central directory entry
    assert at > 0
    raw[at + 6] = version  # "version needed to extract", low byte
    path.write_bytes(bytes(raw))
    return path


def test_a_docx_that_zipfile_refuses_is_a_skip_with_a_reason(docs, tmp_path, fake_embedder):
    bad = docx_needing_zip_version(docs / "future.docx", 64)
    with pytest.raises(NotImplementedError):
        zipfile.ZipFile(bad)  # what a reader meets: not a DocumentError of its own
    with pytest.raises(DocumentError) as e:
        ingest.load(bad)
    assert str(bad) in str(e.value) and "\n" not in str(e.value)
    r = build([docs], tmp_path / "idx", fake_embedder)
    assert r.added == [GOOD]
    assert reasons(r)["future.docx"]


@pytest.mark.parametrize("exc", [NotImplementedError("a method not supported"), TypeError("bad operand"),
                                 SyntaxError("not XML"), RecursionError("maximum recursion depth"),
                                 zlib.error("invalid distance"), MemoryError()])
def test_any_exception_of_a_reader_is_one_document_error_naming_the_file(tmp_path, monkeypatch, exc):
    def boom(path, raw, *, budget=None):
        raise exc

    monkeypatch.setitem(READERS, ".csv", ("csv", boom))
    f = tmp_path / "t.csv"
    f.write_text("a,b\n1,2\n")
    with pytest.raises(DocumentError) as e:
        ingest.load(f)
    message = str(e.value)
    assert message.startswith(f"{f}: ") and "\n" not in message
    assert type(exc).__name__ in message or "out of memory" in message


def test_the_build_skips_a_file_whose_reader_or_chunking_fails_and_indexes_the_rest(
        docs, tmp_path, monkeypatch, fake_embedder):
    def boom(path, raw, *, budget=None):
        raise TypeError("unsupported operand type(s)")

    monkeypatch.setitem(READERS, ".csv", ("csv", boom))
    (docs / "t.csv").write_text("a,b\n1,2\n")
    (docs / "other.txt").write_text("Barn owls nest in barns.")
    real_load = ingest.load

    def failing_load(path, **kw):  # a failure outside any reader, such as in the chunker's input
        doc = real_load(path, **kw)
        if path.name == "other.txt":
            raise RuntimeError("something unforeseen")
        return doc

    monkeypatch.setattr(ingest, "load", failing_load)
    r = build([docs], tmp_path / "idx", fake_embedder)
    assert r.added == [GOOD]
    why = reasons(r)
    assert "TypeError" in why["t.csv"] and "RuntimeError" in why["other.txt"]


def test_an_interrupt_still_stops_the_build(docs, tmp_path, monkeypatch, fake_embedder):
    def interrupted(path, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(ingest, "load", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build([docs], tmp_path / "idx", fake_embedder)


# ---------------------------------------------------------------- links (finding 15)

def test_links_out_of_a_folder_are_not_followed_and_links_inside_are(docs, tmp_path, fake_embedder):
    secret = tmp_path / "secret.txt"
    secret.write_text("The vault code is 9931.")
    (docs / "passwd.txt").symlink_to(secret)
    (docs / "sub").mkdir()
    (docs / "sub" / "alias.md").symlink_to(docs / GOOD)  # stays inside: fine
    (docs / "sub" / "hop.txt").symlink_to(docs / "passwd.txt")  # inside, then out
    (docs / "up.txt").symlink_to(Path("..") / "secret.txt")  # relative, out
    files, skipped = ingest.find_files([docs])
    assert sorted(f.relative_to(docs).as_posix() for f in files) == [GOOD, "sub/alias.md"]
    why = dict((os.path.basename(p), r) for p, r in skipped)
    for name in ("passwd.txt", "hop.txt", "up.txt"):
        assert why[name] == "link to outside the folder, not followed"

    r = build([docs], tmp_path / "idx", fake_embedder)
    assert sorted(r.added) == [GOOD, "sub/alias.md"]
    assert reasons(r)["passwd.txt"] == "link to outside the folder, not followed"


def test_a_corpus_reached_through_a_link_and_a_link_named_itself_are_read(docs, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("The vault code is 9931.")
    (docs / "inside.txt").write_text("Inside.")
    (docs / "alias.txt").symlink_to(docs / "inside.txt")
    via = tmp_path / "via"
    via.symlink_to(docs)  # the folder itself through a link: its own links stay inside it
    files, skipped = ingest.find_files([via])
    assert sorted(f.name for f in files) == ["alias.txt", "inside.txt", GOOD] and not skipped
    link = tmp_path / "named.txt"
    link.symlink_to(secret)
    files, skipped = ingest.find_files([link])  # named on the command line: the caller chose it
    assert files == [link] and not skipped
