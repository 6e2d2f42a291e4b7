"""The real MiniLM embedder: questions through onnxruntime give the vectors torch gives."""
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rag.config import Settings
from rag.embed import Embedder
from rag.errors import ConfigError

pytestmark = pytest.mark.e2e

QUESTIONS = [
    "What is LoRA?",
    "How does backpropagation compute gradients through a network of many layers?",
    "Qu'est-ce qu'un réseau de neurones convolutif ?",
    "x",
    "word " * 400,  # past the 256-token limit: both paths must cut it the same way
]


@pytest.fixture(scope="module")
def model_path():
    return Settings.load().embedder_path()


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory):
    """One export for the module: it takes seconds."""
    return tmp_path_factory.mktemp("onnx-cache")


def test_onnx_question_vectors_match_torch(model_path, onnx_cache):
    tmp_path = onnx_cache
    torch_path = Embedder(model_path, query_backend="torch", cache_dir=tmp_path)
    onnx_path = Embedder(model_path, cache_dir=tmp_path)
    for q in QUESTIONS:
        a, b = torch_path.embed([q]), onnx_path.embed([q])
        assert a.shape == b.shape == (1, 384) and b.dtype == np.float32
        assert float(a[0] @ b[0]) > 0.9999, q
        assert abs(float(np.linalg.norm(b[0])) - 1.0) < 1e-5
    assert onnx_path._query, "the ONNX path was not used"
    exported = list(tmp_path.rglob("*.onnx"))
    assert len(exported) == 1 and exported[0].stat().st_size > 10_000_000
    # exporting must leave the torch model that builds indexes unchanged
    batch = onnx_path.model.encode(QUESTIONS[:3], normalize_embeddings=True, convert_to_numpy=True)
    assert np.allclose(batch, np.vstack([torch_path.embed([q]) for q in QUESTIONS[:3]]), atol=1e-4)
    # a second embedder reuses the exported file instead of exporting again
    again = Embedder(model_path, cache_dir=tmp_path)
    again.embed(["What is LoRA?"])
    assert list(tmp_path.rglob("*.onnx")) == exported
    assert not list(tmp_path.rglob(".export-*")), "a temporary export file was left behind"


def test_unusable_cache_falls_back_to_torch(model_path, tmp_path, caplog):
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be")
    emb = Embedder(model_path, cache_dir=blocker)
    ref = Embedder(model_path, query_backend="torch", cache_dir=tmp_path)
    with caplog.at_level(logging.WARNING, logger="rag.embed"):
        v = emb.embed(["What is LoRA?"])
    assert float(v[0] @ ref.embed(["What is LoRA?"])[0]) > 0.9999
    assert emb._query is False
    assert any("stays on torch" in r.getMessage() for r in caplog.records)


def test_unknown_query_backend_is_a_config_error(model_path):
    with pytest.raises(ConfigError, match="query_backend"):
        Embedder(model_path, query_backend="tensorrt")
    with pytest.raises(ConfigError, match="query_backend"):
        Settings.load(query_backend="gpu")


