"""The Milvus store's old address: it lives in `rag.stores.milvus` now. Kept so that code written
against `rag.milvus_store` (and the docs that show it) keeps working."""
from .stores.milvus import MilvusStore, MilvusVersion, MilvusWriter, close

__all__ = ["MilvusStore", "MilvusVersion", "MilvusWriter", "close"]
