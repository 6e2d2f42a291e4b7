"""Stage 4: bring an index in line with a folder of documents, incrementally, in any `VectorStore`.

Unchanged documents keep their chunks and vectors without being read; new and changed ones are
chunked and embedded; a writer of the store builds the next version and commits it atomically,
so readers never see a half-built index (see `faiss_store` for the default store's layout).
"""
from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import ingest, readers as readers_mod, resume
from .build_progress import BuildProgress
from .chunk import Chunker, embed_text
from .config import DEFAULT_ANN_THRESHOLD
from .errors import BackendChanged, DocumentError, IndexMissing, StoreError
from .manifest import FORMAT_VERSION, embedder_record
from .readers.budget import DEFAULT_LIMITS, ReadLimits
from .resume import Checkpoint
from .types import Chunk

log = logging.getLogger(__name__)


@dataclass
class IndexReport:
    """What a build did, document by document."""

    index_dir: str
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    resumed: list[str] = field(default_factory=list)  # added/updated, their chunks from a killed build's reading
    n_chunks: int = 0
    n_embedded: int = 0  # chunks whose vectors are new in this version
    n_reused: int = 0  # of those, vectors a killed build had embedded (not embedded again)
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)

    def summary(self) -> str:
        resumed = f", {len(self.resumed)} files and {self.n_reused} vectors taken from an unfinished build" \
            if self.resumed or self.n_reused else ""
        return (f"{len(self.added)} added, {len(self.updated)} updated, {len(self.removed)} removed, "
                f"{len(self.unchanged)} unchanged, {len(self.skipped)} skipped; "
                f"{self.n_chunks} chunks ({self.n_embedded} embedded{resumed}) in {self.seconds:.2f}s")


EMBED_BATCH = 256
# a file's last chunks wait for a full batch at most this long: a kill loses at most about this
# much embedding (what was read is saved at once; rag/resume.py)
FLUSH_SECONDS = 10.0
# ...unless they are at least this many (two of the model's batches): then they are embedded as
# the file ends, so a kill as the next file is read loses none of them. Waiting, the tail of a
# 120-page PDF (up to 255 chunks, 10 s of embedding) was embedded again by the resumed build;
# fewer chunks still wait, so a folder of small files keeps embedding in full batches.
FILE_TAIL_FLUSH = 64
# File times within this many seconds of a scan may hide a later write in the same clock tick
# (coarse file-system timestamps), so such files are hashed however their stat looks.
RACY_SECONDS = 2.0


def _stat_key(st: os.stat_result) -> dict:
    # ctime cannot be set back by tools that preserve mtime (cp -p, rsync, touch -d)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns}


def _same_file(prev: dict, key: dict, scanned_ns: int | None) -> bool:
    """True when the stat matches the manifest and was recorded well before that scan began."""
    if scanned_ns is None or any(prev.get(k) != v for k, v in key.items()):
        return False
    newest = max(key["mtime_ns"], key["ctime_ns"])
    return newest < scanned_ns - int(RACY_SECONDS * 1e9)


