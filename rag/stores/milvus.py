"""A `VectorStore` in Milvus: Milvus Lite (a local `.db` file, the engine embedded) or a Milvus
standalone or cluster (`http://host:19530`), through the same `pymilvus` calls.

Each index version is a collection `<name>_v000007` holding the chunks (text, source, heading
path, title) with their vectors; the alias `<name>` names the live one. A build writes a new
collection, loads it, records its manifest in `<name>_meta`, and only then switches the alias,
which Milvus does atomically: a reader resolves the alias once per version it opens and never
sees a half-written collection. The two newest versions are kept, for readers still on the older.

Milvus Lite serves one process per file: a second process opening the file is refused, which
is also what keeps two builders apart there; within a process, writers take turns.
"""
from __future__ import annotations

import json
import logging
import re
import threading

import numpy as np

from ..errors import IndexDamaged, IndexLocked, IndexMissing, StoreError
from ..manifest import FIX, check_embedder
from ..types import Chunk, Location

log = logging.getLogger(__name__)

MAX_TEXT = 65_535  # a VARCHAR field's limit in bytes
BATCH = 1000  # rows per insert or query
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,200}$")
_CLIENTS: dict[tuple[str, str], object] = {}
_CLIENTS_LOCK = threading.Lock()


def _client(uri: str, token: str):
    """One client per URI and token in this process (Milvus Lite allows one opener per file)."""
    with _CLIENTS_LOCK:
        key = (uri, token)
        if key not in _CLIENTS:
            try:
                from pymilvus import MilvusClient
            except ImportError as e:
                raise StoreError("store=milvus needs pymilvus (and milvus-lite for a local .db): "
                                 "pip install pymilvus milvus-lite") from e
            if "://" not in uri:
                # Milvus Lite answers calls it does not implement (timestamps) with a logged
                # traceback that pymilvus then handles: noise in a user's terminal
                logging.getLogger("grpc._server").setLevel(logging.CRITICAL)
            try:
                _CLIENTS[key] = MilvusClient(uri=uri, token=token) if token else MilvusClient(uri=uri)
            except Exception as e:  # noqa: BLE001 - pymilvus raises many kinds for one cause
                raise StoreError(_reason(uri, e)) from None
        return _CLIENTS[key]


def close(uri: str) -> None:
    """Close this process's clients of `uri`, so that another process may open a Lite file."""
    with _CLIENTS_LOCK:
        for key in [k for k in _CLIENTS if k[0] == uri]:
            try:
                _CLIENTS.pop(key).close()
            except Exception:  # noqa: BLE001 - closing what may already be gone
                pass
        if "://" not in uri:  # Milvus Lite serves the file from a thread of this process
            try:
                from milvus_lite.server_manager import server_manager_instance

                server_manager_instance.release_server(uri)
            except ImportError:
                pass


def _reason(uri: str, e: Exception) -> str:
    text = " ".join(str(e).split())[:200]
    low = text.lower()
    if "open local milvus failed" in low:
        return f"cannot open Milvus Lite file {uri}: another process has it open (one process per file)"
    if "auth" in low or "token" in low or "permission" in low or "unauthenticated" in low:
        return f"Milvus at {uri} refused the token (RAG_MILVUS_TOKEN): {text}"
    if "connect" in low or "unavailable" in low or "timeout" in low or "fail" in low:
        return f"cannot reach Milvus at {uri}: {text}"
    return f"Milvus at {uri}: {text}"


