from pathlib import Path

import pytest

from rag import ingest
from rag.chunk import Chunker, embed_text
from rag.config import default_embedder_path
from rag.types import Document, Section

CORPUS = Path(__file__).resolve().parent.parent / "corpus"


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(default_embedder_path())


@pytest.mark.parametrize("name", sorted(p.name for p in CORPUS.iterdir()))
def test_no_chunk_exceeds_the_embedder_window(tokenizer, name):
    # MiniLM reads at most 256 tokens; [CLS] and [SEP] included
    chunker = Chunker(tokenizer, max_tokens=256, chunk_size=200, chunk_overlap=40)
    chunks = chunker.split(ingest.load(CORPUS / name, source=name))
    assert chunks
    for c in chunks:
        assert len(tokenizer(embed_text(c))["input_ids"]) <= 256
        assert c.id.startswith(name + "#")
    # nothing is lost: every word of the document appears in some chunk
    words = set(" ".join(s.text for s in ingest.load(CORPUS / name).sections).split())
    assert words <= set(" ".join(c.text for c in chunks).split())


def test_long_headers_shrink_the_chunk_budget(tokenizer):
    heading = "A very long heading " * 20
    doc = Document("x.md", "Title", (Section("word " * 2000, (heading,)),), "0")
    chunker = Chunker(tokenizer, max_tokens=128, chunk_size=120, chunk_overlap=10)
    chunks = chunker.split(doc)
    assert len(chunks) > 10
    assert all(len(tokenizer(embed_text(c))["input_ids"]) <= 128 for c in chunks)
    assert all(c.headings == (heading,) for c in chunks)


def test_overlap_repeats_text_between_neighbours(tokenizer):
    text = " ".join(f"Sentence number {i} is here." for i in range(200))
    doc = Document("s.txt", "S", (Section(text),), "0")
    chunks = Chunker(tokenizer, max_tokens=256, chunk_size=60, chunk_overlap=20).split(doc)
    assert len(chunks) > 5
    for a, b in zip(chunks, chunks[1:]):
        assert set(a.text.split()[-5:]) & set(b.text.split()[:30])
