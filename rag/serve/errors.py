"""Errors in OpenAI's shape, so standard clients show their message."""
from __future__ import annotations

from ..errors import ConfigError, GeneratorUnreachable, QueryError, RagError, StoreError


class APIError(Exception):
    """An error answered with `status` and OpenAI's `{"error": {...}}` body."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers  # e.g. Retry-After on a 429

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def from_rag_error(e: RagError) -> APIError:
    """The status a library error deserves: the index being rebuilt is 503, a bad question 400."""
    if isinstance(e, StoreError):
        return APIError(503, f"the index cannot be opened now: {e}", type="server_error", code="index_unavailable")
    if isinstance(e, (QueryError, ConfigError)):
        return APIError(400, str(e))
    return APIError(502 if isinstance(e, GeneratorUnreachable) else 500, str(e), type="server_error")