class MilvusVersion:
    """One loaded version: its chunks in memory (for BM25 and hits), vectors searched in Milvus."""

    def __init__(self, store: "MilvusStore", collection: str, manifest: dict, chunks: list[Chunk]) -> None:
        self.store = store
        self.collection = collection
        self.version = collection.rsplit("_", 1)[-1]
        self.manifest = manifest
        self.chunks = chunks
        self._sources = np.array([c.source for c in chunks], dtype=object)

    def __len__(self) -> int:
        return len(self.chunks)

    def vectors(self, rows=None) -> np.ndarray:
        """The stored vectors of `rows`, in that order."""
        ids = list(range(len(self.chunks))) if rows is None else [int(r) for r in np.atleast_1d(rows)]
        dim = int(self.manifest["embedder"]["dim"])
        got: dict[int, list[float]] = {}
        for start in range(0, len(ids), BATCH):
            part = ids[start:start + BATCH]
            for row in self.store._call(lambda: self.store.client.get(self.collection, ids=part,
                                                                       output_fields=["row", "vec"])):
                got[int(row["row"])] = row["vec"]
        out = np.array([got[i] for i in ids], dtype=np.float32).reshape(len(ids), dim)
        return out[0] if np.ndim(rows) == 0 and rows is not None else out

    def search(self, query_vecs: np.ndarray, k: int, *, source: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        k = max(1, min(k, len(self.chunks)))
        kwargs = {"filter": f'source like "{_like(source)}%"'} if source else {}
        res = self.store._call(lambda: self.store.client.search(
            self.collection, data=[q.tolist() for q in np.atleast_2d(query_vecs)], limit=k, anns_field="vec",
            output_fields=["row"], search_params={"metric_type": "IP"}, **kwargs))
        scores = -np.ones((len(res), k), np.float32)
        rows = -np.ones((len(res), k), np.int64)
        for i, hits in enumerate(res):
            for j, h in enumerate(hits[:k]):
                scores[i, j], rows[i, j] = h["distance"], h["entity"]["row"]
        return scores, rows


def _like(prefix: str) -> str:
    """`prefix` for a Milvus LIKE pattern inside a double-quoted string: a backslash or quote
    escaped once for the string, a wildcard (% or _) twice, so the pattern sees it escaped."""
    return re.sub(r'[\\"%_]', lambda m: "\\\\" + m.group(0) if m.group(0) in "%_" else "\\" + m.group(0), prefix)


class MilvusStore:
    """Versions of one index in Milvus. Construction connects to nothing; `open` and `writer` do."""

    def __init__(self, uri: str, *, token: str = "", name: str = "rag", keep: int = 2) -> None:
        if not _NAME.match(name):
            raise StoreError(f"a Milvus collection name must be letters, digits and _ (not starting "
                             f"with a digit), got {name!r}")
        self.uri, self.token, self.name, self.keep = uri, token, name, keep
        self._write = threading.Lock()

    @property
    def location(self) -> str:
        return f"{self.uri}#{self.name}"

    @property
    def client(self):
        return _client(self.uri, self.token)

    def _call(self, fn):
        try:
            return fn()
        except StoreError:
            raise
        except Exception as e:  # noqa: BLE001 - one line, whatever pymilvus raised
            raise StoreError(_reason(self.uri, e)) from None

    # ---------------------------------------------------------------- reading

    def live(self) -> str | None:
        c = self._live_collection()
        return None if c is None else c.rsplit("_", 1)[-1]

    def _live_collection(self) -> str | None:
        aliases = self._call(lambda: self.client.list_aliases()).get("aliases", [])
        if self.name not in aliases:
            return None
        return self._call(lambda: self.client.describe_alias(self.name))["collection_name"]

    def manifest(self) -> dict | None:
        c = self._live_collection()
        return None if c is None else self._manifest(c)

    def _load(self, collection: str) -> None:
        """Milvus answers queries only on loaded collections (after a restart, none is); loading
        a loaded one costs next to nothing, and a cache here would outlive a reopened file."""
        self._call(lambda: self.client.load_collection(collection))

    def _manifest(self, collection: str) -> dict:
        meta = f"{self.name}_meta"
        self._load(meta)
        rows = self._call(lambda: self.client.query(meta, filter=f'version == "{collection}"',
                                                    output_fields=["part", "text"], limit=16384))
        if not rows:
            raise IndexDamaged(f"{self.location}: version {collection} has no manifest; {FIX}")
        try:
            return json.loads("".join(r["text"] for r in sorted(rows, key=lambda r: r["part"])))
        except ValueError:
            raise IndexDamaged(f"{self.location}: the manifest of {collection} is damaged; {FIX}") from None

    def open(self, *, embedder=None) -> MilvusVersion:
        collection = self._live_collection()
        if collection is None:
            raise IndexMissing(f"no index at {self.location}; build it with `rag index`")
        return self._open(collection, embedder)

    def _open(self, collection: str, embedder) -> MilvusVersion:
        manifest = self._manifest(collection)
        check_embedder(manifest, self.location, embedder=embedder)
        self._load(collection)
        n = int(manifest.get("n_chunks", 0))
        chunks: list[Chunk | None] = [None] * n
        for start in range(0, n, BATCH):
            rows = self._call(lambda: self.client.query(
                collection, filter=f"row >= {start} and row < {start + BATCH}",
                output_fields=["row", "chunk_id", "source", "title", "headings", "text"]))
            for r in rows:
                heads, location = _unpack_headings(r["headings"])
                chunks[int(r["row"])] = Chunk(id=r["chunk_id"], source=r["source"], title=r["title"],
                                              headings=heads, text=r["text"], location=location)
        if any(c is None for c in chunks):
            raise IndexDamaged(f"{self.location}: version {collection} holds fewer chunks than its manifest; {FIX}")
        log.info("Milvus index %s loaded: %d chunks", collection, n)
        return MilvusVersion(self, collection, manifest, chunks)

    def writer(self, *, lock_wait: float = 0.0) -> "MilvusWriter":
        return MilvusWriter(self, lock_wait)


class MilvusWriter:
    """The next version: start from the live one, remove and add documents' chunks, commit."""

    def __init__(self, store: MilvusStore, lock_wait: float) -> None:
        self.store = store
        self.lock_wait = lock_wait
        self.base: MilvusVersion | None = None
        self._rows: dict[str, list[int]] = {}
        self._new: list[tuple[Chunk, np.ndarray]] = []

    def __enter__(self):
        if not self.store._write.acquire(timeout=self.lock_wait if self.lock_wait > 0 else 0.001):
            raise IndexLocked(f"another build is writing {self.store.location}; try again when it has finished")
        try:
            self.store.client  # noqa: B018 - connect now: a file another process holds is refused here
        except BaseException:
            self.store._write.release()
            raise
        return self

    def __exit__(self, *exc):
        self.store._write.release()

    def start(self, *, fresh: bool, embedder=None) -> MilvusVersion | None:
        live = self.store._live_collection()
        self.base = None if fresh or live is None else self.store._open(live, embedder)
        self._rows = {}
        if self.base is not None:
            for i, c in enumerate(self.base.chunks):
                self._rows.setdefault(c.source, []).append(i)
        self._new = []
        return self.base

    def sources(self) -> set[str]:
        return set(self._rows) | {c.source for c, _ in self._new}

    def remove(self, source: str) -> None:
        self._rows.pop(source, None)
        self._new = [(c, v) for c, v in self._new if c.source != source]

    def add(self, chunks: list[Chunk], vectors: np.ndarray) -> None:
        self._new += list(zip(chunks, np.asarray(vectors, dtype=np.float32)))

    def commit(self, manifest: dict, *, dim: int) -> str:
        from pymilvus import DataType

        s, client = self.store, self.store.client
        existing = [int(m.group(1)) for c in s._call(client.list_collections)
                    if (m := re.fullmatch(rf"{s.name}_v(\d+)", c))]
        collection = f"{s.name}_v{max(existing, default=0) + 1:06d}"
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("row", DataType.INT64, is_primary=True)
        schema.add_field("vec", DataType.FLOAT_VECTOR, dim=dim)
        for name in ("chunk_id", "source", "title", "headings", "text"):
            schema.add_field(name, DataType.VARCHAR, max_length=MAX_TEXT)
        index = client.prepare_index_params()
        # exact inner product: the same ranking as the FAISS default; a cluster can take an ANN index
        index.add_index("vec", index_type="FLAT", metric_type="IP")
        s._call(lambda: client.create_collection(collection, schema=schema, index_params=index))
        try:
            row = 0
            kept = sorted(i for rows in self._rows.values() for i in rows)
            for start in range(0, len(kept), BATCH):
                part = kept[start:start + BATCH]
                vecs = self.base.vectors(part)
                row = self._insert(collection, [self.base.chunks[i] for i in part], vecs, row)
            for start in range(0, len(self._new), BATCH):
                part = self._new[start:start + BATCH]
                row = self._insert(collection, [c for c, _ in part], np.array([v for _, v in part]), row)
            s._call(lambda: client.flush(collection))
            s._call(lambda: client.load_collection(collection))
            self._write_manifest(collection, {**manifest, "n_chunks": row})
        except BaseException:
            s._call(lambda: client.drop_collection(collection))  # never half a version left behind
            raise
        aliases = s._call(client.list_aliases).get("aliases", [])
        if s.name in aliases:
            s._call(lambda: client.alter_alias(collection, s.name))  # the commit point
        else:
            s._call(lambda: client.create_alias(collection, s.name))
        self._clean(collection)
        return collection.rsplit("_", 1)[-1]

    def _insert(self, collection: str, chunks: list[Chunk], vectors: np.ndarray, row: int) -> int:
        data = []
        for c, v in zip(chunks, vectors):
            data.append({"row": row, "vec": [float(x) for x in v], "chunk_id": _fit(c.id), "source": _fit(c.source),
                         "title": _fit(c.title), "headings": _fit(_pack_headings(c)),
                         "text": _fit(c.text)})
            row += 1
        self.store._call(lambda: self.store.client.insert(collection, data))
        return row

    def _write_manifest(self, collection: str, manifest: dict) -> None:
        from pymilvus import DataType

        s, client = self.store, self.store.client
        meta = f"{s.name}_meta"
        if meta not in s._call(client.list_collections):
            schema = client.create_schema(auto_id=True, enable_dynamic_field=False)
            schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field("version", DataType.VARCHAR, max_length=256)
            schema.add_field("part", DataType.INT64)
            schema.add_field("text", DataType.VARCHAR, max_length=MAX_TEXT)
            schema.add_field("pad", DataType.FLOAT_VECTOR, dim=2)  # Milvus wants a vector in every collection
            index = client.prepare_index_params()
            index.add_index("pad", index_type="FLAT", metric_type="L2")
            s._call(lambda: client.create_collection(meta, schema=schema, index_params=index))
        text = json.dumps(manifest, ensure_ascii=False)
        parts = [text[i:i + MAX_TEXT // 4] for i in range(0, len(text), MAX_TEXT // 4)]  # 4 bytes a char at most
        s._call(lambda: client.insert(meta, [{"version": collection, "part": i, "text": p, "pad": [0.0, 0.0]}
                                             for i, p in enumerate(parts)]))
        s._call(lambda: client.flush(meta))
        s._call(lambda: client.load_collection(meta))

    def _clean(self, live: str) -> None:
        s, client = self.store, self.store.client
        versions = sorted(c for c in s._call(client.list_collections) if re.fullmatch(rf"{s.name}_v\d+", c))
        for old in versions[:-s.keep]:
            if old != live:
                s._call(lambda: client.drop_collection(old))
                s._call(lambda: client.delete(f"{s.name}_meta", filter=f'version == "{old}"'))


def _fit(text: str) -> str:
    """Text cut to what a VARCHAR holds (65,535 bytes), at a character boundary."""
    data = text.encode("utf-8")
    return text if len(data) <= MAX_TEXT else data[:MAX_TEXT].decode("utf-8", "ignore")


def _pack_headings(chunk: Chunk) -> str:
    """The headings field: a JSON list, or {"h": list, "loc": location} when the chunk has a page,
    slide or sheet, so collections written before locations existed keep their schema."""
    if chunk.location is None:
        return json.dumps(list(chunk.headings), ensure_ascii=False)
    return json.dumps({"h": list(chunk.headings), "loc": chunk.location.to_dict()}, ensure_ascii=False)


def _unpack_headings(raw: str) -> tuple[tuple[str, ...], Location | None]:
    value = json.loads(raw)
    if isinstance(value, dict):
        return tuple(value.get("h", ())), Location.from_dict(value.get("loc"))
    return tuple(value), None
