"""Stage 1: read files into `Document`s (text split by headings, with a title and a content hash).

Supported: .txt, .md/.markdown, .html/.htm, .pdf here; Word, PowerPoint, Excel/CSV/TSV, EPUB
and images (OCR) through `rag.readers`. PDF pages without a text layer are OCR'd. Anything
unreadable raises `DocumentError` for that one file; the caller decides whether to skip it.
"""
from __future__ import annotations

import codecs
import hashlib
import itertools
import logging
import os
import re
import stat
from html.parser import HTMLParser
from pathlib import Path
from typing import Iterator

from .errors import DocumentError
from .readers import READERS
from .types import Document, Location, Section

log = logging.getLogger(__name__)

SUPPORTED = {".txt": "text", ".md": "markdown", ".markdown": "markdown",
             ".html": "html", ".htm": "html", ".pdf": "pdf",
             **{suffix: kind for suffix, (kind, _) in READERS.items()}}

# Text files above this size are read block by block, so a huge log or dump is indexed in
# memory bounded by its chunks rather than by several copies of the whole file.
LARGE_FILE_BYTES = 8 << 20
BLOCK_BYTES = 1 << 20


def find_files(paths: list[str | Path]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Expand folders recursively (links to folders are not followed, so loops cannot happen).

    Returns the supported regular files, sorted, and (path, reason) pairs for what was passed
    over: unsupported types, broken or looping links, FIFOs and devices (reading one would hang).
    """
    found: list[Path] = []
    skipped: list[tuple[str, str]] = []

    def consider(f: Path) -> None:
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
        if not stat.S_ISREG(st.st_mode):
            skipped.append((str(f), "not a regular file (FIFO, socket or device)"))
        else:
            found.append(f)

    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            for dirpath, dirnames, filenames in os.walk(p, followlinks=False):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                names = filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
                for name in sorted(names):
                    if not name.startswith("."):
                        consider(Path(dirpath) / name)
        elif p.exists() or p.is_symlink():
            consider(p)
        else:
            skipped.append((str(p), "no such file or folder"))
    for path, reason in skipped:
        log.warning("skipped %s: %s", path, reason)
    return sorted(set(found)), skipped


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


def load(path: Path, *, source: str | None = None) -> Document:
    """Read one file into a Document. Raises DocumentError with a one-line reason.

    Text and Markdown files over LARGE_FILE_BYTES come back with `sections` as a one-pass
    iterator of plain-text blocks (heading paths are not tracked there), read lazily.
    """
    kind = SUPPORTED.get(path.suffix.lower())
    if kind is None:
        raise DocumentError(f"{path}: unsupported file type '{path.suffix}'")
    source = source or path.as_posix()
    try:
        size = path.stat().st_size
        if kind in ("text", "markdown") and size > LARGE_FILE_BYTES:
            return _load_large_text(path, source)
        raw = path.read_bytes()
    except OSError as e:
        raise DocumentError(f"{path}: cannot read ({e.strerror or e})") from e
    digest = hashlib.sha256(raw).hexdigest()
    if kind == "pdf":
        title, sections = _parse_pdf(path, raw)
    elif path.suffix.lower() in READERS:
        title, sections = READERS[path.suffix.lower()][1](path, raw)
    else:
        text = decode(raw, path)
        if kind == "markdown":
            title, sections = _parse_markdown(text)
        elif kind == "html":
            title, sections = _parse_html(text)
        else:
            title, sections = _first_line_title(text), (Section(text.strip()),)
    sections = tuple(s for s in sections if s.text.strip())
    if not sections:
        raise DocumentError(f"{path}: no text in file")
    return Document(source=source, title=title or path.stem, sections=sections, sha256=digest)


def _load_large_text(path: Path, source: str) -> Document:
    with path.open("rb") as fh:
        sample = fh.read(BLOCK_BYTES)
    encoding = detect_encoding(sample, path, partial=True)
    blocks = (s for s in _read_blocks(path, encoding) if s.text.strip())
    first = next(blocks, None)
    if first is None:
        raise DocumentError(f"{path}: no text in file")
    log.info("%s: large file (%d MB), read in blocks", path, path.stat().st_size >> 20)
    return Document(source=source, title=_first_line_title(first.text) or path.stem,
                    sections=itertools.chain([first], blocks), sha256=file_sha256(path))


def _read_blocks(path: Path, encoding: str) -> Iterator[Section]:
    """Decoded text in blocks of about BLOCK_BYTES, cut at paragraph or line ends when possible."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    carry = ""
    with path.open("rb") as fh:
        while block := fh.read(BLOCK_BYTES):
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
    yield Section(carry + decoder.decode(b"", final=True))


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


def _first_line_title(text: str) -> str:
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line if len(line) <= 120 else ""
    return ""


_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*\n", re.S)


def _parse_markdown(text: str) -> tuple[str, tuple[Section, ...]]:
    from langchain_text_splitters import MarkdownHeaderTextSplitter

    title = ""
    m = _FRONT_MATTER.match(text)
    if m:
        for line in m.group(1).splitlines():
            key, _, value = line.partition(":")
            if key.strip().lower() == "title":
                title = value.strip().strip("'\"")
        text = text[m.end():]
    levels = [("#" * i, f"h{i}") for i in range(1, 7)]
    splitter = MarkdownHeaderTextSplitter(levels, strip_headers=True)
    sections = []
    for doc in splitter.split_text(text):
        heads = tuple(doc.metadata[f"h{i}"] for i in range(1, 7) if f"h{i}" in doc.metadata)
        sections.append(Section(doc.page_content, heads))
    if not title:
        title = next((s.headings[0] for s in sections if s.headings), "")
    return title, tuple(sections)


class _HTMLSections(HTMLParser):
    """Collects visible text by heading. Hidden markup is dropped: it is invisible to the reader
    and a favourite place to hide instructions aimed at the model. So is page furniture that
    says nothing about the page: navigation bars and sidebars (Sphinx's "Navigation", "Table of
    Contents" and "Quick search" blocks), search boxes, footers and heading permalinks (`¶`)."""

    SKIP = {"script", "style", "noscript", "template", "head", "svg", "iframe", "object", "nav",
            "search"}
    # roles and classes of navigation and permalinks (Sphinx, Read the Docs and common themes)
    SKIP_ROLES = {"navigation", "search", "contentinfo"}
    SKIP_CLASSES = {"headerlink", "sphinxsidebar", "sphinxsidebarwrapper", "related", "searchbox",
                    "wy-nav-side", "rst-footer-buttons", "footer"}
    BLOCK = {"p", "div", "li", "br", "tr", "section", "article", "pre", "blockquote", "table",
             "ul", "ol", "dd", "dt", "header", "footer", "main", "nav", "aside", "figure"}
    VOID = {"br", "img", "hr", "meta", "link", "input", "area", "base", "col", "embed",
            "source", "track", "wbr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.sections: list[Section] = []
        self._heads: list[tuple[int, str]] = []
        self._buf: list[str] = []
        self._stack: list[tuple[str, bool]] = []  # (tag, hidden-from-here)
        self._heading_level = 0
        self._heading_buf: list[str] = []
        self._in_title = False
        # an open table (outermost only; a table inside a cell reads as that cell's text)
        self._table: list[list[str]] | None = None
        self._table_depth = 0
        self._cell: list[str] | None = None

    def _hidden(self) -> bool:
        return any(h for _, h in self._stack)

    def handle_starttag(self, tag, attrs):
        a = {k: (v or "") for k, v in attrs}
        style = a.get("style", "").replace(" ", "").lower()
        hidden = (tag in self.SKIP or "hidden" in a or a.get("aria-hidden") == "true"
                  or "display:none" in style or "visibility:hidden" in style
                  or a.get("role", "").strip().lower() in self.SKIP_ROLES
                  or a.get("id", "").strip().lower() == "searchbox"
                  or not self.SKIP_CLASSES.isdisjoint(a.get("class", "").lower().split()))
        if tag == "title":
            self._in_title = True
        if tag not in self.VOID:
            self._stack.append((tag, hidden))
        if self._start_table_tag(tag):
            return
        if re.fullmatch(r"h[1-6]", tag) and not self._hidden():
            self._flush()
            self._heading_level = int(tag[1])
            self._heading_buf = []
        elif tag in self.BLOCK:
            self._buf.append("\n")

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False
        if tag in self.VOID:
            return
        self._end_table_tag(tag)
        # pop to the matching tag; tolerate sloppy markup
        for i in range(len(self._stack) - 1, -1, -1):
            if self._stack[i][0] == tag:
                del self._stack[i:]
                break
        if re.fullmatch(r"h[1-6]", tag) and self._heading_level:
            text = " ".join("".join(self._heading_buf).split())
            level = self._heading_level
            self._heading_level = 0
            if text:
                self._heads = [(lv, t) for lv, t in self._heads if lv < level] + [(level, text)]
        elif tag in self.BLOCK:
            self._buf.append("\n")

    def handle_data(self, data):
        if self._in_title:
            self.title += data
            return
        if self._hidden():
            return
        if self._table is not None:
            if self._cell is not None:
                self._cell.append(data)
            return
        (self._heading_buf if self._heading_level else self._buf).append(data)

    def _start_table_tag(self, tag: str) -> bool:
        """Tables are kept as tables (Markdown, header row repeated per chunk). True when the tag
        belongs to an open table and needs nothing else."""
        if tag == "table" and self._table is not None:
            self._table_depth += 1  # nested, hidden or not: its end tag must balance this
            return True
        if self._hidden():
            return False
        if tag == "table":
            self._table_depth = 1
            self._flush()
            self._table, self._cell = [], None
            return True
        if self._table is None or self._table_depth > 1:
            if self._cell is not None:
                self._cell.append(" ")
            return self._table is not None
        if tag == "tr":
            self._close_cell()
            self._table.append([])
        elif tag in ("td", "th"):
            self._close_cell()
            if not self._table:
                self._table.append([])
            self._cell = []
        elif self._cell is not None:
            self._cell.append(" ")
        return True

    def _close_cell(self) -> None:
        if self._cell is not None and self._table:
            self._table[-1].append(" ".join("".join(self._cell).split()))
        self._cell = None

    def _end_table_tag(self, tag: str) -> None:
        if self._table is None or tag != "table":
            if self._table is not None and tag in ("td", "th") and self._table_depth == 1:
                self._close_cell()
            return
        self._table_depth -= 1
        if self._table_depth:
            return
        self._close_cell()
        from .readers.tables import table_section

        section = table_section(self._table, headings=tuple(t for _, t in self._heads))
        self._table = None
        if section is not None:
            self.sections.append(section)

    def _flush(self):
        text = re.sub(r"[ \t]+", " ", "".join(self._buf))
        text = re.sub(r"\n\s*\n+", "\n\n", text).strip()
        if text:
            self.sections.append(Section(text, tuple(t for _, t in self._heads)))
        self._buf = []

    def close(self):
        super().close()
        self._flush()


def _parse_html(text: str) -> tuple[str, tuple[Section, ...]]:
    p = _HTMLSections()
    p.feed(text)
    p.close()
    title = " ".join(p.title.split())
    if not title:
        title = next((s.headings[0] for s in p.sections if s.headings), "")
    return title, tuple(p.sections)


def _parse_pdf(path: Path, raw: bytes) -> tuple[str, tuple[Section, ...]]:
    import io

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(raw))
        if reader.is_encrypted:
            try:
                ok = reader.decrypt("")
            except Exception:
                ok = 0
            if not ok:
                raise DocumentError(f"{path}: encrypted PDF (password required)")
        sections = []
        scanned = []
        for i, page in enumerate(reader.pages, 1):
            text = page.extract_text() or ""
            if len("".join(text.split())) < OCR_BELOW_CHARS:
                scanned.append(i)
            if text.strip():
                sections.append(Section(text, (f"page {i}",), Location(page=i)))
        if scanned:
            sections = _ocr_pages(path, reader, scanned, sections)
        meta_title = (reader.metadata.title if reader.metadata else None) or ""
    except DocumentError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError, RecursionError) as e:
        raise DocumentError(f"{path}: broken PDF ({type(e).__name__}: {e})") from e
    except Exception as e:  # pypdf raises a wide range of errors on damaged input
        raise DocumentError(f"{path}: broken PDF ({type(e).__name__})") from e
    return str(meta_title).strip(), tuple(sections)


