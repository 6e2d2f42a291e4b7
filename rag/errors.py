"""The error hierarchy. Library code raises these; only the CLI and the app print them."""


class RagError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(RagError):
    """A setting is wrong: a missing model file, an impossible chunk size, an unknown template."""


class DocumentError(RagError):
    """A document cannot be read or parsed (binary, encrypted, unsupported, unreadable)."""


class StoreError(RagError):
    """The index on disk is missing, locked, mismatched or damaged."""


class IndexMissing(StoreError):
    """There is no index there yet: nothing was built (a new collection, a fresh folder)."""


class IndexLocked(StoreError):
    """Another build holds the index's write lock; trying again later may succeed."""


class BackendChanged(StoreError):
    """The index was built from the same model weights by another embedder backend (torch or
    ONNX fp32 against int8 ONNX): its vectors must not meet the other backend's question vectors,
    and `rag index` rebuilds it."""


class IndexDamaged(StoreError):
    """A file of the live version is missing, truncated, fails its checksum or cannot be read:
    an intact older version, if any, can be made live again (`rag index --rollback`)."""


class GeneratorUnreachable(RagError):
    """The generator could not be used: an LLM server down, refusing, or answering nonsense."""


class QueryError(RagError):
    """The question itself is unusable: empty, or too long for the model's context window."""


class DatasetError(RagError):
    """An evaluation dataset is missing or malformed; the message names the file and line."""


class DownloadError(RagError):
    """A model could not be downloaded: offline, unknown on the Hub, cut off, or damaged."""


class HistoryError(RagError):
    """A saved conversation cannot be found, or the history file cannot be written."""


class OverBudget(DocumentError):
    """A document went over one of its reading budgets (time, unpacked bytes, cells, pages OCR'd,
    images, nesting depth) while it was read; it is skipped with this reason, the rest indexed."""

    def __init__(self, message: str, *, resource: str = "") -> None:
        super().__init__(message)
        self.resource = resource


class Busy(RagError):
    """The model's queue is full, or a request waited too long for it: try again shortly."""
