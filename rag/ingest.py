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
import zlib
from html.parser import HTMLParser
from pathlib import Path
from typing import Iterator

from .errors import DocumentError, OverBudget
from .readers import READERS
from .readers.budget import DEFAULT_LIMITS, Budget, ReadLimits
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


def load(path: Path, *, source: str | None = None, limits: ReadLimits = DEFAULT_LIMITS) -> Document:
    """Read one file into a Document within `limits` (one `Budget` per document). Raises
    DocumentError with a one-line reason: `OverBudget` when the file goes over a limit, and any
    other failure of a reader or its library (NotImplementedError, OSError, RecursionError,
    MemoryError, zlib errors...) becomes a DocumentError that names the file and the kind of
    failure, so one bad file never stops a build.

    Text and Markdown files over LARGE_FILE_BYTES come back with `sections` as a one-pass
    iterator of plain-text blocks (heading paths are not tracked there), read lazily within the
    same time budget.
    """
    kind = SUPPORTED.get(path.suffix.lower())
    if kind is None:
        raise DocumentError(f"{path}: unsupported file type '{path.suffix}'")
    budget = Budget(path, limits)
    try:
        return _load(path, kind, source or path.as_posix(), budget)
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


def _load(path: Path, kind: str, source: str, budget: Budget) -> Document:
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
    if kind == "pdf":
        title, sections = read_pdf(path, raw, budget=budget)
    elif path.suffix.lower() in READERS:
        title, sections = READERS[path.suffix.lower()][1](path, raw, budget=budget)
    else:
        text = decode(raw, path)
        del raw
        budget.check_time()
        if kind == "markdown":
            title, sections = _parse_markdown(text)
        elif kind == "html":
            title, sections = _parse_html(text, budget)
        else:
            title, sections = _first_line_title(text), (Section(text.strip()),)
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
    return Document(source=source, title=_first_line_title(first.text) or path.stem,
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
    HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}

    # Elements whose end tag HTML lets a page leave out: the start tag of the key closes the
    # innermost open element of the first set when it is found above the innermost open one of
    # the second (its scope). `<p>a<p>b`, `<li>` lists and `<td>` tables written that way are
    # valid and common; without this their elements would pile up on the stack to the depth cap.
    # A simplified form of the HTML5 "in body" rules: only same-kind siblings, which is what
    # keeps the stack as deep as the page's real nesting.
    _SCOPE = frozenset({"table", "td", "th", "caption", "button", "object", "template", "applet",
                        "marquee", "html"})
    IMPLIED = {
        "p": (frozenset({"p"}), _SCOPE),
        "li": (frozenset({"li"}), _SCOPE | {"ul", "ol", "menu"}),
        "dt": (frozenset({"dt", "dd"}), _SCOPE | {"dl"}),
        "dd": (frozenset({"dt", "dd"}), _SCOPE | {"dl"}),
        "tr": (frozenset({"tr"}), frozenset({"table", "thead", "tbody", "tfoot", "html"})),
        "td": (frozenset({"td", "th"}), frozenset({"tr", "table", "html"})),
        "th": (frozenset({"td", "th"}), frozenset({"tr", "table", "html"})),
        "thead": (frozenset({"thead", "tbody", "tfoot"}), frozenset({"table", "html"})),
        "tbody": (frozenset({"thead", "tbody", "tfoot"}), frozenset({"table", "html"})),
        "tfoot": (frozenset({"thead", "tbody", "tfoot"}), frozenset({"table", "html"})),
        "option": (frozenset({"option"}), frozenset({"select", "datalist", "optgroup", "html"})),
        "optgroup": (frozenset({"optgroup", "option"}), frozenset({"select", "html"})),
    }

    def __init__(self, budget: Budget | None = None) -> None:
        super().__init__(convert_charrefs=True)
        self._budget = budget if budget is not None else Budget("<html>")
        self._title: list[str] = []
        self.sections: list[Section] = []
        self._heads: list[tuple[int, str]] = []
        self._buf: list[str] = []
        # open elements as (tag, hidden): hidden is "hidden from here on", this element's own
        # hiding or any parent's, so asking whether text is visible looks at the top entry only
        self._stack: list[tuple[str, bool]] = []
        # where each tag is open on the stack (ascending positions): an end tag finds its element,
        # or learns there is none, without scanning a deep stack
        self._open: dict[str, list[int]] = {}
        self._heading_level = 0
        self._heading_buf: list[str] = []
        self._in_title = False
        # an open table (outermost only; a table inside a cell reads as that cell's text)
        self._table: list[list[str]] | None = None
        self._table_depth = 0
        self._cell: list[str] | None = None
        self._tally = None  # the open table's CellTally

    @property
    def title(self) -> str:
        return "".join(self._title)

    def _hidden(self) -> bool:
        return bool(self._stack) and self._stack[-1][1]

    def _push(self, tag: str, hidden: bool) -> None:
        self._open.setdefault(tag, []).append(len(self._stack))
        self._stack.append((tag, hidden or self._hidden()))
        self._budget.allow("depth", len(self._stack))

    def _pop_to(self, depth: int) -> None:
        """Close every element from stack position `depth` up."""
        while len(self._stack) > depth:
            tag, _ = self._stack.pop()
            self._open[tag].pop()

    def _innermost(self, tags: frozenset[str]) -> int:
        at = -1
        for t in tags:
            where = self._open.get(t)
            if where and where[-1] > at:
                at = where[-1]
        return at

    def handle_starttag(self, tag, attrs):
        if attrs:
            a = {k: (v or "") for k, v in attrs}
            style = a.get("style", "").replace(" ", "").lower()
            hidden = (tag in self.SKIP or "hidden" in a or a.get("aria-hidden") == "true"
                      or "display:none" in style or "visibility:hidden" in style
                      or a.get("role", "").strip().lower() in self.SKIP_ROLES
                      or a.get("id", "").strip().lower() == "searchbox"
                      or not self.SKIP_CLASSES.isdisjoint(a.get("class", "").lower().split()))
        else:
            hidden = tag in self.SKIP
        if tag == "title":
            self._in_title = True
        if tag in self.IMPLIED:
            closes, scope = self.IMPLIED[tag]
            at = self._innermost(closes)
            if at >= 0 and at > self._innermost(scope):
                self._pop_to(at)
        if tag not in self.VOID:
            self._push(tag, hidden)
        if self._start_table_tag(tag):
            return
        if tag in self.HEADINGS and not self._hidden():
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
        # close the innermost open element of this tag and those inside it; an end tag with
        # nothing open to close is ignored (sloppy markup)
        if self._open.get(tag):
            self._pop_to(self._open[tag][-1])
        if tag in self.HEADINGS and self._heading_level:
            text = " ".join("".join(self._heading_buf).split())
            level = self._heading_level
            self._heading_level = 0
            if text:
                self._heads = [(lv, t) for lv, t in self._heads if lv < level] + [(level, text)]
        elif tag in self.BLOCK:
            self._buf.append("\n")

    def handle_data(self, data):
        if self._in_title:
            self._title.append(data)
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
            from .readers.tables import CellTally

            self._table, self._cell = [], None
            self._tally = CellTally(self._budget)  # cells charged as they are read, not at the end
            return True
        if self._table is None or self._table_depth > 1:
            if self._cell is not None:
                self._cell.append(" ")
            return self._table is not None
        if tag == "tr":
            self._close_cell()
            self._tally.end_row()
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
            text = " ".join("".join(self._cell).split())
            if text:
                self._tally.cell(len(self._table[-1]))
            self._table[-1].append(text)
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
        self._tally.end_row()
        from .readers.tables import table_section

        section = table_section(self._table, headings=tuple(t for _, t in self._heads), budget=self._budget,
                                counted=True)
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


