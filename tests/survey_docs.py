"""Two small documents and a RAG of stand-ins over them (rag.testing: no model loads), for the
adapters' tests of whole-document and whole-collection answers (rag.survey needs no model)."""
from pathlib import Path

OWLS = """# Owls

Owls hunt at night and sleep by day in hollow trees.

## Kinds

The kinds of owls in these notes:

- Barn owl
- Snowy owl
- Tawny owl
"""
BATS = "# Bats\n\nBats hunt insects at dusk. Some large owls eat bats when they can.\n"
MODEL_ANSWER = "Owls hunt at night [1]."


def write_docs(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "owls.md").write_text(OWLS, encoding="utf-8")
    (folder / "bats.md").write_text(BATS, encoding="utf-8")
    return folder


def survey_rag(folder: Path, **settings):
    """A RAG over owls.md and bats.md in `folder` with a hashed-words embedder, an in-memory
    store and a scripted model (which answers MODEL_ANSWER to an ordinary question)."""
    from rag import RAG
    from rag.testing import HashEmbedder, MemoryStore, ScriptedGenerator

    write_docs(folder)
    store = MemoryStore()

    def make():
        return RAG(embedder=HashEmbedder(dim=512), generator=ScriptedGenerator([MODEL_ANSWER] * 20), store=store,
                   corpus=str(folder), guards="small", checks_off="relevance", min_score=0.05, **settings)

    make().index()
    return make()
