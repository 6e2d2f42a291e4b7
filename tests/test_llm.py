"""LLM's KV-cache reuse, against a stand-in for llama_cpp.Llama that records what it evaluates."""
import numpy as np

from rag.generators.llamacpp import LLM


class _Ctx:
    def __init__(self, can_cut: bool = True):
        self.can_cut = can_cut

    def kv_cache_seq_rm(self, seq, start, end):
        return self.can_cut


class _Llama:
    def __init__(self, can_cut: bool = True):
        self.input_ids = np.zeros(64, dtype=np.int64)
        self.n_tokens = 0
        self._ctx = _Ctx(can_cut)
        self.pieces: list[list[int]] = []

    def eval(self, tokens):
        self.input_ids[self.n_tokens:self.n_tokens + len(tokens)] = tokens
        self.n_tokens += len(tokens)
        self.pieces.append(list(tokens))

    def reset(self):
        self.n_tokens = 0

    def generate(self, rest, answer):
        """What create_completion does after the head: the last message, then the answer."""
        self.eval(rest)
        for t in answer:
            self.eval([t])


def _llm(llama) -> LLM:
    llm = LLM("unused.gguf")
    llm._llama = llama
    return llm


def test_the_cache_is_reused_up_to_a_piece_the_last_call_prefilled():
    fake = _Llama()
    llm = _llm(fake)
    ids = list(range(1, 11))  # system 1-3, example 4-6, question 7-10
    assert llm._prefill_head(ids, [3, 6]) == 0
    assert fake.pieces == [[1, 2, 3], [4, 5, 6]]  # message by message
    fake.generate(ids[6:], [99, 98])
    # the same question again: the whole prompt is cached, but only the head is reused
    fake.pieces.clear()
    assert llm._prefill_head(ids, [3, 6]) == 6 and fake.n_tokens == 6 and fake.pieces == []
    fake.generate(ids[6:], [99, 98])
    # a follow-up carries the last question as history: it went in with the generation prompt
    # and its answer a token at a time, so it is prefilled again as a piece of its own
    follow = ids + [97, 96, 50, 51]
    fake.pieces.clear()
    assert llm._prefill_head(follow, [3, 6, 10, 12]) == 6
    assert fake.pieces == [[7, 8, 9, 10], [97, 96]]
    # a different head shares nothing past the first piece
    fake.generate(follow[12:], [1])
    fake.pieces.clear()
    assert llm._prefill_head([1, 2, 3, 40, 41, 42, 43], [3, 5]) == 3 and fake.pieces == [[40, 41]]


def test_a_cache_that_cannot_be_cut_is_prefilled_afresh():
    fake = _Llama(can_cut=False)
    llm = _llm(fake)
    ids = list(range(1, 11))
    llm._prefill_head(ids, [3, 6])
    fake.generate(ids[6:], [99])
    fake.pieces.clear()
    assert llm._prefill_head(ids, [3, 6]) == 0
    assert fake.pieces == [[1, 2, 3], [4, 5, 6]]


class _Saved:
    """A stand-in for PrefixCache: states by their token ids, checked as they are saved."""

    def __init__(self):
        self.states: set[tuple[int, ...]] = set()

    def load(self, llama, ids):
        if tuple(ids) not in self.states:
            return False
        llama.input_ids[:len(ids)] = ids
        llama.n_tokens = len(ids)
        return True

    def save(self, llama, ids):
        # saved right after the head is evaluated, before any user text joins the cache
        assert llama.n_tokens == len(ids) and llama.input_ids[:len(ids)].tolist() == ids
        self.states.add(tuple(ids))


def test_a_fresh_model_reads_the_fixed_head_back_instead_of_prefilling_it():
    saved = _Saved()
    ids = list(range(1, 11))  # system 1-3, example 4-6, question 7-10
    first = _llm(_Llama())
    first._prefix = saved
    assert first._prefill_head(ids, [3, 6], fixed=6) == 0 and saved.states == {tuple(range(1, 7))}
    fresh = _Llama()
    second = _llm(fresh)
    second._prefix = saved
    assert second._prefill_head(ids, [3, 6], fixed=6) == 6 and fresh.pieces == []
    # a conversation's earlier turn comes after the fixed head: it is prefilled, never saved
    fresh = _Llama()
    third = _llm(fresh)
    third._prefix = saved
    follow = ids + [97, 96, 50, 51]
    assert third._prefill_head(follow, [3, 6, 10, 12], fixed=6) == 6
    assert fresh.pieces == [[7, 8, 9, 10], [97, 96]] and len(saved.states) == 1
    # without a fixed head nothing is read or written
    fresh = _Llama()
    fourth = _llm(fresh)
    fourth._prefix = saved
    assert fourth._prefill_head(ids, [3, 6]) == 0 and fresh.pieces == [[1, 2, 3], [4, 5, 6]]
