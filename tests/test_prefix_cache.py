"""The saved KV state of a prompt's fixed head, with the real default model: written once,
read back by a fresh model instance with the same answer, and a damaged file never trusted."""
import pytest

from rag.generators.llamacpp import LLM
from rag.prompts import build_prompt, get_template

pytestmark = pytest.mark.e2e


def _fresh(real_rag, folder) -> LLM:
    return LLM(real_rag.generator.path, n_ctx=2048, prefix_cache=str(folder))


def _answer(llm: LLM, prompt):
    return llm.generate(list(prompt.messages), max_tokens=24)


@pytest.fixture(scope="module")
def prompt(real_rag):
    hits = real_rag.search("What is LoRA?")
    llm = real_rag.generator
    return build_prompt("What is LoRA?", hits, template=get_template("few_shot"),
                        count_tokens=llm.count_tokens, budget=1500)


def test_a_fresh_model_reads_the_head_back_and_answers_the_same(real_rag, prompt, tmp_path):
    first = _fresh(real_rag, tmp_path)
    made = first.stream(list(prompt.messages), max_tokens=24, cache_head=prompt.fixed)
    made = [x for x in made][-1]
    assert made.cached_tokens == 0 and len(list(tmp_path.glob("*.kv"))) == 1
    again = _fresh(real_rag, tmp_path)
    read = [x for x in again.stream(list(prompt.messages), max_tokens=24, cache_head=prompt.fixed)][-1]
    plain = _answer(_fresh(real_rag, tmp_path / "unused"), prompt)
    assert read.cached_tokens > 100 and read.cached_tokens < read.prompt_tokens
    assert read.text == made.text == plain.text


def test_a_damaged_state_file_is_prefilled_over_and_saved_again(real_rag, prompt, tmp_path, caplog):
    first = _fresh(real_rag, tmp_path)
    good = [x for x in first.stream(list(prompt.messages), max_tokens=24, cache_head=prompt.fixed)][-1]
    (saved,) = tmp_path.glob("*.kv")
    saved.write_bytes(saved.read_bytes()[: saved.stat().st_size // 3])
    damaged = _fresh(real_rag, tmp_path)
    out = [x for x in damaged.stream(list(prompt.messages), max_tokens=24, cache_head=prompt.fixed)][-1]
    assert out.cached_tokens == 0 and out.text == good.text
    assert "does not read back" in caplog.text
    assert saved.stat().st_size > 0 and len(list(tmp_path.glob("*.kv"))) == 1
    again = [x for x in _fresh(real_rag, tmp_path).stream(list(prompt.messages), max_tokens=24,
                                                          cache_head=prompt.fixed)][-1]
    assert again.cached_tokens > 100 and again.text == good.text


def test_a_state_written_by_another_llama_cpp_build_is_not_read(real_rag, prompt, tmp_path, monkeypatch):
    import llama_cpp

    from rag import prefix_cache

    first = _fresh(real_rag, tmp_path)
    [x for x in first.stream(list(prompt.messages), max_tokens=24, cache_head=prompt.fixed)]
    assert "AVX" in prefix_cache.build_identity()  # the compiled-in CPU features are part of it
    other = llama_cpp.llama_print_system_info().replace(b"AVX512 = 1", b"AVX512 = 0").replace(b"AVX2 = 1",
                                                                                             b"AVX2 = 0")
    monkeypatch.setattr(llama_cpp, "llama_print_system_info", lambda: other)
    out = [x for x in _fresh(real_rag, tmp_path).stream(list(prompt.messages), max_tokens=24,
                                                        cache_head=prompt.fixed)][-1]
    assert out.cached_tokens == 0 and len(list(tmp_path.glob("*.kv"))) == 2
