"""Documents users upload: what one user may add (`UploadLimits`, `Allowance`), and adding
files to a collection — each checked with the settings' reading budgets, copied into the
corpus folder without ever overwriting a file, and indexed at once; if indexing fails the
copies are removed again and the previous index stays live.

A copy is in the upload journal (`rag.upload_journal`) from the moment it is in the corpus
folder until its index build is committed, so a start after a crash can tell it from a file
put there by hand. `add_uploads` and `add_files` work on a `rag.workspace.ChatService`: its
collections say where a file goes and who may add it.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import ingest
from .errors import DocumentError, RagError
from .readers.budget import ReadLimits
from .transcript import md_text

log = logging.getLogger("rag.app")  # (the chat's log lines keep the name they always had)

MB = 1 << 20
BUILD_WAIT = 120.0  # seconds an upload waits for another one's index build of the same collection
UPLOAD_TYPES = sorted(ingest.SUPPORTED)


@dataclass(frozen=True)
class UploadLimits:
    """What one user may upload (0: no limit): bytes per file, files per upload, and bytes added
    in all since the app started (per signed-in user, or per client address without sign-in)."""

    file_bytes: int = 50 * MB
    files: int = 20
    total_bytes: int = 500 * MB


def size_text(n: int) -> str:
    """A size for people: 50 MB, 1.5 MB, 2.4 KB, 300 bytes."""
    if n >= 10 * MB or n and n % MB == 0:
        return f"{n / MB:.0f} MB"
    if n >= MB:
        return f"{n / MB:.1f} MB"
    return f"{n / 1024:.1f} KB" if n >= 1024 else f"{n} bytes"


class UploadCancelled(Exception):
    """The user cancelled the upload (raised where the work can stop: between files, between
    embedding batches); nothing it brought is kept."""


@dataclass
class UploadReport:
    """What became of each uploaded file."""

    added: list[str] = field(default_factory=list)  # names as saved in the corpus folder
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (uploaded name, reason)
    n_chunks: int = 0
    cancelled: bool = False

    def markdown(self) -> str:
        lines = [f"✓ **{md_text(name)}** is indexed and searchable" for name in self.added]
        lines += [f"⚠️ **{md_text(name)}** not added: {md_text(reason)}" for name, reason in self.rejected]
        if self.cancelled:
            lines.insert(0, "Upload cancelled: nothing from it was added.")
        if self.added:
            lines.append(f"The index now holds {self.n_chunks} chunks.")
        return "\n\n".join(lines) or "No files were given."


@dataclass
class _RawUpload:
    """One upload request's files in Gradio's upload folder, charged to `owner`: `nbytes` is the
    request's declared length (an upper bound of what it stored); `paths` stays None while the
    request is received, then names the files it stored (resolved)."""

    owner: str
    nbytes: int
    paths: set[str] | None = None
    settled: float = 0.0


class Allowance:
    """What each owner (a signed-in user, else a client address) has stored on this server since
    it started, against `total` bytes (0: no limit): the files it uploaded that no `/add_documents`
    has taken yet ("raw" uploads, in Gradio's upload folder), plus the copies added to a corpus.

    Raw uploads count from the moment they are sent: otherwise a client could store any amount
    in Gradio's upload folder (kept a day) by never asking to add what it uploaded. A raw upload
    that is added or refused stops counting as raw (its file is deleted; an added copy counts
    as added instead). An `/add_documents` request is `reserve`d, then `settle`d."""

    FORGET_AFTER = 3600.0  # seconds: a raw upload whose files are gone (Gradio's cache cleaning) stops counting

    def __init__(self, total: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.total = total
        self.lock = threading.Lock()
        self._clock = clock
        self._added: dict[str, int] = {}
        self._raw: list[_RawUpload] = []

    def used(self, owner: str) -> int:
        """Bytes `owner` has stored: raw uploads and added copies."""
        now = self._clock()
        self._raw = [r for r in self._raw if r.paths is None or now - r.settled < self.FORGET_AFTER
                     or any(os.path.exists(p) for p in r.paths)]
        return self._added.get(owner, 0) + sum(r.nbytes for r in self._raw if r.owner == owner)

    def over(self, owner: str, nbytes: int) -> str:
        """Why `owner` may not store `nbytes` more ("" when they may)."""
        used = self.used(owner)
        if self.total and used + nbytes > self.total:
            return f"over your upload allowance of {size_text(self.total)} ({size_text(used)} used)"
        return ""

    def reserve_raw(self, owner: str, nbytes: int) -> _RawUpload | str:
        """Charge an upload request of `nbytes` to `owner` before it is received: the charge, or
        the one-line reason it is refused."""
        with self.lock:
            if why := self.over(owner, nbytes):
                return why
            raw = _RawUpload(owner, nbytes)
            self._raw.append(raw)
            return raw

    def settle_raw(self, raw: _RawUpload, paths: list[str]) -> None:
        """The request stored `paths`: they count (at the request's length) until taken."""
        with self.lock:
            raw.paths = {os.path.realpath(p) for p in paths}
            raw.settled = self._clock()
            if not raw.paths:
                self._drop(raw)

    def release_raw(self, raw: _RawUpload) -> None:
        """The request stored nothing (refused, failed, cut off)."""
        with self.lock:
            self._drop(raw)

    def _drop(self, raw: _RawUpload) -> None:
        self._raw = [r for r in self._raw if r is not raw]

    def reserve(self, reservation: "Reservation", limits: UploadLimits) -> None:
        """Check the files of `reservation` (raw uploads of its owner, or other files in the upload
        folder) against `limits` and the owner's allowance, all at once under the lock: those
        within them go to `reservation.kept`, the others to `reservation.refused` with one line
        each. What a kept file adds beyond the owner's raw uploads (already counted) is charged
        now, until `settle` puts what was really added in its place."""
        with self.lock:
            used = self.used(reservation.owner)
            for path in reservation.paths:
                try:
                    size = os.path.getsize(path)
                except OSError as e:
                    reservation.refused.append((path, f"cannot read ({e.strerror or e})"))
                    continue
                counted = any(r.owner == reservation.owner and r.paths and path in r.paths for r in self._raw)
                if limits.files and len(reservation.kept) >= limits.files:
                    reason = f"over the limit of {limits.files} files per upload"
                elif limits.file_bytes and size > limits.file_bytes:
                    reason = f"{size_text(size)}, over the limit of {size_text(limits.file_bytes)} per file"
                elif limits.total_bytes and not counted and used + reservation.nbytes + size > limits.total_bytes:
                    reason = (f"over your upload allowance of {size_text(limits.total_bytes)} "
                              f"({size_text(used + reservation.nbytes)} used)")
                else:
                    reservation.kept.append(path)
                    reservation.nbytes += 0 if counted else size
                    continue
                reservation.refused.append((path, reason))
            self._add(reservation.owner, reservation.nbytes)

    def settle(self, reservation: "Reservation", added_bytes: int = 0) -> None:
        """The upload of `reservation` is over, however it ended (added, refused, failed, or
        never checked): its owner is charged `added_bytes` (the copies now in a corpus) instead
        of what was reserved, its files stop counting as raw uploads and are deleted from the
        upload folder (the corpus holds the copy that counts). Once only; safe in a `finally`."""
        if reservation.settled:
            return
        reservation.settled = True
        with self.lock:
            self._add(reservation.owner, added_bytes - reservation.nbytes)
            reservation.nbytes = 0
            done = self._take_raw(reservation.owner, reservation.paths)
        for p in done:
            Path(p).unlink(missing_ok=True)

    def _take_raw(self, owner: str, paths: list[str]) -> list[str]:
        """`owner`'s raw uploads among `paths` were added or refused: they stop counting as raw.
        Returns those no other raw upload names, for the caller to delete."""
        taken, mine = set(paths), set()
        for r in list(self._raw):
            if r.owner != owner or not r.paths or not r.paths & taken:
                continue
            for p in r.paths & taken:
                mine.add(p)
                try:
                    r.nbytes -= min(os.path.getsize(p), r.nbytes)
                except OSError:
                    pass
            r.paths -= taken
            if not r.paths:  # the rest of the request's length was its multipart framing
                self._drop(r)
        still = set().union(*(r.paths or set() for r in self._raw))
        return sorted(mine - still)

    def _add(self, owner: str, nbytes: int) -> None:
        self._added[owner] = max(0, self._added.get(owner, 0) + nbytes)


@dataclass
class Reservation:
    """One `/add_documents` request's files in the upload folder (resolved paths), for `owner`:
    `Allowance.reserve` sorts them into `kept` and `refused` (path, reason) and charges `nbytes`;
    `Allowance.settle` ends it, whatever happened in between."""

    owner: str
    paths: list[str]
    kept: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    nbytes: int = 0
    settled: bool = False


def failure_reason(name: str, e: BaseException) -> str:
    """One line for a failure of file `name` that no reader turned into a DocumentError (a bug,
    or a library's): `rag.ingest.failure`'s, as `rag index` words it, without the path."""
    kind = ingest.SUPPORTED.get(Path(name).suffix.lower(), "this")
    return str(ingest.failure(Path(name), kind, e)).removeprefix(f"{name}: ")


def upload_entry(entry) -> tuple[str, str]:
    """(path, name shown to the user) of one file entry of an upload request, as sent."""
    if isinstance(entry, dict):
        path = entry.get("path")
        name = entry.get("orig_name") or (Path(path).name if isinstance(path, str) else "")
        return (path if isinstance(path, str) else ""), str(name)[:200]
    if isinstance(entry, (str, Path)):
        return str(entry), Path(str(entry)).name
    return "", ""


def inside_folder(path: str, root: Path) -> Path | None:
    """`path` resolved, if it is a regular file under `root` (links followed first); else None."""
    if "://" in path or not path:
        return None  # a URL would make the server fetch it
    try:
        real = Path(path).resolve(strict=True)
        base = root.resolve()
    except (OSError, RuntimeError):
        return None
    if not real.is_file() or not real.is_relative_to(base) or real == base:
        return None
    return real


def place_copy(src: Path, dest: Path, sha256: str, *, tag: str = "") -> tuple[Path, bool]:
    """Copy `src` to `dest`, or to `name-2.ext`, `name-3.ext`, ... if taken, never over an
    existing file, even when another upload places a file of the same name at the same moment
    (the copy is linked in, which fails on a taken name, rather than renamed over it). Returns
    (where, True), or (the identical file, False) and nothing copied if an identical file is
    already there. The temporary copy's name carries `tag` (the app instance), so a start after
    a crash knows whose it was."""
    prefix = f".{dest.name}.{tag}." if tag else f".{dest.name}."
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".part", dir=dest.parent)  # dot files are never indexed
    os.close(fd)
    part = Path(tmp)
    try:
        shutil.copyfile(src, part)
        candidate, n = dest, 1
        while True:
            if candidate.is_file() and not candidate.is_symlink() and ingest.file_sha256(candidate) == sha256:
                return candidate, False
            if not candidate.exists() and not candidate.is_symlink():
                try:
                    os.link(part, candidate)
                    return candidate, True
                except FileExistsError:
                    continue  # taken between the look and the link: look again
            n += 1
            candidate = dest.with_name(f"{dest.stem}-{n}{dest.suffix}")
    finally:
        part.unlink(missing_ok=True)


# ---------------------------------------------------------------- adding files to a collection


def add_uploads(service, files: list, *, upload_dir: str | Path, owner: str = "", progress: bool = False,
                cancel: threading.Event | None = None,
                on_file: Callable[[int, int, str], None] | None = None,
                collection: str | None = None, user: str | None = None) -> UploadReport:
    """Add files a browser uploaded: only those inside Gradio's upload folder `upload_dir`,
    within `service.limits` for `owner` (files over a limit are refused, one line each, and the
    rest added).

    An API client can send a file entry whose path names any server file (or a URL); such an
    entry is refused and logged, never read, so nothing outside the user's uploads can reach
    the corpus and be quoted back by `/ask`. `owner`'s own uploads (counted against the
    allowance when they were sent) are deleted from the upload folder once added or refused:
    the corpus holds the copy that counts.
    """
    report = UploadReport()
    accepted: dict[str, str] = {}  # resolved path in the upload folder: name shown to the user
    for entry in files or []:
        path, name = upload_entry(entry)
        inside = inside_folder(path, Path(upload_dir)) if path else None
        if inside is None:
            log.warning("refused an upload entry outside the upload folder: %r", path or entry)
            report.rejected.append((name or "?", "not a file uploaded to this app"))
            continue
        accepted.setdefault(str(inside), name or inside.name)
    allowance = service.allowance
    reservation = Reservation(owner, list(accepted))
    added = UploadReport()
    corpus: Path | None = None
    try:  # whatever happens from here (a collection the user may not write included), the
        # entries are settled: the allowance charges what was added, the raw files are deleted
        corpus = service.writable(collection, user).corpus if service.rag is not None else Path()
        allowance.reserve(reservation, service.limits)
        report.rejected += [(accepted[p], reason) for p, reason in reservation.refused]
        if reservation.kept:
            added = add_files(service, [Path(p) for p in reservation.kept], progress=progress, cancel=cancel,
                              on_file=on_file, collection=collection, user=user)
    finally:
        kept_bytes = sum((corpus / n).stat().st_size for n in added.added
                         if corpus is not None and (corpus / n).is_file())
        allowance.settle(reservation, kept_bytes)
    report.added, report.n_chunks, report.cancelled = added.added, added.n_chunks, added.cancelled
    report.rejected += added.rejected
    return report


def add_files(service, paths: list[str | Path], *, progress: bool = False,
              cancel: threading.Event | None = None,
              on_file: Callable[[int, int, str], None] | None = None,
              collection: str | None = None, user: str | None = None) -> UploadReport:
    """Check, copy into the corpus folder and index the given files (trusted, local paths).

    A file is copied only once it has been read successfully (within the reading budgets of
    the settings), never over an existing one; any failure of one file (whatever the reader
    raised) is that file's one-line reason and the rest go on. If indexing fails the copies
    are removed again and the previous index stays live. A file identical to one already in
    the folder is "already in your documents" only when the index holds it; otherwise that
    file is indexed now (a copy left unindexed earlier is never a trap). Once `cancel` is set
    (checked between files and before indexing; an `UploadCancelled` raised while indexing
    counts the same), the copies are removed, nothing is indexed and the report says so.
    `on_file(i, n, name)` is called before file i of n is checked. Each copy is in the upload
    journal until its index build is committed or it is removed (`rag.upload_journal`).
    """
    rag = service.get(collection, user=user)
    c = service.writable(collection, user)
    corpus = c.corpus
    report = UploadReport()
    saved: list[Path] = []  # copies this upload made: removed again if not indexed
    again: list[Path] = []  # identical files already in the folder but not indexed
    records: list[Path] = []
    corpus.mkdir(parents=True, exist_ok=True)
    limits = ReadLimits.from_settings(rag.settings)
    try:
        indexed = (rag.vector_store.manifest() or {}).get("documents") or {}
    except RagError:
        indexed = {}

    def cancelled(pending: list[str]) -> UploadReport:
        for p in saved:
            p.unlink(missing_ok=True)
        log.info("upload cancelled: %d files not added", len(saved) + len(pending))
        report.cancelled = True
        report.rejected += [(n, "upload cancelled") for n in [p.name for p in saved + again] + pending]
        return report

    try:
        for i, raw in enumerate(paths):
            src = Path(raw)
            name = src.name
            if cancel is not None and cancel.is_set():
                return cancelled([Path(p).name for p in paths[i:]])
            if on_file is not None:
                on_file(i, len(paths), name)
            if src.suffix.lower() not in ingest.SUPPORTED:
                report.rejected.append((name, f"unsupported file type '{src.suffix or name}' "
                                              f"(supported: {', '.join(UPLOAD_TYPES)})"))
                continue
            try:
                doc = ingest.load(src, limits=limits)
                sha256 = doc.sha256
                del doc  # only its checks and its hash were wanted: the build reads it again
                dest, made = place_copy(src, corpus / name, sha256,
                                         tag=service.journal.part_tag() if service.journal else "")
            except DocumentError as e:
                report.rejected.append((name, str(e).removeprefix(f"{src}: ")))
                continue
            except Exception as e:  # noqa: BLE001 - one file's failure, whatever it is, is that file's
                log.exception("upload %s could not be read or saved", name)
                report.rejected.append((name, failure_reason(name, e)))
                continue
            if not made:
                if (indexed.get(dest.name) or {}).get("sha256") == sha256:
                    report.rejected.append((name, "the same file is already in your documents"))
                elif dest not in again:  # left unindexed by an earlier upload or by hand: index it now
                    again.append(dest)
                continue
            saved.append(dest)
            if service.journal is not None:
                try:
                    records.append(service.journal.record(c.name, dest, sha256))
                except OSError as e:  # the upload goes on; only a crash now would leave the copy
                    log.warning("upload journal not written (%s): %s", e.strerror or e, dest)
        if not saved and not again:
            return report
        if cancel is not None and cancel.is_set():
            return cancelled([])
        try:
            # another tab's upload into this collection may be building: wait for it
            built = rag.index([corpus], prune=False, progress=progress, lock_wait=BUILD_WAIT)
        except UploadCancelled:
            return cancelled([])
        except Exception as e:  # noqa: BLE001 - nothing of this upload may stay unindexed
            if not isinstance(e, RagError):
                log.exception("indexing an upload failed")
            for p in saved:
                p.unlink(missing_ok=True)
            report.rejected += [(p.name, "indexing failed: " + (service.public(e) if isinstance(e, RagError)
                                                                 else failure_reason(p.name, e)))
                                for p in saved + again]
            return report
        failed = {os.path.realpath(p): reason for p, reason in built.skipped}
        for p in saved + again:
            reason = failed.get(os.path.realpath(p))
            if reason is not None:
                if p in saved:
                    p.unlink(missing_ok=True)
                report.rejected.append((p.name, reason.removeprefix(f"{p}: ")))
            else:
                report.added.append(p.name)
        report.n_chunks = built.n_chunks
        return report
    finally:
        for r in records:  # committed, or its copy removed: nothing left to reconcile
            r.unlink(missing_ok=True)
