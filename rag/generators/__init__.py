"""Generators: the chat model a `RAG` answers with, one backend per module behind the
`protocols.Generator` protocol, chosen by the `llm_url` setting:

- `llamacpp.LLM`: a GGUF in-process through llama-cpp-python (`llm_url` unset);
- `server.ServerGenerator`: any server speaking OpenAI's chat-completions protocol (`llm_url`);
- `rag.testing.ScriptedGenerator`: scripted outputs, for tests.

Each declares what its `stream` takes beyond the protocol (`types.Capabilities`: a grammar,
`stop_when`, `cache_head`), and all stream through the one loop of `streaming.Decoding`.
"""
from __future__ import annotations

from ..config import Settings
from ..prefix_cache import FOLDER as PREFIX_FOLDER
from ..types import Capabilities
from .llamacpp import LLM
from .server import ServerError, ServerGenerator
from .streaming import Decoding

__all__ = ["Capabilities", "Decoding", "LLM", "ServerError", "ServerGenerator", "from_settings", "local"]


def from_settings(settings: Settings, *, model_path: str):
    """The generator the settings ask for: the LLM server at `llm_url` when set, else the GGUF at
    `model_path` in-process. Nothing is loaded or sent until its first use."""
    s = settings
    if s.llm_url:
        return ServerGenerator(s.llm_url, api_key=s.llm_api_key, model=s.llm_model, timeout=s.llm_timeout,
                               n_ctx=s.n_ctx, seed=s.seed)
    return local(model_path, s)


def local(path: str, settings: Settings) -> LLM:
    """The GGUF at `path`, in-process, as the settings configure llama.cpp."""
    s = settings
    return LLM(path, n_ctx=s.n_ctx, n_threads=s.n_threads, n_gpu_layers=s.n_gpu_layers, seed=s.seed,
               prefix_cache=PREFIX_FOLDER if s.save_prefix else None)