# HTML is fed to the parser in blocks of this many characters, the time budget asked between them
HTML_BLOCK = 64 << 10


def _parse_html(text: str, budget: Budget | None = None) -> tuple[str, tuple[Section, ...]]:
    budget = budget if budget is not None else Budget("<html>")
    p = _HTMLSections(budget)
    for start in range(0, len(text), HTML_BLOCK):
        budget.spend("unpacked_bytes", min(HTML_BLOCK, len(text) - start))  # asks the time too
        p.feed(text[start:start + HTML_BLOCK])
    p.close()
    title = " ".join(p.title.split())
    if not title:
        title = next((s.headings[0] for s in p.sections if s.headings), "")
    return title, tuple(p.sections)


def read_pdf(path: Path, raw: bytes, *, budget: Budget | None = None) -> tuple[str, tuple[Section, ...]]:
    """A PDF's pages, one section each, its scanned pages read by OCR, within `budget`.

    Each page's text extraction asks the time first; a page without a text layer (see
    OCR_BELOW_CHARS) that shows images is charged to `ocr_pages` before it is OCR'd, so a
    20,000-page scan stops at the page limit rather than after hours. Images are found in the
    page's /Resources /XObject dictionaries (forms walked once each) without decoding anything;
    each is checked against `pixels` from its declared size and decoded at most once per
    document, one at a time (see `_PdfImages`).

    What bounds a single stream: pypdf (7.x as installed; 6.x the same) refuses to inflate any
    /FlateDecode stream, a page's content streams included, beyond
    `Configuration.zlib_maximum_output_length` (75 MB; LZW, RunLength, JBIG2 and Brotli likewise,
    and 75 MB for a page's array of content streams together) and to allocate an image buffer
    beyond `image_maximum_buffer_size` (75 MB), raising LimitReachedError. So a compressed bomb
    costs at most that per stream, and an image is checked here before pypdf gets that far.
    """
    import io

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    from .readers import ocr

    budget = budget if budget is not None else Budget(path)
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
        images = _PdfImages(path, budget)
        can_ocr: bool | None = None  # asked at the first scanned page: a missing engine warns once
        not_read = 0
        sections = []
        for i, page in enumerate(reader.pages, 1):
            budget.check_time()
            text = page.extract_text() or ""
            shown = images.find(page) if len("".join(text.split())) < OCR_BELOW_CHARS else None
            if shown:
                if can_ocr is None:
                    can_ocr = ocr.available()
                if can_ocr:
                    budget.spend("ocr_pages")
                    scanned = images.read(page, i, shown)
                    if scanned.strip():
                        log.info("%s: page %d read by OCR", path, i)
                        text = scanned if not text.strip() else f"{text}\n{scanned}"
                else:
                    not_read += 1
            if text.strip():
                sections.append(Section(text, (f"page {i}",), Location(page=i)))
        if not_read:
            log.warning("%s: %d page(s) without a text layer not read: %s", path, not_read, ocr.MISSING)
        meta_title = (reader.metadata.title if reader.metadata else None) or ""
    except DocumentError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError, RecursionError) as e:
        raise DocumentError(f"{path}: broken PDF ({type(e).__name__}: {' '.join(str(e).split())[:160]})") from e
    except Exception as e:  # pypdf raises a wide range of errors on damaged input
        raise DocumentError(f"{path}: broken PDF ({type(e).__name__})") from e
    return str(meta_title).strip(), tuple(sections)


