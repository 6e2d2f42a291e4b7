"""Every kind of bad input from issue 5: each file is skipped or handled with a reason in the
report, the rest of the folder is indexed, and bad questions get one clear error."""
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rag import index, ingest
from rag.stores import faiss as faiss_store
from rag.errors import DocumentError, QueryError

from rag.samples import write_text_pdf as make_pdf

GOOD = "owls.md"


def build(docs, idx, emb):
    return index.build([docs], index_dir=idx, embedder=emb, chunk_size=100, chunk_overlap=20)


@pytest.fixture
def docs(tmp_path):
    d = tmp_path / "docs"
    d.mkdir()
    (d / GOOD).write_text("# Owls\nOwls hunt at night and sleep by day.")
    return d


def skipped_reason(report, name):
    reasons = {os.path.basename(p): r for p, r in report.skipped}
    assert name in reasons, f"{name} not reported as skipped: {report.skipped}"
    assert "\n" not in reasons[name]
    return reasons[name]


def index_with(docs, tmp_path, emb, name, data):
    (docs / name).write_bytes(data)
    idx = tmp_path / f"idx-{name}"
    r = build(docs, idx, emb)
    assert r.added == [GOOD], "the good file must be indexed despite the bad one"
    assert {c.source for c in faiss_store.open_index(idx).chunks} == {GOOD}
    return skipped_reason(r, name)


def test_empty_file(docs, tmp_path, fake_embedder):
    assert "no text" in index_with(docs, tmp_path, fake_embedder, "empty.txt", b"")


def test_whitespace_only_file(docs, tmp_path, fake_embedder):
    assert "no text" in index_with(docs, tmp_path, fake_embedder, "blank.md", b" \n\t\r\n   \n")


def test_binary_content_with_a_text_extension(docs, tmp_path, fake_embedder):
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 20
    assert "binary" in index_with(docs, tmp_path, fake_embedder, "picture.txt", png)


def test_undetectable_encoding_is_skipped_with_a_warning(docs, tmp_path, fake_embedder, caplog):
    noise = bytes(b for b in random.Random(7).randbytes(20_000) if b)  # no NUL, no encoding
    assert "encoding" in index_with(docs, tmp_path, fake_embedder, "noise.txt", noise)
    assert any("noise.txt" in rec.getMessage() for rec in caplog.records if rec.levelname == "WARNING")


@pytest.mark.parametrize("text, encoding", [
    ("Café crème brûlée, déjà vu à la française. Über naïve façade.", "cp1252"),
    ("Привет, как дела? Это тест кодировки для заметок о совах.", "cp1251"),
    ("Grüße aus Köln und ein Gruß an die Eulen.", "utf-16"),
    ("Eulen jagen nachts. Größe: 30 cm.", "utf-8-sig"),
])
def test_non_utf8_text_is_decoded_and_indexed(docs, tmp_path, fake_embedder, text, encoding):
    (docs / "notes.txt").write_bytes(text.encode(encoding))
    r = build(docs, tmp_path / "idx", fake_embedder)
    assert sorted(r.added) == ["notes.txt", GOOD] and not r.skipped
    chunk = next(c for c in faiss_store.open_index(tmp_path / "idx").chunks if c.source == "notes.txt")
    assert chunk.text == text


def test_broken_pdf(docs, tmp_path, fake_embedder):
    pdf = tmp_path / "ok.pdf"
    make_pdf(pdf, ["The pump needs 4 bar."])
    truncated = pdf.read_bytes()[:-120]  # cut through the xref table and trailer
    assert "PDF" in index_with(docs, tmp_path, fake_embedder, "cut.pdf", truncated)
    assert "broken PDF" in index_with(docs, tmp_path, fake_embedder, "junk.pdf", b"%PDF-1.7\n\x00garbage")


def test_encrypted_pdf(docs, tmp_path, fake_embedder):
    from pypdf import PdfReader, PdfWriter

    plain = tmp_path / "plain.pdf"
    make_pdf(plain, ["Secret owl census: 42 owls."])
    writer = PdfWriter(clone_from=PdfReader(plain))
    writer.encrypt(user_password="hoot", owner_password="hoot-owner", algorithm="RC4-128")
    out = tmp_path / "locked.pdf"
    with out.open("wb") as fh:
        writer.write(fh)
    assert "encrypted" in index_with(docs, tmp_path, fake_embedder, "locked.pdf", out.read_bytes())


def test_unreadable_file(docs, tmp_path, fake_embedder):
    # tests run as root, so chmod cannot stop a read; /proc/self/mem is a regular file whose
    # read fails with EIO for anyone
    (docs / "secret.txt").symlink_to("/proc/self/mem")
    r = build(docs, tmp_path / "idx", fake_embedder)
    assert r.added == [GOOD]
    # found in the folder, the link leads out of it and is not followed (issue 34, finding 15)
    assert skipped_reason(r, "secret.txt") == "link to outside the folder, not followed"
    # named itself, it is read, and the read fails
    r = index.build([docs / GOOD, docs / "secret.txt"], index_dir=tmp_path / "idx2", embedder=fake_embedder,
                    chunk_size=100, chunk_overlap=20)
    assert [Path(a).name for a in r.added] == [GOOD]
    assert "cannot read" in skipped_reason(r, "secret.txt")
    with pytest.raises(DocumentError, match="cannot read"):
        ingest.load(docs / "secret.txt")


