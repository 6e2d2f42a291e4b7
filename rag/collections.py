"""Collections: named indexes, each over its own corpus folder, kept apart (work, personal, one
per project).

    collections/                 the collections root (`Settings.collections`, RAG_COLLECTIONS)
      work/collection.json       owner, shared, created; a corpus folder named by the CLI
      work/corpus/               its documents (uploads land here)
      work/index/                its index (any store: FAISS versions, or a Milvus Lite file)
      .trash/documents/work/     documents removed from it, moved, never deleted
      .trash/collections/        deleted collections, moved whole

The collection named `default` is the one the project always had: `Settings.index` over
`Settings.corpus`. Names are checked by `check_name` alone (a lowercase slug), and every path is
resolved under the root, never outside it: a name cannot reach another user's documents or any
other server file. `CollectionRAGs` gives each collection its `RAG`, all sharing one embedder and
one model.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .config import Settings
from .errors import ConfigError, IndexLocked
from .stores import open_store

log = logging.getLogger(__name__)

DEFAULT = "default"
MAX_NAME = 48
_NAME = re.compile(rf"[a-z0-9][a-z0-9_-]{{0,{MAX_NAME - 1}}}")
META = "collection.json"
TRASH = ".trash"  # names start with a letter or digit, so this folder is never a collection


class CollectionExists(ConfigError):
    """The name asked for is taken (by a collection the asker may or may not see): a caller that
    serves several users answers without saying whose it is."""


def check_name(name) -> str:
    """`name` if it is a valid collection name (1-48 of a-z, 0-9, '-', '_', starting with a
    letter or digit); ConfigError with one line otherwise."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        shown = repr(name)[:60] + ("..." if len(repr(name)) > 60 else "")
        raise ConfigError(f"invalid collection name {shown}: use 1 to {MAX_NAME} lowercase letters, "
                          f"digits, '-' or '_', starting with a letter or digit")
    return name


@dataclass(frozen=True)
class Collection:
    """One collection's folders and who may see it. `owner` "" means everyone's (made without
    sign-in, or the default); `shared` opens a user's collection to every signed-in user."""

    name: str
    corpus: Path
    index: Path
    trash: Path
    owner: str = ""
    shared: bool = False
    created: str = ""
    uid: str = ""  # tells a collection from a later one of the same name

    def visible_to(self, user: str | None) -> bool:
        """Whether `user` may ask and see it (None: no sign-in in force, everything is visible)."""
        return user is None or not self.owner or self.shared or self.owner == user

    def writable_by(self, user: str | None) -> bool:
        """Whether `user` may add, remove or delete: its owner (anyone for an ownerless one)."""
        return user is None or not self.owner or self.owner == user


