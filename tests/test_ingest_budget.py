"""Hostile files for `rag.ingest` and the index build (issue 34, findings 3, 5 and 15): every
document is read within its budget, one bad file never stops a build, and links do not lead out
of a corpus folder. Each hostile file is built here, at a bounded size; budgets are made small
so that the test shows the reader stopping rather than running out of memory or time. The
budgets of the HTML and PDF readers themselves (findings 4 and 3) are tested with their
readers, in test_readers_html.py and test_readers_pdf.py."""
import os
import zipfile
import zlib
from pathlib import Path

import pytest

from rag import index, ingest, samples
from rag.errors import DocumentError, OverBudget
from rag.readers import READERS, ocr
from rag.readers.budget import ReadLimits

from test_bad_input import GOOD, docs  # noqa: F401 - the folder with one good file, a shared fixture
from test_readers_pdf import text_scan


def build(paths, idx, emb, **kw):
    return index.build(paths, index_dir=idx, embedder=emb, chunk_size=100, chunk_overlap=20, **kw)


def reasons(report) -> dict[str, str]:
    out = {os.path.basename(p): r for p, r in report.skipped}
    assert all("\n" not in r for r in out.values())
    return out


# ---------------------------------------------------------------- large text files and scanned PDFs

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
