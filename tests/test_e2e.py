"""End to end with the real default models: MiniLM embeddings, FAISS, SmolLM2-135M GGUF."""
import json
import os
import re
import subprocess
import sys

import pytest

from rag import Answer, Turn
from rag.errors import QueryError
from rag.prompts import ABSTAIN_TEXT
from rag.text import normalise

pytestmark = pytest.mark.e2e
LORA_DOC = "deep-learning-and-choosing-a-model.txt"


def test_lora_question_retrieves_and_cites_the_lora_notes(real_rag):
    answer = real_rag.ask("What is LoRA?")
    assert answer.hits[0].chunk.source == LORA_DOC
    assert "LoRA" in answer.hits[0].chunk.text
    assert not answer.abstained
    assert answer.text.strip()
    assert LORA_DOC in {c.source for c in answer.citations}
    assert answer.usage.prompt_tokens > 100 and answer.usage.completion_tokens > 0
    assert answer.timings.total >= answer.timings.retrieve > 0
    assert answer.timings.prefill > 0


@pytest.mark.parametrize("template", ["zero_shot", "few_shot", "cot", "extract"])
def test_each_template_answers_autoencoders(real_rag, template):
    answer = real_rag.ask("What are autoencoders used for?", template=template)
    assert answer.template == template
    top = {h.chunk.source for h in answer.hits[:3]}
    assert top & {LORA_DOC, "intro-to-deep-learning-clarke.txt"}
    assert any("utoencoder" in h.chunk.text for h in answer.hits)
    assert answer.text.strip()
    if template == "cot" and not answer.abstained:
        assert "Answer:" not in answer.text
    if template == "extract" and not answer.abstained:
        # the answer is a sentence quoted whole from a retrieved passage, then its citation
        quoted = normalise(re.fullmatch(r"(.+?) \[\d+\]\.?", answer.text).group(1))
        assert any(quoted in normalise(h.chunk.text) for h in answer.hits)
        assert answer.citations


def test_stream_yields_pieces_then_the_answer(real_rag):
    stream = real_rag.stream("What is a transformer network?")
    pieces = list(stream)
    assert isinstance(stream.answer, Answer)
    assert pieces and all(isinstance(p, str) for p in pieces)
    # only the checked answer is streamed: no sentence a reader sees is later taken back
    assert "".join(pieces) == stream.answer.text


def test_fixed_prefix_is_reused_from_the_kv_cache(real_rag):
    real_rag.ask("What is transfer learning?")
    second = real_rag.ask("What are GANs?")
    # the system text and worked examples are identical between questions
    assert second.usage.cached_tokens > 200


def test_an_answer_does_not_depend_on_the_question_before(real_rag):
    # Asked twice in a row, this question once got "None." and then "Google [4]": the second
    # prefill reused the whole cached prompt and recomputed only its last token.
    q = "Which company mostly made TensorFlow?"
    first = real_rag.ask(q)
    again = real_rag.ask(q)
    real_rag.ask("What are GANs?")
    after_another = real_rag.ask(q)
    assert first.text == again.text == after_another.text
    assert again.usage.cached_tokens > 200  # the fixed prefix is still served from the cache


def test_irrelevant_question_abstains_without_the_model(real_rag):
    answer = real_rag.ask("What is the boiling point of tungsten?")
    assert answer.abstained and answer.citations == [] and answer.text == ABSTAIN_TEXT
    assert answer.usage.prompt_tokens == 0  # decided by the retrieval gate: no LLM call
    # turned away by the gate: "tungsten" is a rare word no note uses (else the cosine)
    assert answer.abstain_code == "unknown_names" and "'tungsten'" in answer.abstain_reason
    # near-topic, so the cosine gate alone would let it through; the notes never name Mamba
    near = real_rag.ask("How does the Mamba state-space model differ from transformers?")
    assert near.abstained and near.usage.prompt_tokens == 0 and "'Mamba'" in near.abstain_reason
    assert max(h.dense for h in near.hits) >= real_rag.settings.min_score
    # an acronym MiniLM embeds poorly still reaches the model when the passages spell it out
    rlhf = real_rag.ask("What does RLHF stand for?")
    assert rlhf.usage.prompt_tokens > 0


def test_follow_up_uses_the_conversation(real_rag):
    history = [Turn("What are transformer networks?", "Networks built on self-attention [1].")]
    answer = real_rag.ask("What are its disadvantages?", history=history)
    assert any("ransformer" in h.chunk.text for h in answer.hits[:2])


def test_bad_questions(real_rag):
    with pytest.raises(QueryError, match="empty"):
        real_rag.ask("   ")
    with pytest.raises(QueryError, match="characters long"):
        real_rag.ask("why? " * 20_000)


def test_cli_ask_json(real_rag):
    env = {**os.environ, "RAG_INDEX": real_rag.settings.index, "RAG_N_CTX": "2048"}
    out = subprocess.run([sys.executable, "-m", "rag", "ask", "What is LoRA?", "--json"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert {"answer", "abstained", "abstain_reason", "support", "relevance", "citations", "hits", "timings",
            "usage"} <= set(d)
    assert d["citations"] and {"source", "chunk_id", "score"} <= set(d["citations"][0])
    assert LORA_DOC in {c["source"] for c in d["citations"]}
    assert d["hits"][0]["source"] == LORA_DOC


def test_cli_ask_into_a_pipe_prints_the_checked_answer_alone(real_rag):
    env = {**os.environ, "RAG_INDEX": real_rag.settings.index, "RAG_N_CTX": "2048"}
    q = ["What is NEAT an example of?"]
    plain = subprocess.run([sys.executable, "-m", "rag", "ask", *q], capture_output=True, text=True, env=env,
                           timeout=300)
    d = json.loads(subprocess.run([sys.executable, "-m", "rag", "ask", *q, "--json"], capture_output=True,
                                  text=True, env=env, timeout=300).stdout)
    assert plain.returncode == 0, plain.stderr
    # not a terminal: no streamed draft, no second "checked" copy, no escape codes
    assert plain.stdout.startswith(d["answer"] + "\n") and "\x1b" not in plain.stdout
    assert "Checked against" not in plain.stdout


def test_completion_tokens_never_exceed_max_tokens(real_rag):
    answer = real_rag.ask("What are autoencoders used for?", max_tokens=16)
    assert 0 < answer.usage.completion_tokens <= 16
    assert not answer.text.rstrip(" .[]0123456789").endswith(("-", ","))  # cut at a word or sentence end


def test_module_level_ask_builds_the_index_on_first_use(tmp_path, monkeypatch):
    # a fresh process whose default index is missing: ask() builds it from corpus/ first
    code = ("from rag import ask; a = ask('What are autoencoders used for?'); "
            "print(a.text); print('HITS', [h.chunk.source for h in a.hits])")
    env = {**os.environ, "RAG_INDEX": str(tmp_path / "default"), "RAG_N_CTX": "2048"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "HITS" in out.stdout and out.stdout.split("HITS")[0].strip()
    assert (tmp_path / "default" / "CURRENT").is_file()


def test_warm_up_leaves_nothing_for_the_first_question(real_rag):
    assert real_rag.warm_up() is real_rag
    retriever = real_rag._get_retriever()
    assert retriever._bm25 is not None, "BM25 would be built by the first question"
    assert real_rag.embedder._query is not None, "the question embedder would load on the first question"
    assert real_rag.llm._llama is not None
