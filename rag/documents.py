"""The documents of one index as people manage them: what is indexed (chunks, type, size, when),
taking one out (its chunks leave the index, its file goes to a trash folder, never deleted) and
re-scanning the corpus folder after it was edited by hand.

These work on a `RAG`, whose settings name the corpus folder and whose store holds the index:
the default one, or a collection's (see `rag.collections`).
"""
from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from . import index as index_mod
from .errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DocumentInfo:
    """One indexed document: its id (the path under the corpus folder), type, size in bytes,
    chunk count and when it was indexed (ISO time)."""

    source: str
    type: str
    size: int
    n_chunks: int
    indexed: str


def list_documents(rag) -> list[DocumentInfo]:
    """The documents of `rag`'s live index, by name ([] when it has none yet)."""
    manifest = rag.vector_store.manifest() or {}
    out = []
    for source, d in sorted((manifest.get("documents") or {}).items()):
        kind = Path(source).suffix.lower().lstrip(".") or "?"
        out.append(DocumentInfo(source, kind, int(d.get("size", 0)), int(d.get("n_chunks", 0)),
                                # records written before per-document times: the version's time
                                str(d.get("indexed") or manifest.get("created") or "")))
    return out


def remove_document(rag, source: str, *, trash: str | Path, lock_wait: float = 0.0) -> Path | None:
    """Take `source` out of `rag`'s index and move its file from the corpus folder to a new
    dated folder under `trash`; where it went (None when the file was already gone from the
    folder). Only documents of the index can be named, and only files under the corpus folder
    are moved. If the index cannot be changed (another build holds it), the file is put back."""
    known = {d.source for d in list_documents(rag)}
    if not isinstance(source, str) or source not in known:
        raise ConfigError(f"there is no document named {str(source)[:200]!r} in this index")
    corpus = Path(rag.settings.corpus).resolve()
    path = (corpus / source).resolve()
    if not path.is_relative_to(corpus) or path == corpus:
        raise ConfigError(f"{source[:200]!r} is not a file of the corpus folder")
    dest = None
    if path.is_file():
        dest = trash_path(Path(trash), path.relative_to(corpus))
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(path), str(dest))
    try:
        index_mod.remove([source], store=rag.vector_store, embedder=rag.embedder, lock_wait=lock_wait)
    except BaseException:
        if dest is not None and not path.exists():
            shutil.move(str(dest), str(path))
        raise
    log.info("removed %s from %s (file moved to %s)", source, rag.vector_store.location, dest)
    return dest


def rescan(rag, *, progress: bool | str = False, lock_wait: float = 0.0) -> index_mod.IndexReport:
    """Bring `rag`'s index in line with its corpus folder: new and changed files indexed,
    files no longer there removed."""
    corpus = Path(rag.settings.corpus)
    if not corpus.is_dir():
        raise ConfigError(f"the corpus folder {corpus} does not exist")
    return rag.index([corpus], prune=True, progress=progress, lock_wait=lock_wait)


def trash_path(trash: Path, rel: Path) -> Path:
    """A new place for `rel` under `trash`: a folder named by the time (and a number, when that
    one is taken), so nothing moved there replaces what is already there."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    dest, n = trash / stamp / rel, 1
    while dest.exists() or os.path.lexists(dest):
        n += 1
        dest = trash / f"{stamp}-{n}" / rel
    return dest
