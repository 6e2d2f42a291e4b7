"""The contract every `Generator` keeps, whichever backend: the scripted stand-in always, the
llama.cpp model in-process and behind llama-cpp-python's server on the shipped GGUF (e2e).

It streams text pieces and then one `Generation` holding the text and its token counts, it ends
where `stop_when` says when it declares `stop_when`, and what it declares it can take
(`capabilities`) it takes."""
import pytest

from rag.generators import Capabilities, ServerGenerator
from rag.prompts import Message
from rag.stopping import Stop
from rag.testing import ScriptedGenerator
from rag.types import Generation


MESSAGES = [Message("system", "Answer in one short sentence."),
            Message("user", "Do transformers use attention? Answer yes or no, then say why.")]
YES_NO = 'root ::= "yes" | "no"'


@pytest.fixture(params=["scripted", pytest.param("llama.cpp", marks=pytest.mark.e2e),
                        pytest.param("server", marks=pytest.mark.e2e)])
def generator(request):
    """A function giving the generator under test; `script` is what the scripted one says (the
    real ones say what their model says)."""
    if request.param == "scripted":
        return lambda script="Yes, transformers use attention to weigh the words.": ScriptedGenerator([script])
    if request.param == "llama.cpp":
        llm = request.getfixturevalue("real_rag").generator  # the session's model, loaded once
        return lambda script="": llm
    server = ServerGenerator(request.getfixturevalue("llm_server"), n_ctx=2048)
    return lambda script="": server


def _run(gen, **options) -> tuple[list[str], Generation]:
    items = list(gen.stream(MESSAGES, max_tokens=16, **options))
    assert items and isinstance(items[-1], Generation)
    assert all(isinstance(x, str) and x for x in items[:-1])
    return items[:-1], items[-1]


def test_it_describes_itself(generator):
    gen = generator()
    gen.warm_up()
    assert isinstance(gen.name, str) and gen.name
    assert gen.n_ctx > 0 and gen.count_tokens(MESSAGES) > 0
    assert gen.n_params is None or gen.n_params > 0
    assert isinstance(gen.capabilities, Capabilities)


def test_it_streams_pieces_then_one_generation_with_its_counts(generator):
    pieces, result = _run(generator())
    assert pieces and result.text == "".join(pieces)
    assert result.prompt_tokens > 0 and 0 < result.completion_tokens <= 16
    assert result.cached_tokens >= 0 and 0 <= result.ttft <= result.total
    assert result.finish_reason in ("stop", "length") and result.stopped_by == ""


def test_it_ends_where_stop_when_says(generator):
    gen = generator()
    if not gen.capabilities.stop_when:
        pytest.skip(f"{gen.name} declares no stop_when")
    seen = []

    def after_the_first_piece(text: str) -> Stop | None:
        seen.append(text)
        return Stop("contract", max(1, len(text) - 1))

    pieces, result = _run(gen, stop_when=after_the_first_piece)
    assert len(pieces) == 1 and seen == pieces  # asked after each piece, and nothing after the stop
    assert result.text == pieces[0][:max(1, len(pieces[0]) - 1)]
    assert result.stopped_by == "contract" and result.finish_reason == "stop"
    assert 1 <= result.completion_tokens <= 16


def test_a_declared_grammar_is_followed(generator):
    gen = generator("yes")
    if not gen.capabilities.grammar:
        pytest.skip(f"{gen.name} declares no grammar")
    _, result = _run(gen, grammar=YES_NO)
    assert result.text in ("yes", "no")


def test_a_declared_cache_head_is_taken(generator):
    gen = generator()
    if not gen.capabilities.cache_head:
        pytest.skip(f"{gen.name} declares no cache_head")
    first = _run(gen, cache_head=1)[1]
    again = _run(gen, cache_head=1)[1]
    assert again.text == first.text  # the fixed head read back answers as the one evaluated
