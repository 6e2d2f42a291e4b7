"""Vector stores: one backend a module, each a `protocols.VectorStore`, and the factory that
makes the one the `store` setting names:

    faiss.py   FAISS over versioned folders on local disk (the default)
    milvus.py  Milvus Lite (a local .db file) or a Milvus server
    memory.py  in memory, for tests (`rag.testing` ships it)
    exact.py   the exact inner-product search FAISS's filtered search and the memory store share

`open_store` is the one place that knows which backend each name means and how its location
follows from `index`. Backends are imported when chosen: a FAISS user never loads pymilvus,
and the reverse."""
from __future__ import annotations

from pathlib import Path

from ..config import Settings


def open_store(settings: Settings):
    """The `VectorStore` of `settings`: FAISS versions in the `index` folder, or Milvus
    (`milvus_uri`, by default a Milvus Lite file `<index>/milvus.db`). Cheap: nothing is read
    until the store is opened or asked for its manifest."""
    if settings.store == "milvus":
        from .milvus import MilvusStore

        uri = settings.milvus_uri or str(Path(settings.index) / "milvus.db")
        if "://" not in uri:  # Milvus Lite creates its file, not the folder holding it
            Path(uri).parent.mkdir(parents=True, exist_ok=True)
        return MilvusStore(uri, token=settings.milvus_token, name=settings.milvus_collection)
    from .faiss import FaissStore

    return FaissStore(settings.index, ann_threshold=settings.ann_threshold)
