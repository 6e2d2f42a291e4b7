"""The embed_backend setting and the rule that vectors of two embedder backends never meet: an
index records the backend that made it, and one made by another backend from the same weights
is rebuilt by `rag index` (and by the app for its default index), never searched."""
import hashlib

import numpy as np
import pytest

from rag import RAG, index
from rag.config import EMBED_BACKENDS, Settings
from rag.errors import BackendChanged, ConfigError, StoreError
from rag.manifest import check_embedder, embedder_record
from rag.stores import faiss as faiss_store
from rag.testing import HashEmbedder, ScriptedGenerator

pytestmark = pytest.mark.unit


class BackendEmbedder(HashEmbedder):
    """A stand-in with the shipped embedder's identity: one set of weights, several backends.
    Its int8 vectors differ from its fp32 ones, as the real model's do."""

    def __init__(self, backend: str, weights: str = "w" * 64):
        super().__init__(name="all-MiniLM-L6-v2")
        self.backend_name, self.weights_fingerprint = backend, weights

    @property
    def fingerprint(self) -> str:
        if self.backend_name == "onnx-int8":
            return hashlib.sha256(f"{self.weights_fingerprint}+onnx-int8".encode()).hexdigest()
        return self.weights_fingerprint

    def embed(self, texts, *, progress=False):
        out = super().embed(texts, progress=progress)
        if self.backend_name == "onnx-int8":
            out = np.round(out * 8) / 8
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)
        return out


def _build(paths, idx, emb, **kw):
    return index.build(paths, index_dir=idx, embedder=emb, chunk_size=100, chunk_overlap=20, **kw)


def test_setting_values_and_validation(monkeypatch):
    assert Settings.load().embed_backend == "auto"
    assert EMBED_BACKENDS == ("auto", "torch", "onnx", "onnx-int8")
    for value in EMBED_BACKENDS:
        assert Settings.load(embed_backend=value).embed_backend == value
    monkeypatch.setenv("RAG_EMBED_BACKEND", "torch")
    assert Settings.load().embed_backend == "torch"
    with pytest.raises(ConfigError, match="embed_backend must be"):
        Settings.load(embed_backend="int8")
    monkeypatch.setenv("RAG_EMBED_BACKEND", "gpu")
    with pytest.raises(ConfigError, match="embed_backend"):
        Settings.load()


def test_embedder_rejects_an_unknown_backend_before_loading_anything():
    from rag.embed import Embedder

    with pytest.raises(ConfigError, match="embed_backend"):
        Embedder("/nonexistent", backend="tensorrt")
    # torch resolves without onnxruntime or the model, and keeps the weights' own fingerprint
    emb = Embedder("/nonexistent", backend="torch")
    assert emb.backend_name == "torch"


def test_manifest_records_the_backend_and_the_weights():
    rec = embedder_record(BackendEmbedder("onnx-int8"))
    assert rec["backend"] == "onnx-int8" and rec["weights"] == "w" * 64
    assert rec["fingerprint"] != rec["weights"]
    assert "backend" not in embedder_record(HashEmbedder())  # stand-ins record what they did before


@pytest.mark.parametrize("built, now", [("torch", "onnx-int8"), ("onnx-int8", "torch"), ("onnx", "onnx-int8"),
                                        ("onnx-int8", "onnx")])
def test_another_backend_of_the_same_weights_is_refused_in_one_line(built, now):
    manifest = {"embedder": embedder_record(BackendEmbedder(built))}
    with pytest.raises(BackendChanged) as e:
        check_embedder(manifest, "idx", embedder=BackendEmbedder(now))
    msg = str(e.value)
    assert "\n" not in msg and "`rag index`" in msg and built in msg and now in msg


def test_torch_and_fp32_onnx_are_one_embedder():
    """The fp32 export gives torch's vectors (cosine 0.9999999): either reads the other's index."""
    for built, now in (("torch", "onnx"), ("onnx", "torch")):
        check_embedder({"embedder": embedder_record(BackendEmbedder(built))}, "idx", embedder=BackendEmbedder(now))


def test_an_index_from_before_backends_were_recorded_counts_as_torch():
    legacy = {"embedder": {"name": "all-MiniLM-L6-v2", "dim": 64, "fingerprint": "w" * 64}}
    check_embedder(legacy, "idx", embedder=BackendEmbedder("torch"))
    with pytest.raises(BackendChanged, match="built with the torch embedder backend, not onnx-int8"):
        check_embedder(legacy, "idx", embedder=BackendEmbedder("onnx-int8"))


