"""One settings -> flags table (rag.flags) feeds both argument parsers: `rag` and `python app.py`
declare a setting's flag alike and read it back into the same `Settings` override."""
from rag.cli import build_parser
from rag.flags import FLAGS, MODEL_SETTINGS, overrides
from rag.web.launch import parse_args

VALUES = {"n_gpu_layers": "3", "n_threads": "2", "n_ctx": "512", "store": "milvus", "top_k": "5"}


def _argv(settings):
    out = []
    for name in settings:
        out += [FLAGS[name].flag, VALUES.get(name, f"/x/{name}")]
    return out


def test_both_parsers_take_the_model_flags_and_top_k_alike():
    shared = (*MODEL_SETTINGS, "top_k")
    chat = overrides(parse_args(_argv(shared)), shared)
    cli = overrides(build_parser().parse_args(["ask", "q?", *_argv(shared)]), shared)
    assert chat == cli
    assert chat["n_threads"] == 2 and chat["store"] == "milvus" and chat["index"] == "/x/index"


def test_a_flag_not_given_is_no_override():
    assert set(overrides(parse_args([]), FLAGS).values()) == {None}
    # a flag a command does not have reads as not given
    assert overrides(build_parser().parse_args(["ask", "q?"]), ["corpus", "chunk_size"]) == \
        {"corpus": None, "chunk_size": None}
