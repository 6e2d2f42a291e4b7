"""The FAISS store's old address: it lives in `rag.stores.faiss` now. Kept so that code written
against `rag.faiss_store` (and the docs that show it) keeps working."""
from .stores.faiss import (BM25_DIR, FILES, FaissStore, FaissVersion, FaissWriter, build_faiss,
                           current_version, exact_search, ivf_params, open_index, read_manifest)

__all__ = ["FaissStore", "FaissVersion", "FaissWriter", "open_index", "read_manifest", "current_version",
           "build_faiss", "ivf_params", "exact_search", "FILES", "BM25_DIR"]
