"""Stage 1: read files into `Document`s (text split by headings, with a title and a content hash).

This module finds the files, reads each one's bytes within its `Budget` and hands them to the
reader of its format (`rag.readers.READERS`: text, Markdown, HTML, PDF, Word, PowerPoint,
Excel/CSV/TSV, EPUB and images by OCR). Text files too large to hold whole are read here, in
blocks. Anything unreadable raises `DocumentError` for that one file; the caller decides
whether to skip it.
"""
from __future__ import annotations

import codecs
import hashlib
import itertools
import logging
import os
import stat
import zlib
from pathlib import Path
from typing import Callable, Iterator

from .errors import DocumentError
from .readers import READERS
from .readers.budget import DEFAULT_LIMITS, Budget, ReadLimits
from .readers.encoding import detect_encoding
from .readers.text import first_line_title
from .types import Document, Section

log = logging.getLogger(__name__)

SUPPORTED = {suffix: kind for suffix, (kind, _) in READERS.items()}

# Text files above this size are read block by block, so a huge log or dump is indexed in
# memory bounded by its chunks rather than by several copies of the whole file.
LARGE_FILE_BYTES = 8 << 20
BLOCK_BYTES = 1 << 20


def find_files(paths: list[str | Path]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Expand folders recursively (links to folders are not followed, so loops cannot happen).

    Returns the supported regular files, sorted, and (path, reason) pairs for what was passed
    over: unsupported types, broken or looping links, FIFOs and devices (reading one would hang),
    and links found in a folder that lead out of it (`ln -s /etc/passwd notes.txt` must not put
    the password file in the index). A path named itself, not found by walking, is taken as
    given: whoever names it chose it.
    """
    found: list[Path] = []
    skipped: list[tuple[str, str]] = []

    def consider(f: Path, within: Path | None = None) -> None:
        if f.is_symlink() and f.is_dir():
            skipped.append((str(f), "link to a folder, not followed"))
            return
        if f.suffix.lower() not in SUPPORTED:
            skipped.append((str(f), f"unsupported file type '{f.suffix or f.name}'"))
            return
        try:
            st = f.stat()
        except OSError as e:  # dangling link, link loop, vanished meanwhile
            skipped.append((str(f), f"cannot read ({e.strerror or e})"))
            return
        if within is not None and f.is_symlink() and not _inside(f, within):
            skipped.append((str(f), "link to outside the folder, not followed"))
        elif not stat.S_ISREG(st.st_mode):
            skipped.append((str(f), "not a regular file (FIFO, socket or device)"))
        else:
            found.append(f)

    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            real = p.resolve()  # the folder may itself be reached through a link
            for dirpath, dirnames, filenames in os.walk(p, followlinks=False):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                names = filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
                for name in sorted(names):
                    if not name.startswith("."):
                        consider(Path(dirpath) / name, real)
        elif p.exists() or p.is_symlink():
            consider(p)
        else:
            skipped.append((str(p), "no such file or folder"))
    for path, reason in skipped:
        log.warning("skipped %s: %s", path, reason)
    return sorted(set(found)), skipped


def _inside(link: Path, folder: Path) -> bool:
    """Whether `link`, every link on its way followed, ends inside `folder` (already resolved)."""
    try:
        return link.resolve(strict=True).is_relative_to(folder)
    except (OSError, RuntimeError):  # a loop or a link gone since it was stat'ed
        return False


def source_id(path: Path, root: Path | None) -> str:
    """Document id: the path relative to the indexed folder when inside it, else the absolute path."""
    path = path.absolute()
    if root is not None:
        try:
            return path.relative_to(root.absolute()).as_posix()
        except ValueError:
            pass
    return path.as_posix()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load(path: Path, *, source: str | None = None, limits: ReadLimits = DEFAULT_LIMITS,
         page_log: Callable[[str], object] | None = None) -> Document:
    """Read one file into a Document within `limits` (one `Budget` per document). Raises
    DocumentError with a one-line reason: `OverBudget` when the file goes over a limit, and any
    other failure of a reader or its library (NotImplementedError, OSError, RecursionError,
    MemoryError, zlib errors...) becomes a DocumentError that names the file and the kind of
    failure, so one bad file never stops a build.

    Text and Markdown files over LARGE_FILE_BYTES come back with `sections` as a one-pass
    iterator of plain-text blocks (heading paths are not tracked there), read lazily within the
    same time budget.

    `page_log`, given the sha256 of the bytes read, gives where a PDF's pages are kept as they
    are read (`rag.resume.PageLog`, `readers.pdf.read`): a build killed in the middle of a long
    PDF reads on from the page it had reached.
    """
    kind = SUPPORTED.get(path.suffix.lower())
    if kind is None:
        raise DocumentError(f"{path}: unsupported file type '{path.suffix}'")
    budget = Budget(path, limits)
    try:
        return _load(path, kind, source or path.as_posix(), budget, page_log)
    except DocumentError:  # OverBudget among them: its reason is already the one to give
        raise
    except Exception as e:  # noqa: BLE001 - readers and their libraries raise anything on bad input
        raise failure(path, kind, e) from e


def failure(path: Path, kind: str, e: BaseException) -> DocumentError:
    """The one-line DocumentError for an unexpected exception while reading `path` (a `kind` file)."""
    if isinstance(e, OSError) and e.errno is not None:  # the file system's, not a decoder's
        return DocumentError(f"{path}: cannot read ({e.strerror or e})")
    if isinstance(e, MemoryError):
        return DocumentError(f"{path}: too large to read (out of memory)")
    if isinstance(e, RecursionError):
        return DocumentError(f"{path}: nested too deeply to read (RecursionError)")
    detail = " ".join(str(e).split())[:160]
    what = "damaged compressed data" if isinstance(e, zlib.error) else f"damaged or unsupported {kind} file"
    return DocumentError(f"{path}: {what} ({type(e).__name__}{': ' + detail if detail else ''})")


def _load(path: Path, kind: str, source: str, budget: Budget, page_log=None) -> Document:
    try:
        size = path.stat().st_size
        if kind in ("text", "markdown") and size > LARGE_FILE_BYTES:
            return _load_large_text(path, source, budget)
        if kind == "html":  # refused before it is read at all; parsed as a stream, so no tree cap
            budget.allow("unpacked_bytes", size)
        raw = path.read_bytes()
    except OSError as e:
        raise DocumentError(f"{path}: cannot read ({e.strerror or e})") from e
    digest = hashlib.sha256(raw).hexdigest()
    resumable = {"page_log": page_log(digest)} if page_log is not None and kind == "pdf" else {}
    title, sections = READERS[path.suffix.lower()][1](path, raw, budget=budget, **resumable)
    sections = tuple(s for s in sections if s.text.strip())
    if not sections:
        raise DocumentError(f"{path}: no text in file")
    return Document(source=source, title=title or path.stem, sections=sections, sha256=digest)


def _load_large_text(path: Path, source: str, budget: Budget) -> Document:
    with path.open("rb") as fh:
        sample = fh.read(BLOCK_BYTES)
    encoding = detect_encoding(sample, path, partial=True)
    blocks = (s for s in _read_blocks(path, encoding, budget) if s.text.strip())
    first = next(blocks, None)
    if first is None:
        raise DocumentError(f"{path}: no text in file")
    log.info("%s: large file (%d MB), read in blocks", path, path.stat().st_size >> 20)
    return Document(source=source, title=first_line_title(first.text) or path.stem,
                    sections=itertools.chain([first], blocks), sha256=file_sha256(path))


def _read_blocks(path: Path, encoding: str, budget: Budget) -> Iterator[Section]:
    """Decoded text in blocks of about BLOCK_BYTES, cut at paragraph or line ends when possible.
    The chunker pulls blocks as it goes, so the time budget is asked before each (a file on a
    slow or stalled mount stops at the limit); a read that fails midway is a DocumentError."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    carry = ""
    try:
        with path.open("rb") as fh:
            while True:
                budget.check_time()
                block = fh.read(BLOCK_BYTES)
                if not block:
                    break
                text = carry + decoder.decode(block)
                cut = text.rfind("\n\n")
                if cut < len(text) // 2:
                    cut = text.rfind("\n")
                if cut < len(text) // 2:
                    cut = text.rfind(" ")
                if cut <= 0:
                    cut = len(text)
                carry = text[cut:]
                yield Section(text[:cut])
    except OSError as e:
        raise DocumentError(f"{path}: cannot read ({e.strerror or e})") from e
    yield Section(carry + decoder.decode(b"", final=True))


def ocr_settings() -> dict:
    """What decides the text OCR gives a document besides its bytes: a resumed build takes up a
    document read before only when these are the same (rag/resume.py)."""
    from .readers import ocr, pdf

    return {"on": ocr.enabled(), "engine": ocr.engine_path() is not None,
            "lang": os.environ.get("RAG_OCR_LANG", "eng"), "pdf_below_chars": pdf.OCR_BELOW_CHARS,
            "figures": pdf.OCR_FIGURES}