# A page whose text layer has fewer non-space characters than this is taken for a scan and its
# images are OCR'd (a scanned page often carries a stamped page number or a few stray glyphs).
# 0 turns the heuristic, and so PDF OCR, off.
OCR_BELOW_CHARS = 20


def _ocr_pages(path: Path, reader, numbers: list[int], sections: list[Section]) -> list[Section]:
    """`sections` with the OCR'd text of the pages in `numbers` put in page order. A page that
    yields nothing is left out; a missing engine is one warning, not an error."""
    from .readers import ocr

    pages = {s.location.page: s for s in sections}
    with_images = [i for i in numbers if _page_images(reader.pages[i - 1], probe=True)]
    if not with_images:
        return sections
    if not ocr.available():
        log.warning("%s: %d page(s) without a text layer not read: %s", path, len(with_images), ocr.MISSING)
        return sections
    for i in with_images:
        texts = []
        for image in _page_images(reader.pages[i - 1]):
            w, h = image.size
            if w * h > ocr.MAX_PIXELS:
                log.warning("%s: page %d: image of %dx%d pixels too large for OCR", path, i, w, h)
                continue
            texts.append(ocr.image_text(image))
        text = "\n".join(t for t in texts if t.strip())
        old = pages.get(i)
        if text.strip():
            log.info("%s: page %d read by OCR", path, i)
            pages[i] = Section(text if old is None else f"{old.text}\n{text}", (f"page {i}",), Location(page=i))
    return [pages[i] for i in sorted(pages)]


def _page_images(page, *, probe: bool = False) -> list:
    """The page's images as PIL images (`probe`: whether it has any, without decoding them).
    An image pypdf cannot decode is passed over with a warning."""
    try:
        files = page.images
        if probe:
            return [True] if len(files) else []
        out = []
        for f in files:
            try:
                out.append(f.image)
            except Exception as e:  # an unsupported filter (JBIG2 without its decoder, say)
                log.warning("image %s not decoded for OCR (%s)", f.name, type(e).__name__)
        return out
    except Exception as e:
        log.warning("page images not read for OCR (%s)", type(e).__name__)
        return []
