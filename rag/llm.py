"""The in-process llama.cpp generator's former home; it lives in `rag.generators.llamacpp`."""
from .generators.llamacpp import CHATML, LLM, default_threads

__all__ = ["CHATML", "LLM", "default_threads"]