def test_other_weights_stay_a_plain_mismatch_not_a_backend_change():
    manifest = {"embedder": embedder_record(BackendEmbedder("torch", weights="a" * 64))}
    with pytest.raises(StoreError, match="weights differ") as e:
        check_embedder(manifest, "idx", embedder=BackendEmbedder("onnx-int8", weights="b" * 64))
    assert not isinstance(e.value, BackendChanged)


def test_rag_index_rebuilds_an_index_of_another_backend(tmp_path, corpus_copy):
    idx = tmp_path / "idx"
    torch_emb, int8_emb = BackendEmbedder("torch"), BackendEmbedder("onnx-int8")
    first = _build([corpus_copy], idx, torch_emb)
    # opened for searching with the int8 embedder: refused, not searched with int8 question vectors
    with pytest.raises(BackendChanged):
        faiss_store.open_index(idx, embedder=int8_emb)
    again = _build([corpus_copy], idx, int8_emb)  # what `rag index` runs: no --rebuild needed
    assert int8_emb.embedded == again.n_embedded == again.n_chunks == first.n_chunks
    assert not again.unchanged, "a torch chunk vector was kept beside int8 ones"
    opened = faiss_store.open_index(idx, embedder=int8_emb)
    assert opened.manifest["embedder"]["backend"] == "onnx-int8"
    with pytest.raises(BackendChanged):
        faiss_store.open_index(idx, embedder=torch_emb)


def test_the_app_rebuilds_its_default_index_of_another_backend(tmp_path, corpus_copy):
    idx = tmp_path / "idx"
    _build([corpus_copy], idx, BackendEmbedder("torch"))
    int8_emb = BackendEmbedder("onnx-int8")
    gen = ScriptedGenerator(["x"])
    # a RAG that builds its index when missing (the app's default index) builds this one again
    rag = RAG(embedder=int8_emb, generator=gen, index=str(idx), corpus=str(corpus_copy), build_missing=True)
    assert rag.search("capybaras")
    assert int8_emb.embedded > 1
    assert faiss_store.open_index(idx, embedder=int8_emb).manifest["embedder"]["backend"] == "onnx-int8"
    # one that does not (an index named by the user) says what to run instead
    _build([corpus_copy], idx, BackendEmbedder("torch"), rebuild=True)
    other = RAG(embedder=BackendEmbedder("onnx-int8"), generator=gen, index=str(idx), corpus=str(corpus_copy),
                build_missing=False)
    with pytest.raises(BackendChanged, match="`rag index`"):
        other.search("capybaras")


def test_answering_compares_texts_with_the_exact_vectors_and_searches_with_the_index_backend(tmp_path, corpus_copy):
    """Under int8 the answer checks (cosines between texts embedded while answering, thresholds set
    on fp32) take `embed_exact`; retrieval, against the index's vectors, takes `embed`."""
    class Split(BackendEmbedder):
        def __init__(self):
            super().__init__("onnx-int8")
            self.exact_calls = 0

        def embed_exact(self, texts, *, progress=False):
            self.exact_calls += 1
            return HashEmbedder.embed(self, texts)

    emb = Split()
    rag = RAG(embedder=emb, generator=ScriptedGenerator(["Capybaras are large rodents [1]."] * 3),
              index=str(tmp_path / "idx"), corpus=str(corpus_copy), build_missing=True)
    calls = emb.calls
    rag.ask("What are capybaras?", template="zero_shot")
    assert emb.calls > calls, "the question was not embedded by the index backend"
    assert emb.exact_calls > 0, "the checks did not use the exact vectors"
    assert np.allclose(rag._embed_exact(["a b"]), HashEmbedder.embed(emb, ["a b"]))
    assert np.allclose(RAG(embedder=HashEmbedder(), generator=ScriptedGenerator(["x"]))._embed_exact(["a b"]),
                       HashEmbedder().embed(["a b"]))


def test_a_warm_up_thread_and_a_first_question_resolve_one_backend(monkeypatch):
    """`rag mcp` warms up in a thread while the first tool call comes in: the second caller waits
    for the int8 model instead of reading "torch" (and searching an int8 index with torch)."""
    import threading
    import time

    from rag import embed

    class Loaded:
        dim = 384

    def slow(*a, **kw):
        time.sleep(0.3)
        return Loaded()

    monkeypatch.setattr(embed.OnnxEncoder, "from_files", staticmethod(slow))
    emb = embed.Embedder("/nonexistent", backend="auto")
    warm = threading.Thread(target=emb._whole)
    warm.start()
    time.sleep(0.05)
    assert emb.backend_name == "onnx-int8"
    warm.join()
