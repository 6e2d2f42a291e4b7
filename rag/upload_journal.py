"""The upload journal: which copies in corpus folders the chat made for uploads that are not
indexed yet, so that a start after a crash (kill -9, power loss, out of memory while indexing)
can tell an upload cut off midway from a file someone put in the folder by hand, and clear it
away (`reconcile`)."""
from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import threading
from pathlib import Path

from . import ingest
from .collections import Collections, manifest_of
from .config import Settings
from .documents import trash_path
from .errors import RagError

log = logging.getLogger("rag.app")  # (the chat's log lines keep the name they always had)


class UploadJournal:
    """Which copies in corpus folders this app made for uploads that are not indexed yet, so the
    next start can tell an upload cut off by a crash (kill -9, power loss, out of memory while
    indexing) from a file someone put in the folder by hand.

    Layout, under the collections root: `.uploads/<instance>/lock`, held (flock) by the running
    app, and `.uploads/<instance>/<token>.json`, one record per copy: collection, file name,
    sha256. A record is written once the copy is in the corpus folder and removed once the
    upload's index build is committed or its copies are removed. A start reconciles the records
    of every instance whose lock is free (its process is gone): see `reconcile`.
    Nothing is written until the first upload, so an app that never uploads leaves no trace."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root) / ".uploads"
        self.instance = f"{os.getpid()}-{os.urandom(4).hex()}"
        self._lock_fh = None
        self._mutex = threading.Lock()

    def _folder(self) -> Path:
        folder = self.root / self.instance
        with self._mutex:
            if self._lock_fh is None:
                folder.mkdir(parents=True, exist_ok=True)
                fh = (folder / "lock").open("a+")
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # new folder: never taken
                self._lock_fh = fh
        return folder

    def record(self, collection: str, path: Path, sha256: str) -> Path:
        """Note that `path` (in `collection`'s corpus) is a copy an upload made, not yet indexed."""
        folder = self._folder()
        rec = folder / f"{os.urandom(8).hex()}.json"
        tmp = folder / f".{rec.name}.tmp"
        tmp.write_text(json.dumps({"collection": collection, "name": path.name, "sha256": sha256}))
        os.replace(tmp, rec)
        return rec

    def part_tag(self) -> str:
        """What the temporary copies of this app's uploads carry in their names."""
        return self.instance

    def orphans(self) -> list[tuple[str, Path]]:
        """(instance, folder) of journals whose app is gone, each locked for the caller (the lock
        goes with the folder)."""
        out = []
        if not self.root.is_dir():
            return out
        for folder in sorted(self.root.iterdir()):
            if folder.name == self.instance or not folder.is_dir():
                continue
            try:
                fh = (folder / "lock").open("a+")
            except OSError:
                continue
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # its app is running: its uploads are its own
                fh.close()
                continue
            out.append((folder.name, folder))
            fh.close()  # (a race with a second start reconciling the same folder only repeats a move)
        return out


def reconcile(journal: UploadJournal, collections: Collections, settings: Settings) -> list[Path]:
    """At start: the copies that uploads of an app that is gone (killed while indexing, a
    power cut) left in a corpus folder without getting them indexed are moved to their
    collection's trash folder; where they went.

    Moved rather than indexed: the user was never told they were added, the crash may have
    come from indexing that very file (indexing it again at every start would crash every
    start), and the trash keeps it. A copy the index holds stays. Files put in a corpus
    folder by hand are never touched: only copies the journal names are, and only while
    they are byte for byte what the upload saved."""
    moved: list[Path] = []
    if journal is None or collections is None:
        return moved
    for instance, folder in journal.orphans():
        for rec_path in sorted(folder.glob("*.json")):
            try:
                rec = json.loads(rec_path.read_text(encoding="utf-8"))
                c = collections.get(str(rec["collection"]))
                name = Path(str(rec["name"])).name
                path = c.corpus / name
                if path.is_file() and not path.is_symlink() and ingest.file_sha256(path) == rec["sha256"]:
                    documents = (manifest_of(collections.settings_for(settings, c.name)) or {}).get("documents") or {}
                    if (documents.get(name) or {}).get("sha256") != rec["sha256"]:
                        dest = trash_path(c.trash, Path(name))
                        dest.parent.mkdir(parents=True, exist_ok=True)
                        shutil.move(str(path), str(dest))
                        moved.append(dest)
                        log.warning("collection %s: %s was uploaded but not indexed when the app stopped; "
                                    "moved to %s (upload it again to add it)", c.name, name, dest)
            except (OSError, ValueError, KeyError, TypeError, RagError) as e:
                log.warning("upload journal %s: %s", rec_path, e)
                continue
        for c in collections.list():  # temporary copies the killed app was writing
            for part in c.corpus.glob(f".*.{instance}.*.part") if c.corpus.is_dir() else []:
                part.unlink(missing_ok=True)
        shutil.rmtree(folder, ignore_errors=True)
    return moved
