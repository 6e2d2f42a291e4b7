from pathlib import Path

import pytest

from rag import ingest
from rag.errors import DocumentError

CORPUS = Path(__file__).resolve().parent.parent / "corpus"


def test_text_file_title_is_first_line():
    doc = ingest.load(CORPUS / "deep-learning-and-choosing-a-model.txt")
    assert doc.title == "Deep Learning & How to Choose the Right Model"
    assert "LoRA" in doc.sections[0].text
    assert len(doc.sha256) == 64


def test_markdown_front_matter_and_heading_paths():
    doc = ingest.load(CORPUS / "deep-learning-overview.md")
    assert doc.title == "Deep Learning"
    heads = [s.headings for s in doc.sections]
    assert ("Deep Model Training Strategy", "Using Pretrained Model Directly and with Finetuning",
            "Finetuning") in heads
    assert not any(s.text.lstrip().startswith("---") for s in doc.sections)


@pytest.mark.parametrize("name, data, reason", [
    ("empty.txt", b"", "no text"),
    ("blank.md", b"  \n\t\n", "no text"),
    ("binary.txt", b"\x00\x01\x02garbage\x00" * 50, "binary"),
    ("broken.pdf", b"%PDF-1.4\nthis is not really a pdf", "broken PDF"),
    ("notes.doc", b"\xd0\xcf\x11\xe0", "unsupported"),
])
def test_bad_files_raise_one_line_errors(tmp_path, name, data, reason):
    f = tmp_path / name
    f.write_bytes(data)
    with pytest.raises(DocumentError, match=reason) as e:
        ingest.load(f)
    assert "\n" not in str(e.value)


def test_non_utf8_text_is_decoded(tmp_path):
    f = tmp_path / "latin.txt"
    f.write_bytes("Café crème brûlée, déjà vu à la française. Über naïve façade.".encode("cp1252"))
    doc = ingest.load(f)
    assert "Café crème brûlée" in doc.sections[0].text
    c = tmp_path / "cyrillic.txt"
    c.write_bytes("Привет, как дела? Это тест кодировки для заметок.".encode("cp1251"))
    assert "Привет, как дела" in ingest.load(c).sections[0].text
    g = tmp_path / "utf16.txt"
    g.write_bytes("Grüße aus Köln".encode("utf-16"))
    assert ingest.load(g).sections[0].text == "Grüße aus Köln"


def test_find_files_recurses_and_reports_unsupported(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "x.md").write_text("# X\nhello")
    (tmp_path / "a" / "y.txt").write_text("hello")
    (tmp_path / "a" / "z.xls").write_text("1,2")
    (tmp_path / "a" / ".hidden.txt").write_text("secret")
    (tmp_path / "a" / "loop").symlink_to(tmp_path / "a")  # a symlink loop must not hang
    files, skipped = ingest.find_files([tmp_path / "a", tmp_path / "missing.txt"])
    assert [f.name for f in files] == ["x.md", "y.txt"]
    reasons = dict(skipped)
    assert "unsupported" in reasons[str(tmp_path / "a" / "z.xls")]
    assert reasons[str(tmp_path / "missing.txt")] == "no such file or folder"


def test_a_byte_order_mark_before_bytes_that_are_not_utf16_is_one_line(tmp_path):
    from rag import ingest as ingest_mod
    from rag.errors import DocumentError

    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe\x00\x00garbage\x00\x01")
    with pytest.raises(DocumentError, match="not valid UTF-16"):
        ingest_mod.load(bad)
