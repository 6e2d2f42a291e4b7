"""What a build that did not finish leaves for the next one: the chunks of each document it
read and the vectors of each batch it embedded, so that a build killed after N of M files
resumes without reading or embedding those N again.

Both live in `<index>/.embedded/<embedder fingerprint>/` beside the committed versions, never in
them: the live version is untouched until a build commits (the store's own atomic switch), and
the folder goes once one has. Every file is written whole or not at all (a temporary name, then
a rename), so a kill mid-write leaves at worst a file that is ignored.

- `reads/<key>.json`: a document's chunks, keyed by its path, its content's sha256 and the
  settings its reading depended on (chunker, reading limits, OCR); a changed file or setting
  finds no record and is read again. `rag index --rebuild` takes nothing up.
- `<time>.npz`: one embedded batch, vectors keyed by a hash of each chunk's embedded text.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

from .types import Chunk


def _key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class Checkpoint:
    """The leftovers of unfinished builds in `folder`, for the embedder whose fingerprint is
    `fingerprint` (vectors of another embedder are never taken up)."""

    def __init__(self, folder: Path, fingerprint: str) -> None:
        self.folder = Path(folder) / (fingerprint[:16] or "unnamed")
        self._known: dict[str, np.ndarray] | None = None

    # ---------------------------------------------------------------- documents read

    def _read_path(self, source: str, sha256: str, reading: dict) -> Path:
        return self.folder / "reads" / f"{_key(json.dumps([source, sha256, reading], sort_keys=True))}.json"

    def read(self, source: str, sha256: str, reading: dict) -> tuple[str, list[Chunk]] | None:
        """(title, chunks) of `source` as a killed build read it, None when it did not."""
        try:
            d = json.loads(self._read_path(source, sha256, reading).read_text(encoding="utf-8"))
            return d["title"], [Chunk.from_dict(c) for c in d["chunks"]]
        except (OSError, ValueError, KeyError, TypeError):  # none, or cut by the kill: read again
            return None

    def save_read(self, source: str, sha256: str, reading: dict, title: str, chunks: list[Chunk]) -> None:
        path = self._read_path(source, sha256, reading)
        _write_whole(path, json.dumps({"source": source, "title": title,
                                       "chunks": [c.to_dict() for c in chunks]}).encode("utf-8"))

    # ---------------------------------------------------------------- vectors embedded

    def _load(self) -> dict[str, np.ndarray]:
        if self._known is None:
            self._known = {}
            for f in sorted(self.folder.glob("[0-9]*.npz")) if self.folder.is_dir() else []:
                try:
                    with np.load(f, allow_pickle=False) as z:
                        self._known.update(zip(z["keys"].tolist(), z["vectors"]))
                except Exception:  # noqa: BLE001 - a file cut by the kill: its batch is embedded again
                    continue
        return self._known

    def vectors(self, texts: list[str], dim: int) -> list[np.ndarray | None]:
        """The saved vector of each text, None for one no killed build embedded."""
        known = self._load()
        out = []
        for t in texts:
            v = known.get(_key(t))
            out.append(v if v is not None and v.shape == (dim,) else None)
        return out

    def save(self, texts: list[str], vectors) -> None:
        buf = _npz(keys=np.array([_key(t) for t in texts]), vectors=vectors)
        _write_whole(self.folder / f"{time.time_ns()}.npz", buf)

    def clear(self) -> None:
        discard(self.folder.parent)


def discard(folder: Path) -> None:
    """Remove everything unfinished builds left in `folder`, for every embedder."""
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


def _npz(**arrays) -> bytes:
    import io

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _write_whole(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp")  # not a record until it is whole
    with tmp.open("wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
