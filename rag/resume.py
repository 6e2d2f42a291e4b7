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
- `pages/<key>.jsonl`: the pages of a PDF being read, one line each, appended as each page is
  read (same key as its `reads/` record, the sha256 that of the bytes read), so that a build
  killed on page 1,900 of a long manual reads on from there; gone once the document's record is
  written. A line cut by the kill ends what is taken up.
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
        """Keep `source`'s chunks; the pages kept while it was read are then spent."""
        path = self._read_path(source, sha256, reading)
        _write_whole(path, json.dumps({"source": source, "title": title,
                                       "chunks": [c.to_dict() for c in chunks]}).encode("utf-8"))
        self.page_log(source, sha256, reading).discard()

    def page_log(self, source: str, sha256: str, reading: dict) -> "PageLog":
        """Where the pages of `source` (these bytes, read under `reading`) are kept as it is read."""
        name = self._read_path(source, sha256, reading).stem
        return PageLog(self.folder / "pages" / f"{name}.jsonl")

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


class PageLog:
    """The pages of one document read so far, one JSON line each (`readers.pdf.read` says which
    pages it keeps). Lines are appended as pages are read, without a sync: a SIGKILL loses none
    of what was written, and a line it cut, with anything after it, is ignored and cut off."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fh = None

    def pages(self) -> list[tuple[int, list]]:
        """(number, blocks) of each page kept, in order; the file cut back to its whole lines,
        so that pages added from here follow them."""
        out: list[tuple[int, list]] = []
        try:
            data = self.path.read_bytes()
        except OSError:
            return out
        whole = 0
        for line in data.splitlines(keepends=True):
            try:
                if not line.endswith(b"\n"):
                    raise ValueError("cut by the kill")
                d = json.loads(line)
                out.append((int(d["page"]), list(d["blocks"])))
            except (ValueError, KeyError, TypeError):
                break
            whole += len(line)
        if whole < len(data):
            try:
                os.truncate(self.path, whole)
            except OSError:
                return []
        return out

    def add(self, number: int, blocks: list) -> None:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("a", encoding="utf-8")
        self._fh.write(json.dumps({"page": number, "blocks": blocks}) + "\n")
        self._fh.flush()  # in the kernel's hands: a kill of this process cannot lose it

    def discard(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        self.path.unlink(missing_ok=True)


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
