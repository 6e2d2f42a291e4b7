"""Local, private question answering over your own documents.

    from rag import ask
    answer = ask("What is LoRA?")
    print(answer.text, [c.source for c in answer.citations])
"""
from .config import Settings
from .errors import RagError
from .pipeline import RAG, ask
from .types import Answer, Chunk, Citation, Hit, Turn

__all__ = ["ask", "RAG", "Settings", "Answer", "Citation", "Hit", "Chunk", "Turn", "RagError"]
__version__ = "0.1.0"