def test_fifo_and_folder_named_like_a_file(docs, tmp_path, fake_embedder):
    os.mkfifo(docs / "pipe.txt")  # opening it would block forever
    (docs / "folder.md").mkdir()
    (docs / "folder.md" / "inner.txt").write_text("Barn owls nest in barns.")
    r = build(docs, tmp_path / "idx", fake_embedder)
    assert sorted(r.added) == ["folder.md/inner.txt", GOOD]
    assert "not a regular file" in skipped_reason(r, "pipe.txt")


def test_symlink_loops_and_dangling_links(docs, tmp_path, fake_embedder):
    (docs / "a.txt").symlink_to(docs / "b.txt")
    (docs / "b.txt").symlink_to(docs / "a.txt")
    (docs / "gone.md").symlink_to(tmp_path / "nowhere.md")
    (docs / "sub").mkdir()
    (docs / "sub" / "up").symlink_to(docs)  # a folder loop
    r = build(docs, tmp_path / "idx", fake_embedder)
    assert r.added == [GOOD]
    assert "symbolic links" in skipped_reason(r, "a.txt")
    assert "cannot read" in skipped_reason(r, "gone.md")
    assert "not followed" in skipped_reason(r, "up")


def test_unsupported_extensions(docs, tmp_path, fake_embedder):
    for name in ("table.xls", "slides.ppt", "clip.MP4", "Makefile"):
        (docs / name).write_bytes(b"something")
    r = build(docs, tmp_path / "idx", fake_embedder)
    assert r.added == [GOOD]
    for name in ("table.xls", "slides.ppt", "clip.MP4", "Makefile"):
        assert "unsupported" in skipped_reason(r, name)


BIG_SCRIPT = """
import resource, sys
sys.path.insert(0, sys.argv[3])
from conftest import FakeEmbedder
import faiss, langchain_text_splitters  # loaded before the baseline is taken
from rag import index
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
r = index.build([sys.argv[1]], index_dir=sys.argv[2], embedder=FakeEmbedder(), chunk_size=200,
                chunk_overlap=20)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print("GROWTH_KB", after - before, "CHUNKS", r.n_chunks, "ADDED", ",".join(r.added))
"""


def test_very_large_file_is_indexed_in_bounded_memory(tmp_path):
    docs = tmp_path / "big"
    docs.mkdir()
    words = ("owl river engine carbon delta falcon garden harbor island jungle kettle lantern "
             "meadow nickel orchard pepper quartz ribbon saddle timber walnut zephyr").split()
    rng = random.Random(3)
    with (docs / "dump.txt").open("w") as fh:
        while fh.tell() < 12 << 20:
            fh.write(" ".join(rng.choice(words) for _ in range(rng.randint(30, 120))) + ".\n\n")
        fh.write("The final line mentions a capybara.\n")
    size = (docs / "dump.txt").stat().st_size
    assert size > ingest.LARGE_FILE_BYTES
    out = subprocess.run([sys.executable, "-c", BIG_SCRIPT, str(docs), str(tmp_path / "idx"),
                          str(Path(__file__).parent)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    fields = out.stdout.split()
    growth = int(fields[fields.index("GROWTH_KB") + 1]) * 1024
    assert fields[fields.index("ADDED") + 1] == "dump.txt"
    # the index itself (chunk texts with overlap, ids, vectors) is about twice the file; reading
    # the whole file at once costs several more copies on top
    assert growth < 3 * size, f"peak RSS grew {growth >> 20} MB for a {size >> 20} MB file"
    store = faiss_store.open_index(tmp_path / "idx")
    assert store.chunks[-1].text.endswith("capybara.")
    assert sum(len(c.text) for c in store.chunks) >= 0.95 * size


# ---------------------------------------------------------------- questions, real pipeline

@pytest.mark.e2e
@pytest.mark.parametrize("question, message", [
    ("", "empty"),
    (" \n\t\u3000 ", "empty"),
    ("Why?" * 25_000, "100000 characters long"),
])
def test_bad_questions_get_a_clear_error(real_rag, question, message):
    with pytest.raises(QueryError, match=message) as e:
        real_rag.ask(question)
    assert "\n" not in str(e.value)


@pytest.mark.e2e
def test_any_unicode_question_is_answered(real_rag):
    # emoji, right-to-left Arabic and Hebrew, CJK, combining marks and a zero-width joiner
    mixed = ("🦉🧠 What is deep learning? ما هو التعلم العميق؟ מהי למידה עמוקה? 深度学习是什么？ "
             "ディープラーニング e\u0301 👩\u200d💻")
    hits = real_rag.search(mixed)
    assert hits and all(np.isfinite(h.score) and -1.0 <= h.dense <= 1.0 for h in hits)
    answer = real_rag.ask(mixed)
    assert answer.question.startswith("🦉🧠")
    assert answer.text.strip()


@pytest.mark.e2e
def test_duplicate_documents_are_never_returned_twice(real_rag):
    # corpus/ ships deep-learning-overview as both .md and .txt
    for question in ("What is deep learning?", "How do I fine-tune a pretrained model?",
                     "What are the layers of a neural network?"):
        hits = real_rag.search(question, top_k=8)
        texts = [" ".join(h.chunk.text.split()).lower() for h in hits]
        assert len(texts) == len(set(texts)), question
        rows = [real_rag.store.chunks.index(h.chunk) for h in hits]
        vecs = real_rag.store.vectors(rows)
        sims = vecs @ vecs.T
        assert (sims[~np.eye(len(rows), dtype=bool)] < 0.95).all(), question
