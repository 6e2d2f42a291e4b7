"""The real MiniLM embedder: questions through onnxruntime give the vectors torch gives."""
import logging

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


def test_onnx_question_vectors_match_torch(model_path, tmp_path):
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
    batch = onnx_path.embed(QUESTIONS[:3])
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
