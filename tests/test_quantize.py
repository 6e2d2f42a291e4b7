"""The default model requantized once with llama.cpp's own quantizer (model_quant)."""
import os

import pytest

from rag.config import MODEL_QUANTS, Settings, default_llm_path
from rag.errors import ConfigError
from rag.models.quantize import QUANTS, requantize, requantized_path


def test_the_copy_is_keyed_by_its_source(tmp_path):
    src = tmp_path / "model.Q4_1.gguf"
    src.write_bytes(b"GGUF" + b"\0" * 64)
    first = requantized_path(src, "q4_0", cache=tmp_path / "cache")
    assert first.name == "model.Q4_0.gguf" and first == requantized_path(src, "q4_0", cache=tmp_path / "cache")
    os.utime(src, ns=(1, 1))  # a replaced source never finds the old copy
    assert requantized_path(src, "q4_0", cache=tmp_path / "cache") != first
    assert requantize(src, "shipped") == src
    with pytest.raises(ConfigError, match="model_quant"):
        requantize(src, "q2_k")
    with pytest.raises(ConfigError, match="model_quant"):
        Settings.load(model_quant="q3")


def test_the_quantizer_knows_every_name_the_setting_takes():
    assert tuple(QUANTS) == MODEL_QUANTS  # settings check names without loading the quantizer


def test_a_file_the_quantizer_cannot_read_is_one_error_and_leaves_nothing(tmp_path):
    src = tmp_path / "broken.gguf"
    src.write_bytes(b"GGUF" + b"\1" * 64)
    with pytest.raises(ConfigError, match="could not requantize"):
        requantize(src, "q4_0", cache=tmp_path / "cache")
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]


@pytest.mark.e2e
def test_requantizing_the_default_model_once(tmp_path):
    src = default_llm_path()
    out = requantize(src, "q4_0", cache=tmp_path)
    assert out.read_bytes()[:4] == b"GGUF" and out.stat().st_size < os.path.getsize(src)
    mtime = out.stat().st_mtime_ns
    assert requantize(src, "q4_0", cache=tmp_path) == out and out.stat().st_mtime_ns == mtime  # idempotent
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temporary file left behind


def test_the_setting_offers_exactly_the_quantizations_this_module_makes():
    assert set(MODEL_QUANTS) == set(QUANTS)