def test_answering_embeds_through_the_exported_twin_without_torch(model_path, onnx_cache):
    tmp_path = onnx_cache
    Embedder(model_path, cache_dir=tmp_path).embed(["exported already, or now"])
    fresh = Embedder(model_path, cache_dir=tmp_path)
    assert fresh.warm_up() is fresh and fresh._model is None and fresh._query  # read from its files
    assert fresh.dim == 384
    # what an answer's checks embed: a question, short sentences and whole passages, in one batch
    texts = QUESTIONS + ["LoRA freezes the base model and trains small low-rank matrices. " * 12, "ok"]
    got = fresh.embed(texts)
    assert fresh._model is None, "a small batch loaded torch"
    want = Embedder(model_path, query_backend="torch", cache_dir=tmp_path).model.encode(
        texts, normalize_embeddings=True, convert_to_numpy=True)
    assert got.shape == want.shape and float(np.min(np.sum(got * want, axis=1))) > 0.9999
    # and in a fresh interpreter, neither torch nor sentence-transformers is imported for it
    code = ("import sys; from rag.embed import Embedder; "
            f"e = Embedder({model_path!r}, cache_dir={str(tmp_path)!r}); e.warm_up(); e.embed(['a', 'b c']); "
            "print(sorted(m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent).stdout
    assert out.strip() == "[]"


@pytest.fixture(scope="module")
def int8_cache(tmp_path_factory):
    """Its own cache, so the fp32-only assertions above never see the int8 file."""
    return tmp_path_factory.mktemp("int8-cache")


def _corpus_passages(n: int = 40) -> list[str]:
    root = Path(__file__).resolve().parent.parent / "corpus"
    text = " ".join(p.read_text(errors="ignore") for p in sorted(root.glob("*.md")))
    words = text.split()
    return [" ".join(words[i:i + 120]) for i in range(0, min(len(words), 120 * n), 120)]


def test_int8_vectors_are_close_to_fp32(model_path, int8_cache):
    """The per-channel int8 model (embed_backend auto) gives vectors near torch's for the same
    texts, questions and passages alike; it is made once, offline, and read back from its files."""
    texts = QUESTIONS + _corpus_passages()
    int8 = Embedder(model_path, backend="onnx-int8", cache_dir=int8_cache)
    ref = Embedder(model_path, backend="torch", query_backend="torch", cache_dir=int8_cache)
    a, b = int8.embed(texts), ref.embed(texts)
    assert int8.backend_name == "onnx-int8" and ref.backend_name == "torch"
    assert a.shape == b.shape and a.dtype == np.float32
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    cos = np.sum(a * b, axis=1)
    assert float(np.min(cos[len(QUESTIONS):])) > 0.98, "a passage's int8 vector strays from fp32"
    assert float(np.min(cos)) > 0.97 and float(np.mean(cos)) > 0.99, cos
    assert not np.allclose(a, b, atol=1e-4), "not the int8 model"
    names = sorted(p.name for p in int8_cache.rglob("*.onnx"))
    assert names == ["model.int8-pc.onnx", "model.onnx"]
    assert not [p for p in int8_cache.rglob(".*") if p.is_file()], "a temporary file was left behind"
    # the int8 index and question fingerprint differs from torch's, on the same weights
    assert int8.fingerprint != ref.fingerprint and int8.weights_fingerprint == ref.weights_fingerprint
    # read back from its files: no torch, the same vectors
    again = Embedder(model_path, backend="auto", cache_dir=int8_cache)
    assert again.backend_name == "onnx-int8" and again.warm_up()._model is None
    assert np.allclose(again.embed(texts), a, atol=1e-6)
    # one question at a time gives the vector a batch (an index build) gives: dynamic int8 scales
    # a call's activations over its whole batch, so the int8 model runs one text per call
    alone = np.vstack([again.embed([t]) for t in texts])
    assert np.allclose(alone, a, atol=1e-6)
    assert np.allclose(again.embed(texts[::-1])[::-1], a, atol=1e-6)
    # what the answer checks compare with one another keeps torch's vectors, thresholds and all
    exact = again.embed_exact(texts)
    assert float(np.min(np.sum(exact * b, axis=1))) > 0.9999
    assert again._model is None, "the checks' fp32 twin loaded torch"


def test_an_index_built_with_torch_is_not_searched_with_int8_vectors(model_path, int8_cache, tmp_path):
    from rag import RAG
    from rag.errors import BackendChanged
    from rag.stores.faiss import open_index

    corpus = Path(__file__).resolve().parent.parent / "corpus"
    docs = tmp_path / "docs"
    docs.mkdir()
    for p in sorted(corpus.glob("*.md"))[:2]:
        (docs / p.name).write_text(p.read_text())
    idx = tmp_path / "idx"
    torch_rag = RAG(index=str(idx), corpus=str(docs), embed_backend="torch")
    torch_rag._embedder = Embedder(model_path, name="all-MiniLM-L6-v2", backend="torch", cache_dir=int8_cache)
    built = torch_rag.index()
    assert open_index(idx).manifest["embedder"]["backend"] == "torch"
    int8_rag = RAG(index=str(idx), corpus=str(docs), embed_backend="onnx-int8")
    int8_rag._embedder = Embedder(model_path, name="all-MiniLM-L6-v2", backend="onnx-int8", cache_dir=int8_cache)
    with pytest.raises(BackendChanged, match="`rag index`"):
        int8_rag.search("What is LoRA?")
    again = int8_rag.index()  # `rag index`: rebuilt, not updated
    assert again.n_embedded == again.n_chunks == built.n_chunks and not again.unchanged
    assert open_index(idx).manifest["embedder"]["backend"] == "onnx-int8"
    assert int8_rag.search("What is LoRA?")
    with pytest.raises(BackendChanged):
        torch_rag.search("What is LoRA?")
