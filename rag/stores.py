"""The vector store the `store` setting names, made from the settings: one place that knows
which backend each name means and how its location follows from `index`.

Backends are imported when chosen: a FAISS user never loads pymilvus, and the reverse."""
from __future__ import annotations

from pathlib import Path

from .config import Settings


def open_store(settings: Settings):
    """The `VectorStore` of `settings`: FAISS versions in the `index` folder, or Milvus
    (`milvus_uri`, by default a Milvus Lite file `<index>/milvus.db`). Cheap: nothing is read
    until the store is opened or asked for its manifest."""
    if settings.store == "milvus":
        from .milvus_store import MilvusStore

        uri = settings.milvus_uri or str(Path(settings.index) / "milvus.db")
        if "://" not in uri:  # Milvus Lite creates its file, not the folder holding it
            Path(uri).parent.mkdir(parents=True, exist_ok=True)
        return MilvusStore(uri, token=settings.milvus_token, name=settings.milvus_collection)
    from .faiss_store import FaissStore

    return FaissStore(settings.index, ann_threshold=settings.ann_threshold)
