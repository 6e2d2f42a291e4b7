"""The default `VectorStore`: FAISS over versioned folders on local disk.

Layout of an index folder (default `indexes/default/`)::

    CURRENT          name of the live version folder, replaced atomically
    v000007/         manifest.json, chunks.jsonl, vectors.npy, faiss.index, bm25/ (the BM25
                     index of its chunks, memory-mapped on load; versions made before it had
                     none and get theirs built in memory)
    .lock            held while a build writes

A writer builds a new version folder next to the live one, fsyncs it, then flips CURRENT. A
build killed at any moment leaves the previous version loadable; readers never see a half
written folder. The manifest lists every file with its size and checksum and is checked on load.
"""
from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np

from ..config import DEFAULT_ANN_THRESHOLD
from ..errors import IndexDamaged, IndexLocked, IndexMissing, StoreError
from ..ingest import file_sha256 as _sha256
from ..manifest import FIX, FORMAT_VERSION, check_embedder
from ..types import Chunk
from .exact import exact_search

log = logging.getLogger(__name__)

FILES = ("chunks.jsonl", "vectors.npy", "faiss.index")
BM25_DIR = "bm25"


class FaissVersion:
    """One loaded, verified index version: chunks, their vectors and the FAISS index over them."""

    def __init__(self, path: Path, manifest: dict, chunks: list[Chunk], vectors: np.ndarray, faiss_index):
        self.path = path
        self.version = path.name
        self.manifest = manifest
        self.chunks = chunks
        self._vectors = vectors
        self.faiss_index = faiss_index

    def __len__(self) -> int:
        return len(self.chunks)

    @property
    def embedder_name(self) -> str:
        return self.manifest["embedder"]["name"]

    def saved_bm25(self):
        """The BM25 index written with this version (checked on open), memory-mapped; None when
        the version has none (made before it was saved) or one made with other parameters."""
        from ..bm25 import BM25, bm25_params

        saved = self.manifest.get("bm25")
        if not saved or not (self.path / BM25_DIR).is_dir():
            return None
        if saved.get("params") != bm25_params():
            log.info("%s: saved BM25 was made with %s, not %s; building it in memory", self.path,
                     saved.get("params"), bm25_params())
            return None
        try:
            return BM25(saved=self.path / BM25_DIR)
        except (OSError, ValueError, KeyError) as e:
            raise IndexDamaged(f"{self.path / BM25_DIR} cannot be read ({type(e).__name__}); {FIX}") from e

    def vectors(self, rows=None) -> np.ndarray:
        """The stored unit vectors of `rows` (all when None)."""
        return self._vectors if rows is None else self._vectors[rows]

    def search(self, query_vecs: np.ndarray, k: int, *, source: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Raw FAISS search: (scores, row ids), -1 where fewer than k rows exist. With `source`,
        only rows of documents whose path starts with it, scored exactly."""
        k = max(1, min(k, len(self.chunks)))
        q = np.ascontiguousarray(query_vecs, dtype=np.float32)
        if source is None:
            return self.faiss_index.search(q, k)
        return exact_search(self._vectors, [c.source.startswith(source) for c in self.chunks], q, k)


class FaissStore:
    """Versions of one index folder. Cheap to construct; nothing is read until `open`."""

    def __init__(self, path: str | Path, *, ann_threshold: int = DEFAULT_ANN_THRESHOLD, keep: int = 2) -> None:
        self.path = Path(path)
        self.ann_threshold = ann_threshold
        self.keep = keep

    @property
    def location(self) -> str:
        return str(self.path)

    def live(self) -> str | None:
        v = current_version(self.path)
        return None if v is None else v.name

    def open(self, *, embedder=None) -> FaissVersion:
        return open_index(self.path, embedder=embedder)

    def manifest(self) -> dict | None:
        return read_manifest(self.path)

    def intact_previous(self) -> Path | None:
        """The newest version older than the live one that loads and verifies, if any."""
        live = current_version(self.path)
        older = sorted((p for p in self.path.glob("v[0-9]*") if p.is_dir() and (live is None or p.name < live.name)),
                       reverse=True)
        for version in older:
            try:
                _open_version(self.path, version, None, None, False)
                return version
            except StoreError:
                continue
        return None

    def rollback(self) -> str:
        """Make the newest intact older version live again (after the live one was damaged)."""
        with _Lock(self.path, 0):
            version = self.intact_previous()
            if version is None:
                raise StoreError(f"{self.path} has no intact older version; rebuild with `rag index --rebuild`")
            cur_tmp = self.path / ".CURRENT.tmp"
            _write_file(cur_tmp, version.name.encode())
            os.replace(cur_tmp, self.path / "CURRENT")
            _fsync_dir(self.path)
            log.warning("index %s rolled back to %s", self.path, version.name)
            return version.name

    def writer(self, *, lock_wait: float = 0.0) -> "FaissWriter":
        return FaissWriter(self, lock_wait)


class FaissWriter:
    """The next version, started from the live one: remove and add documents' chunks, then commit.

    Used as a context manager, it holds the folder's lock from `__enter__` to `__exit__`; nothing
    is visible to readers before `commit`, and a writer left without committing changes nothing.
    """

    def __init__(self, store: FaissStore, lock_wait: float) -> None:
        self.store = store
        self._lock = _Lock(store.path, lock_wait)
        self.base: FaissVersion | None = None
        self._rows: dict[str, list[int]] = {}
        self._new_chunks: list[Chunk] = []
        self._new_vectors: list[np.ndarray] = []

    def __enter__(self) -> "FaissWriter":
        self._lock.__enter__()
        try:
            _clean(self.store.path, self.store.keep)
        except BaseException:
            self._lock.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._lock.__exit__()

    def start(self, *, fresh: bool, embedder=None) -> FaissVersion | None:
        """Begin from the live version (None when there is none, or with `fresh`)."""
        self.base = None if fresh or current_version(self.store.path) is None else \
            open_index(self.store.path, embedder=embedder, rebuild_hint=True)
        self._rows = {}
        if self.base is not None:
            for i, c in enumerate(self.base.chunks):
                self._rows.setdefault(c.source, []).append(i)
        return self.base

    def sources(self) -> set[str]:
        """Documents that have chunks in the version being written."""
        return set(self._rows) | {c.source for c in self._new_chunks}

    def remove(self, source: str) -> None:
        self._rows.pop(source, None)
        if any(c.source == source for c in self._new_chunks):
            keep = [i for i, c in enumerate(self._new_chunks) if c.source != source]
            flat = np.concatenate(self._new_vectors) if self._new_vectors else None
            self._new_chunks = [self._new_chunks[i] for i in keep]
            self._new_vectors = [flat[keep]] if flat is not None else []

    def add(self, chunks: list[Chunk], vectors: np.ndarray) -> None:
        if len(chunks) != len(vectors):
            raise StoreError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        if len(chunks):
            self._new_chunks.extend(chunks)
            self._new_vectors.append(np.asarray(vectors, dtype=np.float32))

    def commit(self, manifest: dict, *, dim: int) -> str:
        """Write the version and make it the live one; its name."""
        kept = sorted(i for rows in self._rows.values() for i in rows)
        chunks = [self.base.chunks[i] for i in kept] if self.base is not None else []
        chunks += self._new_chunks
        vectors = np.empty((len(chunks), dim), np.float32)
        if kept:
            vectors[:len(kept)] = self.base.vectors(kept)
        pos = len(kept)
        for part in self._new_vectors:
            vectors[pos:pos + len(part)] = part
            pos += len(part)
        manifest = {**manifest, "n_chunks": len(chunks)}
        version = _write_version(self.store.path, manifest, chunks, vectors,
                                 ann_threshold=self.store.ann_threshold)
        _clean(self.store.path, self.store.keep)
        return version.name


# ---------------------------------------------------------------- reading

def current_version(index_dir: Path) -> Path | None:
    index_dir = Path(index_dir)
    try:
        name = (index_dir / "CURRENT").read_text().strip()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise StoreError(f"{index_dir}: cannot read CURRENT ({e})") from e
    if not name or "/" in name or name.startswith("."):
        raise IndexDamaged(f"{index_dir}: CURRENT is damaged; {FIX}")
    return index_dir / name


def _manifest_at(version: Path, index_dir: Path) -> dict:
    try:
        manifest = json.loads((version / "manifest.json").read_text())
    except (OSError, ValueError) as e:
        raise IndexDamaged(f"{version}: manifest missing or unreadable; {FIX}") from e
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        found = manifest.get("format_version") if isinstance(manifest, dict) else None
        raise StoreError(f"{index_dir}: index format {found} is not {FORMAT_VERSION}; {FIX}")
    return manifest


def read_manifest(index_dir: Path) -> dict | None:
    """The live version's manifest, or None when there is no index yet."""
    version = current_version(Path(index_dir))
    return None if version is None else _manifest_at(version, Path(index_dir))


def open_index(index_dir: str | Path, *, embedder=None, embedder_name: str | None = None,
               rebuild_hint: bool = False) -> FaissVersion:
    """Load and verify the live version. Raises StoreError saying what is wrong and how to fix it.

    `embedder` (or just its `embedder_name`) must be the one the index was built with."""
    index_dir = Path(index_dir)
    for _ in range(3):
        version = current_version(index_dir)
        if version is None:
            raise IndexMissing(f"no index at {index_dir}; build it with `rag index`")
        try:
            return _open_version(index_dir, version, embedder, embedder_name, rebuild_hint)
        except StoreError as e:
            # a build may have flipped CURRENT and pruned this version while we read it
            if version.is_dir() or current_version(index_dir) == version:
                # damage (not a mismatched embedder or format) is what an older version may not have
                previous = FaissStore(index_dir).intact_previous() if isinstance(e, IndexDamaged) else None
                if previous is not None:
                    raise IndexDamaged(f"{e}, or make the intact previous version {previous.name} live "
                                     f"again with `rag index --rollback --index {index_dir}`") from None
                raise
            log.info("index version %s replaced while loading; loading the new one", version.name)
    raise StoreError(f"{index_dir} keeps changing while loading; try again")


def _open_version(index_dir: Path, version: Path, embedder, embedder_name, rebuild_hint) -> FaissVersion:
    import faiss

    manifest = _manifest_at(version, index_dir)
    try:
        n, dim = manifest["n_chunks"], manifest["embedder"]["dim"]
        files = {name: (manifest["files"][name]["size"], manifest["files"][name]["sha256"]) for name in FILES}
        n_docs = len(manifest["documents"])
    except (KeyError, TypeError) as e:
        raise StoreError(f"{version}: manifest lacks {e}; {FIX}") from e
    check_embedder(manifest, str(index_dir), embedder=embedder, name=embedder_name, rebuild=rebuild_hint)
    try:  # the saved BM25's files are checked like the others (versions from before have none)
        files.update({f"{BM25_DIR}/{name}": (f["size"], f["sha256"])
                      for name, f in ((manifest.get("bm25") or {}).get("files") or {}).items()})
    except (KeyError, TypeError, AttributeError) as e:
        raise StoreError(f"{version}: manifest's bm25 entry lacks {e}; {FIX}") from e
    for name, (size, sha) in files.items():
        p = version / name
        if not p.is_file():
            raise IndexDamaged(f"{p} is missing; {FIX}")
        if p.stat().st_size != size or _sha256(p) != sha:
            raise IndexDamaged(f"{p} is truncated or corrupted (checksum mismatch); {FIX}")
    try:
        chunks = [Chunk.from_dict(json.loads(line))
                  for line in (version / "chunks.jsonl").read_text(encoding="utf-8").splitlines()]
        vectors = np.load(version / "vectors.npy", allow_pickle=False)
        faiss_index = faiss.read_index(str(version / "faiss.index"))
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as e:
        raise IndexDamaged(f"{version} cannot be read ({type(e).__name__}); {FIX}") from e
    if len(chunks) != n or vectors.shape != (n, dim) or faiss_index.ntotal != n or faiss_index.d != dim:
        raise IndexDamaged(f"{version}: chunk, vector and index counts disagree; {FIX}")
    log.info("index %s loaded: %d chunks from %d documents", version, n, n_docs)
    return FaissVersion(version, manifest, chunks, vectors, faiss_index)


# ---------------------------------------------------------------- writing

class _Lock:
    """An exclusive flock on `<index>/.lock`. A second writer waits up to `wait` seconds, then
    gets a clear StoreError. The kernel drops the lock when its holder dies, even by SIGKILL."""

    def __init__(self, index_dir: Path, wait: float) -> None:
        self.path = Path(index_dir) / ".lock"
        self.wait = wait
        self.fh = None

    def __enter__(self):
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fh = self.path.open("a+")
        except OSError as e:
            raise StoreError(f"cannot write the index folder {self.path.parent} "
                             f"({e.strerror or e})") from e
        deadline = time.monotonic() + self.wait
        told = False
        while True:
            try:
                fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    self.fh.close()
                    waited = f" (waited {self.wait:g}s)" if self.wait else ""
                    raise IndexLocked(f"another build is writing {self.path.parent}{waited}; "
                                     "try again when it has finished, or wait for it with "
                                     "`rag index --wait SECONDS`") from None
                if not told:
                    log.warning("another build is writing %s; waiting up to %gs",
                                self.path.parent, self.wait)
                    told = True
                time.sleep(0.2)

    def __exit__(self, *exc):
        fcntl.flock(self.fh, fcntl.LOCK_UN)
        self.fh.close()


def ivf_params(n: int) -> tuple[int, int]:
    """(lists, lists probed per query) for an IVF index over n vectors.

    About sqrt(n) lists keeps both the training and the per-query scan small. Each query scans
    at least 30k vectors or 1/8 of the lists, whichever is more: on the benchmark's clustered
    vectors 1/8 kept recall@10 at 0.96 of an exact scan at 1M rows, but only 0.85 at 100k, where
    scanning 30k vectors (95 of 316 lists) costs about 3 ms and keeps 0.97.
    """
    nlist = int(min(4096, max(16, round(n ** 0.5))))
    share = max(1 / 8, 30_000 / max(n, 1))
    return nlist, min(nlist, max(8, math.ceil(nlist * share)))


def build_faiss(vectors: np.ndarray, *, ann_threshold: int = DEFAULT_ANN_THRESHOLD):
    """Inner-product FAISS index over unit vectors: exact, or IVF when rows >= ann_threshold.

    `ann_threshold` 0 disables the approximate index. The IVF index stores its probe count, so
    readers need no extra setting.
    """
    import faiss

    n, dim = vectors.shape
    if not ann_threshold or n < ann_threshold:
        index = faiss.IndexFlatIP(dim)
        if n:
            index.add(vectors)
        return index
    nlist, nprobe = ivf_params(n)
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    # 40 training points per list (faiss warns below 39) keeps k-means to seconds even at 1M rows
    sample = min(n, 40 * nlist)
    rows = np.random.default_rng(0).choice(n, size=sample, replace=False) if sample < n else slice(None)
    index.train(np.ascontiguousarray(vectors[rows]))
    index.add(vectors)
    index.nprobe = nprobe
    log.info("IVF index over %d vectors: %d lists, %d probed", n, nlist, nprobe)
    return index


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with path.open("rb") as fh:
        os.fsync(fh.fileno())


def _write_file(path: Path, data: bytes) -> None:
    with path.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _write_version(index_dir: Path, manifest: dict, chunks: list[Chunk], vectors: np.ndarray, *,
                   ann_threshold: int = DEFAULT_ANN_THRESHOLD) -> Path:
    import faiss

    existing = [int(p.name[1:]) for p in index_dir.glob("v[0-9]*") if p.name[1:].isdigit()]
    name = f"v{max(existing, default=0) + 1:06d}"
    tmp = index_dir / f".{name}.tmp"
    tmp.mkdir()
    # each file goes straight to disk: no second in-memory copy of a large index
    with (tmp / "chunks.jsonl").open("w", encoding="utf-8") as fh:
        for c in chunks:
            fh.write(json.dumps(c.to_dict(), ensure_ascii=False) + "\n")
    _fsync_file(tmp / "chunks.jsonl")
    with (tmp / "vectors.npy").open("wb") as fh:
        np.save(fh, vectors, allow_pickle=False)
    _fsync_file(tmp / "vectors.npy")
    faiss.write_index(build_faiss(vectors, ann_threshold=ann_threshold), str(tmp / "faiss.index"))
    _fsync_file(tmp / "faiss.index")
    manifest["files"] = {f: {"size": (tmp / f).stat().st_size, "sha256": _sha256(tmp / f)} for f in FILES}
    manifest.pop("bm25", None)  # the base version's entry describes the base version's chunks
    if chunks:
        manifest["bm25"] = _write_bm25(tmp / BM25_DIR, chunks)
    _write_file(tmp / "manifest.json", json.dumps(manifest, indent=1, ensure_ascii=False).encode())
    _fsync_dir(tmp)
    final = index_dir / name
    os.rename(tmp, final)
    cur_tmp = index_dir / ".CURRENT.tmp"
    _write_file(cur_tmp, name.encode())
    os.replace(cur_tmp, index_dir / "CURRENT")  # the commit point
    _fsync_dir(index_dir)
    return final


def _write_bm25(folder: Path, chunks: list[Chunk]) -> dict:
    """Build the BM25 index of `chunks` into `folder`; its manifest entry (parameters, files)."""
    from ..chunk import embed_text
    from ..bm25 import BM25, bm25_params

    BM25([embed_text(c) for c in chunks]).save(folder)
    files = {}
    for p in sorted(folder.iterdir()):
        _fsync_file(p)
        files[p.name] = {"size": p.stat().st_size, "sha256": _sha256(p)}
    _fsync_dir(folder)
    return {"params": bm25_params(), "files": files}


def _clean(index_dir: Path, keep: int = 2) -> None:
    """Drop leftovers of killed builds and all but the newest `keep` versions (readers may hold them)."""
    for p in index_dir.glob(".v*.tmp"):
        shutil.rmtree(p, ignore_errors=True)
    versions = sorted(p for p in index_dir.glob("v[0-9]*") if p.is_dir())
    for p in versions[:-keep]:
        shutil.rmtree(p, ignore_errors=True)
