"""Local, private question answering over your own documents.

    from rag import ask
    answer = ask("What is LoRA?")
    print(answer.text, [c.source for c in answer.citations])

Components plug in through `rag.protocols` (`Embedder`, `Generator`, `VectorStore`);
`rag.testing` has stand-ins that need no model.
"""
from .config import Settings
from .errors import RagError
from .pipeline import RAG, AnswerStream, ask
from .protocols import Embedder, Generator, VectorStore
from .types import Answer, Chunk, Citation, Hit, SentenceSupport, Turn

__all__ = ["ask", "RAG", "AnswerStream", "Settings", "Answer", "Citation", "SentenceSupport", "Hit",
           "Chunk", "Turn", "RagError", "Embedder", "Generator", "VectorStore"]
__version__ = "0.1.0"
