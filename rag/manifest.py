"""What an index records about how it was built, and the check made on every open.

Any `VectorStore` keeps this manifest beside its vectors: vectors of two embedders must never
mix, and an embedder is known by a fingerprint of its weights and configuration, not its name
(two different models saved as `all-MiniLM-L6-v2` are two embedders).
"""
from __future__ import annotations

from .errors import BackendChanged, StoreError

FORMAT_VERSION = 1
FIX = "rebuild with `rag index --rebuild`"


def embedder_record(embedder) -> dict:
    """The manifest's `embedder` entry for `embedder`."""
    record = {"name": embedder.name, "dim": int(embedder.dim),
              "fingerprint": getattr(embedder, "fingerprint", "") or ""}
    backend = getattr(embedder, "backend_name", "")
    if backend:  # the shipped embedder: which runtime made the vectors, and of which weights
        record.update(backend=backend, weights=getattr(embedder, "weights_fingerprint", "") or "")
    return record


def check_embedder(manifest: dict, where: str, *, embedder=None, name: str | None = None,
                   rebuild: bool = False) -> None:
    """Raise StoreError unless the index in `manifest` was built by `embedder` (or one called
    `name`). Indexes from before fingerprints are checked by name and dimension alone."""
    built = manifest.get("embedder") or {}
    fix = "a full rebuild is needed (`rag index --rebuild`)" if rebuild else FIX
    want = name if embedder is None else embedder.name
    if want and built.get("name") != want:
        raise StoreError(f"{where} was built with embedder {built.get('name')!r}, not {want!r}; {fix}")
    if embedder is None:
        return
    finger = getattr(embedder, "fingerprint", "") or ""
    if built.get("fingerprint") and finger:  # read from the files: no model load needed
        if built["fingerprint"] != finger:
            # the same weights through another backend (an index from before backends were
            # recorded was built by torch, its fingerprint the weights' own)
            weights = getattr(embedder, "weights_fingerprint", "") or ""
            if weights and (built.get("weights") or built["fingerprint"]) == weights:
                old = built.get("backend") or "torch"
                now = getattr(embedder, "backend_name", "") or "another backend"
                raise BackendChanged(f"{where} was built with the {old} embedder backend, not {now}: run "
                                     f"`rag index` to rebuild it (or set RAG_EMBED_BACKEND={old})")
            raise StoreError(f"{where} was built with embedder {built.get('name')!r} whose weights "
                             f"differ from the one given now (fingerprint {built['fingerprint'][:12]} "
                             f"against {finger[:12]}); {fix}")
        return
    if built.get("dim") is not None and int(built["dim"]) != int(embedder.dim):
        raise StoreError(f"{where} holds {built['dim']}-dimensional vectors and embedder "
                         f"{embedder.name!r} makes {embedder.dim}; {fix}")