def build(paths: list[str | Path], *, embedder, chunk_size: int, chunk_overlap: int,
          store=None, index_dir: str | Path | None = None, rebuild: bool = False, prune: bool = True,
          progress: bool | str = False, lock_wait: float = 0.0,
          ann_threshold: int = DEFAULT_ANN_THRESHOLD, read_limits: ReadLimits = DEFAULT_LIMITS) -> IndexReport:
    """Bring `store` (or the FAISS index at `index_dir`) in line with the files under `paths`.

    Unchanged documents (same size, times and content hash; the hash is skipped when size and
    times match a scan made well after the file was last written) keep their chunks and vectors
    without being read; new and changed ones are chunked and embedded; with `prune`, documents
    no longer found are removed. A change of embedder or chunker settings needs `rebuild=True`,
    so old and new vectors never mix. A second concurrent build waits up to `lock_wait` seconds.
    From `ann_threshold` chunks on (0: never) a FAISS index is approximate (IVF).

    Each document is read within `read_limits` (time, bytes unpacked, cells, pages OCR'd...). A
    file that cannot be read, goes over a limit, or makes its reader or the chunker fail in any
    way is skipped with its reason in the report; the rest are indexed (only an interrupt, or a
    failure of the store itself, stops the build).
    """
    if store is None:
        if index_dir is None:
            raise TypeError("build() needs a store or an index_dir")
        from .stores.faiss import FaissStore

        store = FaissStore(index_dir, ann_threshold=ann_threshold)
    t0 = time.perf_counter()
    files, skipped = ingest.find_files(paths)
    dirs = [Path(p).absolute() for p in paths if Path(p).is_dir()]
    root = Path(os.path.commonpath(dirs)) if dirs else None
    report = IndexReport(index_dir=store.location, skipped=list(skipped))
    settings = {"chunk_size": chunk_size, "chunk_overlap": chunk_overlap}

    with store.writer(lock_wait=lock_wait) as writer:
        scan_ns = time.time_ns()
        try:
            old = writer.start(fresh=rebuild, embedder=embedder)
        except BackendChanged as e:  # same weights, another runtime: its vectors are rebuilt, never mixed
            log.warning("%s; rebuilding it", str(e).split(":")[0])
            rebuild = True
            old = writer.start(fresh=True, embedder=embedder)
        if old is not None and old.manifest["chunker"] != settings:
            raise StoreError(f"chunker settings changed from {old.manifest['chunker']} to "
                             f"{settings}: a full rebuild is needed (`rag index --rebuild`)")
        old_docs = old.manifest["documents"] if old is not None else {}
        old_scan = old.manifest.get("scanned_ns") if old is not None else None
        indexed = writer.sources()

        chunker = None
        n_new = 0
        # what decides a document's chunks besides its bytes: a record read under other settings
        # (no OCR engine then, other limits) is not taken up
        reading = {**settings, "limits": dataclasses.asdict(read_limits), "ocr": ingest.ocr_settings(),
                   "readers": dict(sorted(readers_mod.VERSIONS.items()))}  # (a newer reader reads again)
        documents: dict[str, dict] = {}
        seen: set[str] = set()
        record = old.manifest["embedder"] if old is not None else None
        saved: Checkpoint | None = None
        embedding: _Embedding | None = None
        shown = BuildProgress(files, progress)
        try:
            for path in files:
                shown.reading(path)
                source = ingest.source_id(path, root)
                seen.add(source)
                try:
                    key = _stat_key(path.stat())
                    prev = old_docs.get(source)
                    intact = (prev is not None and not (prev["n_chunks"] and source not in indexed)
                              and prev.get("reader", 1) == _reader_version(path))
                    if intact and _same_file(prev, key, old_scan):
                        digest = prev["sha256"]
                    else:
                        digest = ingest.file_sha256(path)
                except OSError as e:
                    _skip(report, writer, path, source, f"cannot read ({e.strerror or e})",
                          indexed=source in old_docs)
                    shown.file_done(path)
                    continue
                if intact and prev["sha256"] == digest:
                    documents[source] = {**prev, **key}
                    report.unchanged.append(source)
                    shown.file_done(path)
                    continue
                if embedding is None:  # the first file to read: what its vectors need, loaded once
                    record = record or embedder_record(embedder)
                    # a killed build's reading and embedding are on disk: this one takes them up
                    saved = Checkpoint(Path(store.path) / ".embedded", record.get("fingerprint") or
                                       embedder_record(embedder)["fingerprint"]) if hasattr(store, "path") else None
                    if saved is not None and rebuild:  # from scratch means nothing taken up
                        saved.clear()
                    embedding = _Embedding(writer, embedder, int(record["dim"]), saved, shown, report)
                resumed = saved.read(source, digest, reading) if saved is not None else None
                if resumed is not None:  # read before the kill: not read again
                    title, pieces = resumed
                    report.resumed.append(source)
                else:
                    if chunker is None:  # only when a file is read: the tokenizer may load the embedder
                        chunker = Chunker(embedder.tokenizer, max_tokens=embedder.max_seq_length,
                                          chunk_size=chunk_size, chunk_overlap=chunk_overlap)
                    try:
                        # a long PDF's pages are kept as they are read: killed, it reads on from there
                        pages = (lambda sha, source=source: saved.page_log(source, sha, reading)) \
                            if saved is not None else None
                        doc = ingest.load(path, source=source, limits=read_limits, page_log=pages)
                        pieces = chunker.split(doc)  # reads a large file's blocks as it goes
                    except DocumentError as e:  # OverBudget among them
                        _skip(report, writer, path, source, str(e).removeprefix(f"{path}: "),
                              indexed=source in old_docs)
                        shown.file_done(path)
                        continue
                    except Exception as e:  # noqa: BLE001 - whatever one file does, the others are indexed
                        log.debug("reading %s failed", path, exc_info=True)
                        reason = str(ingest.failure(path, ingest.SUPPORTED.get(path.suffix.lower(), "this"), e))
                        _skip(report, writer, path, source, reason.removeprefix(f"{path}: "),
                              indexed=source in old_docs)
                        shown.file_done(path)
                        continue
                    title, digest = doc.title, doc.sha256  # (what was read, should the file have changed since)
                    if saved is not None:
                        saved.save_read(source, digest, reading, title, pieces)
                if source in indexed:  # (a new file has nothing to take out: no scan of what was added)
                    writer.remove(source)
                embedding.add(pieces)  # embedded batch by batch as files are read: memory stays one batch
                embedding.file_done()
                n_new += len(pieces)
                documents[source] = {"sha256": digest, "title": title, "n_chunks": len(pieces), **key,
                                     "reader": _reader_version(path),
                                     "indexed": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
                (report.updated if prev else report.added).append(source)
                shown.file_done(path)
            if embedding is not None:
                embedding.flush()
        finally:
            shown.close()
        if prune:
            gone = sorted(set(old_docs) - seen)
            report.removed = sorted(set(report.removed) | set(gone))
            for source in gone:
                writer.remove(source)
        else:  # keep documents that were indexed before and were not part of this call
            for source in sorted(set(old_docs) - seen):
                documents[source] = old_docs[source]

        if old is not None and not report.changed:  # a stat-only change is not worth a new version
            report.n_chunks = len(old)
            report.seconds = time.perf_counter() - t0
            return report

        record = record or embedder_record(embedder)
        manifest = {
            "format_version": FORMAT_VERSION,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "scanned_ns": scan_ns,
            "embedder": {**record, "fingerprint": embedder_record(embedder)["fingerprint"]},
            "chunker": settings,
            "documents": documents,
        }
        version = writer.commit(manifest, dim=int(record["dim"]))
        if hasattr(store, "path"):  # what unfinished builds left is spent once one commits
            resume.discard(Path(store.path) / ".embedded")
        report.n_chunks = sum(d["n_chunks"] for d in documents.values())
        report.n_embedded = n_new
        report.seconds = time.perf_counter() - t0
        log.info("index %s version %s written: %s", store.location, version, report.summary())
        return report


def remove(sources: list[str], *, store, embedder=None, lock_wait: float = 0.0) -> IndexReport:
    """Take the documents `sources` (ids as the manifest names them) and their chunks out of
    `store` in one new version; nothing is read or embedded. The report lists those removed
    (ids the index does not hold are ignored)."""
    t0 = time.perf_counter()
    report = IndexReport(index_dir=store.location)
    with store.writer(lock_wait=lock_wait) as writer:
        old = writer.start(fresh=False, embedder=embedder)
        if old is None:
            raise IndexMissing(f"no index at {store.location}")
        documents = dict(old.manifest["documents"])
        report.removed = sorted(s for s in set(sources) if s in documents)
        if not report.removed:
            report.n_chunks = len(old)
            return report
        for source in report.removed:
            writer.remove(source)
            documents.pop(source)
        keep = ("format_version", "scanned_ns", "embedder", "chunker")
        manifest = {**{k: old.manifest[k] for k in keep if k in old.manifest},
                    "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "documents": documents}
        version = writer.commit(manifest, dim=int(old.manifest["embedder"]["dim"]))
        report.n_chunks = sum(d["n_chunks"] for d in documents.values())
        report.seconds = time.perf_counter() - t0
        log.info("index %s version %s written: %d documents removed", store.location, version, len(report.removed))
        return report


def _skip(report: IndexReport, writer, path: Path, source: str, reason: str, *, indexed: bool) -> None:
    """A document that cannot be read now leaves the index (a removal, if it was in it), and the
    report says why."""
    report.skipped.append((str(path), reason))
    writer.remove(source)
    if indexed:
        report.removed.append(source)
    log.warning("skipped %s: %s", path, reason)


class _Embedding:
    """Chunks waiting for their vectors, embedded EMBED_BATCH at a time as files are read and
    handed to the writer, so only one batch of texts waits at a time. With `saved`, each new
    batch is also written to disk, and chunks a killed build embedded are taken from there."""

    def __init__(self, writer, embedder, dim: int, saved: Checkpoint | None, shown: BuildProgress,
                 report: IndexReport) -> None:
        self.writer, self.embedder, self.dim, self.saved = writer, embedder, dim, saved
        self.shown, self.report = shown, report
        self.pending: list[Chunk] = []
        self.last = time.monotonic()  # when a batch was last embedded

    def add(self, chunks: list[Chunk]) -> None:
        self.pending.extend(chunks)
        while len(self.pending) >= EMBED_BATCH:
            batch, self.pending = self.pending[:EMBED_BATCH], self.pending[EMBED_BATCH:]
            self._embed(batch)

    def file_done(self) -> None:
        """A file's chunks are all added: embed a part batch when it holds FILE_TAIL_FLUSH chunks
        or has waited FLUSH_SECONDS."""
        if len(self.pending) >= FILE_TAIL_FLUSH or time.monotonic() - self.last >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            batch, self.pending = self.pending, []
            self._embed(batch)

    def _embed(self, batch: list[Chunk]) -> None:
        texts = [embed_text(c) for c in batch]
        found = self.saved.vectors(texts, self.dim) if self.saved is not None else [None] * len(texts)
        missing = [i for i, v in enumerate(found) if v is None]
        if missing:
            new = self.embedder.embed([texts[i] for i in missing])
            if new.shape != (len(missing), self.dim):
                raise StoreError(f"the embedder returned vectors of shape {new.shape}, expected "
                                 f"({len(missing)}, {self.dim}); rebuild with `rag index --rebuild`")
            if self.saved is not None:
                self.saved.save([texts[i] for i in missing], new)
            for i, v in zip(missing, new):
                found[i] = v
        self.report.n_reused += len(batch) - len(missing)
        self.writer.add(batch, np.stack(found).astype(np.float32))
        self.shown.embedded(len(batch))
        self.last = time.monotonic()


def _reader_version(path: Path) -> int:
    """The version of what the reader of `path`'s format emits (`readers.VERSIONS`)."""
    return readers_mod.version(ingest.SUPPORTED.get(path.suffix.lower(), ""))
