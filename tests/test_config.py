from pathlib import Path

import pytest

from rag.config import Settings, default_embedder_path, default_llm_path
from rag.errors import ConfigError
from rag.models import model_path


def test_default_models_ship_with_packages():
    assert (Path(default_embedder_path()) / "config.json").is_file()
    gguf = Path(default_llm_path())
    assert gguf.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert gguf.read_bytes()[:4] == b"GGUF"


def test_env_then_keyword_precedence(monkeypatch):
    monkeypatch.setenv("RAG_TOP_K", "7")
    monkeypatch.setenv("RAG_N_GPU_LAYERS", "-1")
    s = Settings.load()
    assert s.top_k == 7 and s.n_gpu_layers == -1
    assert Settings.load(top_k=2).top_k == 2


@pytest.mark.parametrize("kwargs, words", [
    ({"chunk_size": 4}, "chunk_size"),
    ({"chunk_overlap": 500}, "chunk_overlap"),
    ({"top_k": 0}, "top_k"),
    ({"max_tokens": 5000}, "max_tokens"),
    ({"bogus": 1}, "unknown setting"),
])
def test_bad_settings_are_rejected(kwargs, words):
    with pytest.raises(ConfigError, match=words):
        Settings.load(**kwargs)


def test_bad_env_value(monkeypatch):
    monkeypatch.setenv("RAG_TOP_K", "many")
    with pytest.raises(ConfigError, match="RAG_TOP_K"):
        Settings.load()


def test_model_path_checks(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        model_path(Settings.load(model=str(tmp_path / "missing.gguf")))
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"not a model")
    with pytest.raises(ConfigError, match="not a GGUF"):
        model_path(Settings.load(model=str(fake)))
    with pytest.raises(ConfigError, match="embedder folder"):
        Settings.load(embedder=str(tmp_path / "nope")).embedder_path()


def test_abstention_thresholds_must_be_scores():
    for name in ("min_score", "min_support", "min_relevance"):
        with pytest.raises(ConfigError, match=name):
            Settings.load(**{name: 5.0})
