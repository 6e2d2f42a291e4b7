"""Bytes to text for the plain-text formats (text, Markdown, HTML, CSV): which encoding a file
is in, told from its bytes, and its text in that encoding. Raises `DocumentError` for binary
content or text whose encoding cannot be told."""
from __future__ import annotations

import codecs
import logging
from pathlib import Path

from ..errors import DocumentError

log = logging.getLogger(__name__)


def decode(raw: bytes, path: Path) -> str:
    """Bytes to text in the detected encoding (see `detect_encoding`)."""
    encoding = detect_encoding(raw, path)
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError:  # a UTF-16 byte-order mark before bytes that are not UTF-16
        raise DocumentError(f"{path}: not valid {encoding.upper()} text") from None


def detect_encoding(raw: bytes, path: Path, *, partial: bool = False) -> str:
    """UTF-8 (with or without BOM), UTF-16 with BOM, Windows-1252, else what charset-normalizer
    finds. `partial`: `raw` is the start of a longer file and may end inside a character.
    Raises DocumentError for binary content or text whose encoding cannot be told."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    if b"\x00" in raw[:8192]:
        raise DocumentError(f"{path}: binary content, not text")
    try:
        codecs.getincrementaldecoder("utf-8-sig")().decode(raw, final=not partial)
        return "utf-8-sig"
    except UnicodeDecodeError:
        pass
    if _as_western(raw) is not None:
        return "cp1252"
    from charset_normalizer import from_bytes

    best = from_bytes(raw).best()
    if best is None:
        raise DocumentError(f"{path}: unknown text encoding (binary or undetectable)")
    log.info("%s: decoded as %s", path, best.encoding)
    return best.encoding


_WESTERN_EXTRA = set("‘’“”–—…•€«»° ©®·")


def _as_western(raw: bytes) -> str | None:
    """Windows-1252 is by far the commonest non-UTF-8 encoding of notes; detectors often mistake
    it for a Baltic or Central European code page. Accept it when the text reads as Western:
    accented letters are a minority and nothing outside Latin-1 letters and common punctuation."""
    try:
        text = raw.decode("cp1252")
    except UnicodeDecodeError:
        return None
    letters = [c for c in text if c.isalpha()]
    odd = [c for c in text if ord(c) > 127]
    if not letters or len([c for c in letters if ord(c) > 127]) > 0.3 * len(letters):
        return None  # mostly non-ASCII letters: Cyrillic or Greek in a single-byte page, say
    if all("\u00c0" <= c <= "\u00ff" or c in _WESTERN_EXTRA for c in odd):
        return text
    return None
