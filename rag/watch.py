"""Index changes to the collections' corpus folders as they happen (`app.py --watch`).

A `CorpusWatcher` watches the default corpus folder and the collections root (so collections
made later are watched too) with watchfiles, and after each settled batch of changes brings the
index of every collection whose corpus folder changed up to date (`RAG.index`, incremental: only
changed files are embedded; removed files leave it). Dot files (uploads being copied, the
trash) and index folders are not documents and are ignored.
"""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from .errors import RagError

log = logging.getLogger(__name__)

DEBOUNCE_MS = 1000  # changes within this long of each other are indexed together
# every this many seconds without events, every collection is re-scanned (incremental: unchanged
# files are only stat'ed): file events can be missed, e.g. for files written into a folder made
# a moment earlier, before the watch on it is in place. 0 switches the re-scan off.
RESCAN_SECONDS = 30.0


class CorpusWatcher:
    """Watches the corpus folders of `rags` (a `collections.CollectionRAGs`) in a thread."""

    def __init__(self, rags, *, debounce_ms: int = DEBOUNCE_MS, lock_wait: float = 120.0,
                 rescan_s: float = RESCAN_SECONDS) -> None:
        self.rags = rags
        self.debounce_ms = debounce_ms
        self.rescan_s = rescan_s
        self.lock_wait = lock_wait
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.reports: list = []  # (collection, IndexReport) of every re-index, for the curious

    def folders(self) -> list[Path]:
        """The folders watched: the collections root, and every corpus folder outside it."""
        cols = self.rags.collections
        cols.root.mkdir(parents=True, exist_ok=True)
        out = [cols.root]
        for c in cols.list():
            if c.corpus.is_dir() and not c.corpus.resolve().is_relative_to(cols.root.resolve()):
                out.append(c.corpus)
        return out

    def start(self) -> "CorpusWatcher":
        folders = self.folders()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(folders, ready), name="corpus-watcher",
                                        daemon=True)
        self._thread.start()
        ready.wait(10)
        log.info("watching %s", ", ".join(map(str, folders)))
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self, folders: list[Path], ready: threading.Event) -> None:
        from watchfiles import watch

        ready.set()
        def wanted(_change, path: str) -> bool:
            p = Path(path)
            return not any(_under(p, f.absolute()) and _hidden(p.absolute().relative_to(f.absolute()))
                           for f in folders)

        last_scan = time.monotonic()
        tick = int(min(self.rescan_s, 5.0) * 1000) if self.rescan_s else 5000
        for changes in watch(*folders, stop_event=self._stop, debounce=self.debounce_ms, watch_filter=wanted,
                             rust_timeout=tick, yield_on_timeout=True):
            try:
                if changes:
                    self.handle({Path(p) for _, p in changes})
                elif self.rescan_s and time.monotonic() - last_scan >= self.rescan_s:
                    self.handle(None)
                    last_scan = time.monotonic()
            except Exception:  # noqa: BLE001 - a watcher that dies silently would be worse
                log.exception("indexing changes failed")

    def handle(self, paths: set[Path] | None) -> list:
        """Re-index each collection with a changed document among `paths` (None: every
        collection); (name, report) each."""
        done = []
        for c in self.rags.collections.list():
            corpus = c.corpus.absolute()
            if paths is not None and not any(_under(p, corpus) and not _hidden(p.absolute().relative_to(corpus))
                                             for p in paths):
                continue
            try:
                report = self.rags.get(c.name).index([c.corpus], prune=True, lock_wait=self.lock_wait)
            except RagError as e:
                log.warning("collection %s: changes not indexed: %s", c.name, e)
                continue
            if report.changed:
                log.info("collection %s: %s", c.name, report.summary())
            if paths is not None or report.changed:
                done.append((c.name, report))
        self.reports += done
        return done


def _under(path: Path, folder: Path) -> bool:
    return path.absolute().is_relative_to(folder)


def _hidden(path: Path) -> bool:
    return any(part.startswith(".") for part in path.parts)
