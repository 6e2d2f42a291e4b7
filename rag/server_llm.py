"""The LLM-server generator's former home; it lives in `rag.generators.server`."""
from .generators.server import ServerError, ServerGenerator

__all__ = ["ServerError", "ServerGenerator"]