# A page whose text layer has fewer non-space characters than this is taken for a scan and its
# images are OCR'd (a scanned page often carries a stamped page number or a few stray glyphs).
# 0 turns the heuristic, and so PDF OCR, off.
OCR_BELOW_CHARS = 20

# filters whose image Pillow decodes from the codestream's own header, which may state another
# size than the PDF dictionary's /Width and /Height: that header is read and checked as well
_SELF_SIZED = {"/DCTDecode", "/JPXDecode", "/CCITTFaxDecode", "/LZWDecode", "/ASCII85Decode"}


class _PdfImages:
    """The images of one PDF's pages, for OCR: found without decoding, each checked against the
    budget's `pixels` from its declared size, then decoded once per document (however many names
    or pages it is listed under), one at a time, and let go after OCR; the text read is kept
    for the next page that shows the same image. Each image decoded is charged to `images`.

    An image over `pixels` is passed over with a warning, not the whole document: not decoding
    it already costs nothing, and the text layer and the other pages are still worth reading
    (the same as before budgets, when such an image was skipped for OCR)."""

    def __init__(self, path: Path, budget: Budget) -> None:
        self.path, self.budget = path, budget
        self._texts: dict[tuple, str] = {}  # image object -> its OCR text ("" if not read)

    def find(self, page) -> tuple[list[tuple[tuple, object]], list[int]] | None:
        """The page's image XObjects and the declared pixels of its inline images, or None when
        it shows no image; nothing is decoded."""
        xobjects, inline = self._xobjects(page), self._inline_sizes(page)
        return (xobjects, inline) if xobjects or inline else None

    def read(self, page, number: int, shown: tuple[list[tuple[tuple, object]], list[int]]) -> str:
        """The OCR text of what `find` found on the page."""
        xobjects, inline = shown
        texts = [self._text_of(key, obj, number) for key, obj in xobjects]
        if inline:
            texts.append(self._inline_text(page, number, inline))
        return "\n".join(t for t in texts if t.strip())

    # -- finding images without decoding them

    def _xobjects(self, page) -> list[tuple[tuple, object]]:
        """(key, stream) of each distinct image XObject of the page, forms walked once each; the
        key is the indirect reference, so one object listed under many names is one entry."""
        from pypdf.generic import DictionaryObject, IndirectObject, StreamObject

        found: dict[tuple, object] = {}
        forms: set[tuple] = set()
        todo = [page]
        while todo:
            holder = todo.pop()
            self.budget.check_time()
            resources = holder.get("/Resources")
            resources = resources.get_object() if resources is not None else None
            if not isinstance(resources, DictionaryObject):
                continue
            xobjects = resources.get("/XObject")
            xobjects = xobjects.get_object() if xobjects is not None else None
            if not isinstance(xobjects, DictionaryObject):
                continue
            for name in list(xobjects):
                ref = xobjects.raw_get(name)
                obj = ref.get_object()
                if not isinstance(obj, StreamObject):
                    continue
                key = (ref.idnum, ref.generation) if isinstance(ref, IndirectObject) else ("direct", id(obj))
                subtype = obj.get("/Subtype")
                if subtype == "/Image":
                    found.setdefault(key, obj)
                elif subtype == "/Form" and key not in forms:  # a form may hold images; loops end here
                    forms.add(key)
                    todo.append(obj)
        return list(found.items())

    def _inline_sizes(self, page) -> list[int]:
        """Declared pixels of each inline image (BI ... ID ... EI) in the page's content."""
        contents = page.get_contents()
        if contents is None or b"ID" not in contents.get_data():  # no inline image data: no parse
            return []
        sizes = []
        for operands, operator in contents.operations:
            if operator == b"INLINE IMAGE":
                settings = operands.get("settings", {})
                w, h = _value(settings, "/W", "/Width"), _value(settings, "/H", "/Height")
                sizes.append(w * h if isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0 else -1)
        return sizes

    # -- decoding, one image at a time

    def _too_large(self, obj, what: str) -> bool:
        """Whether `obj` (an image stream) must not be decoded; says why in a warning."""
        from pypdf.generic import StreamObject

        for image in (obj, obj.get("/SMask")):  # the soft mask is decoded along with the image
            image = image.get_object() if image is not None else None
            if not isinstance(image, StreamObject):
                continue
            w, h = _value(image, "/Width"), _value(image, "/Height")
            if not (isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0):
                log.warning("%s: %s: image without a valid size, not read", self.path, what)
                return True
            pixels = max(w * h, _header_pixels(image) if _last_filter(image) in _SELF_SIZED else 0)
            try:
                self.budget.allow("pixels", pixels)
            except OverBudget:
                log.warning("%s: %s: image not read: %s pixels, over the limit of %s", self.path, what,
                            f"{pixels:,}", f"{self.budget.limits.pixels:,}")
                return True
        return False

    def _text_of(self, key: tuple, obj, number: int) -> str:
        if key in self._texts:
            return self._texts[key]
        self._texts[key] = ""  # a failure below is not retried on the next page
        what = f"page {number}"
        if self._too_large(obj, what):
            return ""
        from pypdf.generic._image_xobject import _xobj_to_image

        self.budget.spend("images")
        image = None
        try:
            image = _xobj_to_image(obj)[2]
            if image is None:
                return ""
            self._texts[key] = self._ocr(image)
        except DocumentError:
            raise
        except Exception as e:  # an unsupported filter (JBIG2 without its decoder, say)
            log.warning("%s: %s: image not decoded for OCR (%s)", self.path, what, type(e).__name__)
        finally:
            del image
            _release(obj)  # pypdf keeps a stream's decoded bytes until the document is closed
        return self._texts[key]

    def _inline_text(self, page, number: int, sizes: list[int]) -> str:
        """OCR of the page's inline images. pypdf decodes a page's inline images all together,
        so together they must fit one image's `pixels` and are charged to `images` first."""
        what = f"page {number}"
        if min(sizes) < 0:
            log.warning("%s: %s: inline image without a valid size, not read", self.path, what)
            return ""
        try:
            self.budget.allow("pixels", sum(sizes))
        except OverBudget:
            log.warning("%s: %s: inline images not read: %s pixels together, over the limit of %s",
                        self.path, what, f"{sum(sizes):,}", f"{self.budget.limits.pixels:,}")
            return ""
        self.budget.spend("images", len(sizes))
        texts = []
        try:
            for name in [n for n in page.images.keys() if isinstance(n, str) and n.startswith("~")]:
                image = page.images[name].image
                if image is not None:
                    texts.append(self._ocr(image))
                del image
        except DocumentError:
            raise
        except Exception as e:
            log.warning("%s: %s: inline images not decoded for OCR (%s)", self.path, what, type(e).__name__)
        finally:
            page._content_stream_images = None  # pypdf's cache of them on the page: let them go
        return "\n".join(t for t in texts if t.strip())

    def _ocr(self, image) -> str:
        from .readers import ocr

        return ocr.image_text(image, budget=self.budget)


def _value(d, *keys):
    """The first of `keys` that `d` (a PDF dictionary) holds, indirect references followed."""
    for key in keys:
        v = d.get(key)
        if v is not None:
            return v.get_object() if hasattr(v, "get_object") else v
    return None


def _last_filter(obj) -> str:
    filters = _value(obj, "/Filter")
    if isinstance(filters, list):
        filters = filters[-1] if filters else None
    return str(filters) if filters is not None else ""


def _header_pixels(obj) -> int:
    """Width x height that the image's own codestream header states (read, not decoded), or 0
    when Pillow does not know the format (pypdf's own decoding then goes by the declared size)."""
    import io
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(obj.get_data())) as im:  # the header only
                w, h = im.size
    except Image.DecompressionBombError:  # so large that Pillow refuses even to open it
        return 1 << 62
    except Exception:  # noqa: BLE001 - not a format Pillow opens by itself
        return 0
    finally:
        _release(obj)
    return w * h


def _release(obj) -> None:
    if hasattr(obj, "decoded_self"):
        obj.decoded_self = None