class Collections:
    """The collections under one root, plus the default collection (`default_index` over
    `default_corpus`). Cheap: every call reads the folders, so several processes agree."""

    def __init__(self, root: str | Path, *, default_index: str | Path, default_corpus: str | Path) -> None:
        self.root = Path(root).absolute()
        self.default = Collection(DEFAULT, Path(default_corpus), Path(default_index),
                                  self.root / TRASH / "documents" / DEFAULT)
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> "Collections":
        return cls(settings.collections, default_index=settings.index, default_corpus=settings.corpus)

    # ---------------------------------------------------------------- paths

    def _folder(self, name: str) -> Path:
        """The folder of collection `name`, which must resolve to a direct child of the root
        (a link placed there pointing elsewhere is refused)."""
        check_name(name)
        folder = self.root / name
        real = folder.resolve()
        if real.parent != self.root.resolve() or (folder.is_symlink()):
            raise ConfigError(f"collection {name!r} is not a folder under {self.root}")
        return folder

    def _load(self, name: str) -> Collection | None:
        folder = self._folder(name)
        try:
            meta = json.loads((folder / META).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            raise ConfigError(f"collection {name!r}: {folder / META} is unreadable ({type(e).__name__})") from None
        corpus = Path(meta["corpus"]) if isinstance(meta.get("corpus"), str) and meta["corpus"] else folder / "corpus"
        return Collection(name, corpus, folder / "index", self.root / TRASH / "documents" / name,
                          owner=str(meta.get("owner") or ""), shared=bool(meta.get("shared")),
                          created=str(meta.get("created") or ""), uid=str(meta.get("uid") or ""))

    # ---------------------------------------------------------------- reading

    def get(self, name: str | None, *, user: str | None = None) -> Collection:
        """The collection `name` (None or "" is the default), if `user` may see it; ConfigError
        otherwise (an invisible one reads as missing, so names do not leak)."""
        if not name or name == DEFAULT:
            return self.default
        c = self._load(name)
        if c is None or not c.visible_to(user):
            raise ConfigError(f"there is no collection named {name!r}")
        return c

    def list(self, *, user: str | None = None) -> list[Collection]:
        """The default collection, then every other `user` may see, by name."""
        out = [self.default]
        if self.root.is_dir():
            for entry in sorted(self.root.iterdir()):
                if not _NAME.fullmatch(entry.name) or entry.name == DEFAULT or not (entry / META).is_file():
                    continue
                try:
                    c = self._load(entry.name)
                except ConfigError as e:
                    log.warning("%s", e)
                    continue
                if c is not None and c.visible_to(user):
                    out.append(c)
        return out

    # ---------------------------------------------------------------- changing

    def create(self, name: str, *, owner: str = "", shared: bool = False,
               corpus: str | Path | None = None) -> Collection:
        """A new, empty collection. `corpus` points it at an existing folder instead of its own
        (for trusted callers such as the CLI; the chat never passes it)."""
        if name == DEFAULT:
            raise ConfigError("'default' is the collection of indexes/default and corpus/; choose another name")
        folder = self._folder(name)
        self.root.mkdir(parents=True, exist_ok=True)
        if corpus is not None and not Path(corpus).is_dir():
            raise ConfigError(f"corpus folder not found: {corpus}")
        try:
            folder.mkdir()  # atomic: of two creators of one name, one wins
        except FileExistsError:
            raise CollectionExists(f"a collection named {name!r} already exists") from None
        (folder / "corpus").mkdir()
        meta = {"name": name, "uid": os.urandom(8).hex(), "owner": owner, "shared": bool(shared),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        if corpus is not None:
            meta["corpus"] = str(Path(corpus).resolve())
        _write_json(folder / META, meta)
        log.info("collection %s created in %s", name, folder)
        return self._load(name)

    def set_shared(self, name: str, shared: bool, *, user: str | None = None) -> Collection:
        c = self._writable(name, user, "share")
        folder = self._folder(c.name)
        meta = json.loads((folder / META).read_text(encoding="utf-8"))
        _write_json(folder / META, {**meta, "shared": bool(shared)})
        return self._load(name)

    def delete(self, name: str, *, user: str | None = None) -> Path:
        """Move the whole collection (documents and index) into the trash; where it went. An
        answer being written from it finishes from the copy in memory; the next question to it
        is told it no longer exists."""
        c = self._writable(name, user, "delete")
        folder = self._folder(c.name)
        dest = self.root / TRASH / "collections" / f"{c.name}.{time.strftime('%Y%m%d-%H%M%S')}.{os.getpid()}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, _no_build(c):
            try:
                os.replace(folder, dest)
            except FileNotFoundError:
                raise ConfigError(f"there is no collection named {name!r}") from None
        log.info("collection %s moved to %s", name, dest)
        return dest

    def _writable(self, name: str, user: str | None, verb: str) -> Collection:
        if not name or name == DEFAULT:
            raise ConfigError(f"the default collection cannot be {verb}d")
        c = self.get(name, user=user)
        if not c.writable_by(user):
            raise ConfigError(f"collection {name!r} belongs to {c.owner}; only they can {verb} it")
        return c

    # ---------------------------------------------------------------- settings

    def settings_for(self, base: Settings, name: str | None, *, user: str | None = None) -> Settings:
        """`base` with the index and corpus of collection `name`. With Milvus, a collection
        whose index shares a server or a named .db file gets its own Milvus collection."""
        c = self.get(name, user=user)
        if c is self.default:
            return base
        changes = {"index": str(c.index), "corpus": str(c.corpus)}
        if base.store == "milvus" and base.milvus_uri:
            changes["milvus_collection"] = milvus_name(base.milvus_collection, c.name)
        return dataclasses.replace(base, **changes)


@contextmanager
def _no_build(c: Collection):
    """Hold the FAISS index's build lock, so a collection is not moved while a build writes it."""
    if not (c.index / "CURRENT").is_file():
        yield
        return
    from .stores.faiss import FaissStore

    try:
        with FaissStore(c.index).writer(lock_wait=0):
            yield
    except IndexLocked:
        raise ConfigError(f"collection {c.name!r} is being indexed; delete it once that is done") from None


def manifest_of(settings: Settings) -> dict | None:
    """The live manifest of the index `settings` name (None when there is none yet), read
    without loading the index."""
    return open_store(settings).manifest()


def milvus_name(prefix: str, name: str) -> str:
    """A Milvus collection name (letters, digits, '_') for collection `name`, distinct for every
    name: '-' becomes '_', and a hash of the name keeps 'a-b' and 'a_b' apart."""
    return f"{prefix}_{name.replace('-', '_')}_{hashlib.sha1(name.encode()).hexdigest()[:6]}"


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    os.replace(tmp, path)


class CollectionRAGs:
    """The `RAG` of each collection, made on first use from `base` (sharing its embedder, model
    and the model's lock: one generation at a time across collections)."""

    def __init__(self, base, collections: Collections) -> None:
        self.base = base
        self.collections = collections
        self._rags: dict[str, tuple[str, object]] = {}
        self._lock = threading.Lock()

    def get(self, name: str | None, *, user: str | None = None):
        c = self.collections.get(name, user=user)
        if c is self.collections.default:
            return self.base
        with self._lock:
            uid, rag = self._rags.get(c.name, ("", None))
            if rag is None or uid != c.uid:  # new, or deleted and made anew under this name
                rag = self.base.sibling(self.collections.settings_for(self.base.settings, c.name, user=user))
                self._rags[c.name] = (c.uid, rag)
            return rag

    def forget(self, name: str) -> None:
        with self._lock:
            self._rags.pop(name, None)

