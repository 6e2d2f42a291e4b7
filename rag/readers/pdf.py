"""PDF files through pypdf, and pdfplumber for the pages that need word positions: one section
per page (located by page number), and one per table and per text between tables on a page
with ruled tables; the title from the document's metadata, pages without a text layer read by
OCR, the words in the figures of pages with one read by OCR as well (OCR_FIGURES), running
headers and footers dropped (see `pdf_layout` for these heuristics).

pypdf reads every page (45-55 pages/s on the R manuals here); pdfplumber (pdfminer), about
three times slower (17-20 pages/s), reads again only a page whose sketch from pypdf's pass
(`pdf_layout.PageSketch`) shows a grid of rules, for its tables, or columns that pypdf's stream
order would interleave, and only when the page is small enough for it (`_PlumbedPages.allows`):
pdfminer lays out every glyph and path as objects and inflates streams without a limit. A page
pdfplumber fails on, or whose rules hold no table, keeps pypdf's text.

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
costs at most that per stream, and an image is checked here before pypdf gets that far; a
stream pdfminer would decode for a page is first measured so by pypdf.
"""
from __future__ import annotations

import io
import logging
import re
import warnings
from pathlib import Path
from typing import Protocol

from ..errors import DocumentError, OverBudget
from ..types import Location, Section
from . import ocr
from . import pdf_layout as layout
from .budget import Budget
from .tables import table_section

log = logging.getLogger(__name__)

# A page whose text layer has fewer non-space characters than this is taken for a scan and its
# images are OCR'd (a scanned page often carries a stamped page number or a few stray glyphs).
# 0 turns the heuristic, and so PDF OCR, off.
OCR_BELOW_CHARS = 20

# Figures on pages that do have a text layer (a diagram's labels, a chart's axes, a scan pasted
# into a report): each image of at least FIGURE_MIN_PIXELS declared pixels is OCR'd, at most
# FIGURE_MAX per document (each costs a second or more of Tesseract on 2 cores), and its text is
# kept, on its page, when it holds at least FIGURE_MIN_WORDS words of three letters or more:
# photographs and decorations give none or noise. False reads only the text layer of such pages.
OCR_FIGURES = True
FIGURE_MIN_PIXELS = 200 * 100  # a logo or an icon is smaller
FIGURE_MAX = 50
FIGURE_MIN_WORDS = 3
FIGURE_LABEL = "Text in a figure:"  # opens the block, so a reader of a citation knows where it came from

# filters whose image Pillow decodes from the codestream's own header, which may state another
# size than the PDF dictionary's /Width and /Height: that header is read and checked as well
_SELF_SIZED = {"/DCTDecode", "/JPXDecode", "/CCITTFaxDecode", "/LZWDecode", "/ASCII85Decode"}

# -- what a page may cost pdfplumber (see `_PlumbedPages.allows`)
PLUMBER_MAX_OPERATORS = 60_000  # content operators, a form's counted each time it is drawn
PLUMBER_MAX_SHOWN_BYTES = 60_000  # bytes of text shown (a glyph is one byte or more)
PLUMBER_MAX_STREAM_BYTES = 16 << 20  # one stream pdfminer would decode (content, form, font)
# pdfminer keeps what it parsed until the document is closed: opened anew past this much
PLUMBER_REOPEN_BYTES = 64 << 20
# a page more than this share of whose words are glyphs without a character ("(cid:12)") keeps
# pypdf's text; fewer are dropped (TeX draws a box's round corners with glyphs of a font)
PLUMBER_MAX_UNMAPPED = 0.1
_UNMAPPED = re.compile(r"(\(cid:\d+\))+")
# points between two glyphs that start a new word: TeX sets words 2-3 points apart with no
# space character between them, which pdfplumber's default of 3 runs together
PLUMBER_WORD_GAP = 1.5
# pypdf follows no more forms than this on a page (Configuration.xform_maximum_invocations_per_
# extraction): past it the sketch's count of operators falls short of what pdfminer would run
_PYPDF_MAX_FORMS = 5_000


class PageLog(Protocol):
    """Where a read keeps its pages as it goes (`rag.resume.PageLog`), so that a read killed on
    page N goes on from there the next time: the pages a read of the same bytes kept, in order
    from page 1, and each page read, as (number, blocks)."""

    def pages(self) -> list[tuple[int, list]]: ...

    def add(self, number: int, blocks: list) -> None: ...


def read(path: Path, raw: bytes, *, budget: Budget | None = None,
         page_log: PageLog | None = None) -> tuple[str, tuple[Section, ...]]:
    """A PDF's pages, one section each (and one per table and per text between tables), its
    scanned pages read by OCR, its running headers and footers dropped, within `budget`.

    With `page_log`, the pages it holds are taken as read and each page read after them is
    added to it, while the read has used no OCR: OCR carries state from page to page (an image
    read once for all the pages that show it, figures counted against FIGURE_MAX) that the pages'
    blocks alone would not bring back, so from the first page that changes it on, pages are read
    again after a kill. The sections come out the same either way: running lines are found over
    all the pages' blocks, read or taken up, once all are there.
    """
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    budget = budget if budget is not None else Budget(path)
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    plumbed = _PlumbedPages(raw, budget=budget)
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
        # page number, its text blocks and tables in order: first those an interrupted read kept
        pages = _taken_up(page_log, len(reader.pages), path)
        logging_pages = page_log is not None
        for i in range(len(pages) + 1, len(reader.pages) + 1):
            page = reader.pages[i - 1]
            state = _ocr_state(images, budget) if logging_pages else None
            budget.check_time()
            sketch = layout.PageSketch()
            text = page.extract_text(visitor_text=sketch.text, visitor_operand_before=sketch.operator) or ""
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
                blocks = [text]
            else:
                blocks = _laid_out(page, i, sketch, plumbed) or [text]
                # (OCR_BELOW_CHARS 0 switches all PDF OCR off, figures included)
                figure = images.figure_text(page, i) if OCR_FIGURES and OCR_BELOW_CHARS and text.strip() else ""
                if figure:
                    blocks = [*blocks, f"{FIGURE_LABEL} {figure}"]
            pages.append((i, blocks))
            if logging_pages:  # kept while no OCR has run (see the docstring)
                logging_pages = _ocr_state(images, budget) == state
                if logging_pages:
                    page_log.add(i, blocks)
        if not_read:
            log.warning("%s: %d page(s) without a text layer not read: %s", path, not_read, ocr.MISSING)
        meta_title = (reader.metadata.title if reader.metadata else None) or ""
    except DocumentError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError, RecursionError) as e:
        raise DocumentError(f"{path}: broken PDF ({type(e).__name__}: {' '.join(str(e).split())[:160]})") from e
    except Exception as e:  # pypdf raises a wide range of errors on damaged input
        raise DocumentError(f"{path}: broken PDF ({type(e).__name__})") from e
    finally:
        plumbed.close()
    return str(meta_title).strip(), _sections(pages, budget)


def _taken_up(page_log: PageLog | None, n_pages: int, path: Path) -> list[tuple[int, list]]:
    """The pages 1..N that `page_log` kept (none without one)."""
    pages = page_log.pages() if page_log is not None else []
    if len(pages) > n_pages or [n for n, _ in pages] != list(range(1, len(pages) + 1)):
        return []  # not this document's pages (the log is keyed by its bytes): all read again
    if pages:
        log.info("%s: pages 1-%d taken from an interrupted read", path, len(pages))
    return pages


def _ocr_state(images: "_PdfImages", budget: Budget) -> tuple:
    """What OCR carries from one page to the next: images read, figures counted, budget spent."""
    return len(images._texts), images.figures_read, sorted(budget.spent.items()), budget.ocr_seconds()


def _laid_out(page, number: int, sketch: layout.PageSketch, plumbed: _PlumbedPages) -> list | None:
    """The page's text blocks and tables as pdfplumber reads it, when its sketch shows rules
    that may be a table's or columns that pypdf's stream order would interleave, and pdfplumber
    may read it; None to keep pypdf's text: otherwise, when pdfplumber fails on the page, or when
    its rules held no table (a box around an example)."""
    ruled, interleaved = sketch.ruled(), sketch.interleaved()
    if not (ruled or interleaved) or not plumbed.allows(page, sketch):
        return None
    blocks = plumbed.read(page, number, tables=ruled)
    if not blocks or (not interleaved and all(isinstance(b, str) for b in blocks)):
        return None
    return blocks


def _sections(pages: list[tuple[int, list]], budget: Budget) -> tuple[Section, ...]:
    """One section per text block and per table, located by page; running lines dropped."""
    texts = layout.drop_running_lines([(n, [b for b in blocks if isinstance(b, str)]) for n, blocks in pages])
    sections = []
    for (number, blocks), kept in zip(pages, texts):
        kept = iter(kept)
        where, headings = Location(page=number), (f"page {number}",)
        for block in blocks:
            if isinstance(block, str):
                text = next(kept)
                if text.strip():
                    sections.append(Section(text, headings, where))
                continue
            table = table_section(block, headings=headings, location=where, budget=budget)
            if table is not None:
                sections.append(table)
    return tuple(sections)


class _PlumbedPages:
    """Pages read again by pdfplumber for their tables and columns, one at a time, out of the
    same bytes: opened at the first page that needs it, each page built from pypdf's object
    number (pdfplumber's page list would parse every page of a 2,000-page manual first, 5 s),
    and opened anew once `PLUMBER_REOPEN_BYTES` of streams were read through it. Nothing here
    raises for a damaged page: `read` gives None and the page keeps pypdf's text."""

    def __init__(self, raw: bytes, *, budget: Budget) -> None:
        self.raw, self.budget = raw, budget
        self._pdf = None
        self._broken = False  # pdfplumber could not open the file: pypdf's text for every page
        self._sizes = _DecodedSizes(budget)
        self._read_bytes = 0  # decoded bytes of the streams read since the document was opened

    def allows(self, page, sketch: layout.PageSketch) -> bool:
        """Whether pdfplumber may read `page` (pypdf's): within the operators and shown text it
        may lay out, and each stream it would decode measured by pypdf within
        `PLUMBER_MAX_STREAM_BYTES` (a stream pypdf cannot decode, or forms that draw each
        other, and the page is not read)."""
        if self._broken or page.indirect_reference is None:
            return False
        if (sketch.operators > PLUMBER_MAX_OPERATORS or sketch.shown > PLUMBER_MAX_SHOWN_BYTES
                or sketch.forms >= _PYPDF_MAX_FORMS):
            return False
        fresh = self._sizes.fresh(page)
        if fresh is None:
            return False
        self._read_bytes += fresh
        return True

    def read(self, page, number: int, *, tables: bool) -> list[str | list[list]] | None:
        """The page as text blocks and tables (rows of cells, the first the header) in reading
        order, or None when pdfplumber fails on it. `tables`: look for ruled tables."""
        try:
            plumbed = self._page(page.indirect_reference.idnum, number)
            if plumbed is None:
                return None
            try:
                return _blocks(plumbed, tables=tables, budget=self.budget)
            finally:
                plumbed.close()
        except (DocumentError, MemoryError):
            raise
        except Exception as e:  # noqa: BLE001 - pdfminer raises a wide range of errors on damaged input
            log.debug("page %d: pdfplumber failed (%s); pypdf's text kept", number, type(e).__name__)
            return None

    def close(self) -> None:
        # let it go without pdfplumber's close(), which lists (parses) every page to close each;
        # the pages read were closed one by one and the bytes are ours
        self._pdf = None

    def _page(self, idnum: int, number: int):
        """pdfplumber's Page for the page object `idnum`, its inherited attributes filled in as
        pdfminer's own page walk does."""
        from pdfminer.pdfpage import LITERAL_PAGE, PDFPage
        from pdfminer.pdftypes import resolve1
        from pdfplumber.page import Page

        pdf = self._open()
        if pdf is None:
            return None
        attrs = resolve1(pdf.doc.getobj(idnum))
        if not isinstance(attrs, dict) or attrs.get("Type") is not LITERAL_PAGE:
            return None  # pdfminer found another object under that number than pypdf did
        attrs, parent, seen = dict(attrs), attrs.get("Parent"), set()
        while parent is not None and id(parent) not in seen and len(seen) < 64:
            seen.add(id(parent))
            node = resolve1(parent)
            if not isinstance(node, dict):
                break
            for key in PDFPage.INHERITABLE_ATTRS:
                if key not in attrs and key in node:
                    attrs[key] = node[key]
            parent = node.get("Parent")
        return Page(pdf, PDFPage(pdf.doc, idnum, attrs, None), page_number=number)

    def _open(self):
        import pdfplumber

        if self._pdf is not None and self._read_bytes > PLUMBER_REOPEN_BYTES:
            self.close()
            self._read_bytes = 0
        if self._pdf is None and not self._broken:
            logging.getLogger("pdfminer").setLevel(logging.ERROR)
            try:
                self._pdf = pdfplumber.open(io.BytesIO(self.raw))
            except Exception as e:  # noqa: BLE001
                log.debug("pdfplumber cannot open the file (%s); pypdf's text kept", type(e).__name__)
                self._broken = True
        return self._pdf


def _blocks(page, *, tables: bool, budget: Budget) -> list[str | list[list]] | None:
    """Text blocks and tables of a pdfplumber page, top to bottom: the text between tables read
    by `layout.reading_lines`, without the words inside a table. None when many words are glyphs
    that pdfminer could not map to characters ("(cid:12)"): pypdf may read them better."""
    budget.check_time()
    found = _tables(page) if tables else []
    budget.check_time()
    words = page.extract_words(x_tolerance=PLUMBER_WORD_GAP)
    unmapped = sum(bool(_UNMAPPED.fullmatch(w["text"])) for w in words)
    if unmapped > PLUMBER_MAX_UNMAPPED * len(words):
        return None
    bands: list[list[layout.Box]] = [[] for _ in range(len(found) + 1)]  # above, between, below
    for w in words:
        if _UNMAPPED.fullmatch(w["text"]):
            continue  # a glyph without a character (a box's corner drawn from a font)
        box = layout.Box(float(w["x0"]), float(w["top"]), float(w["x1"]), float(w["bottom"]), w["text"])
        x, y = (box.x0 + box.x1) / 2, (box.top + box.bottom) / 2
        if any(x0 <= x <= x1 and top <= y <= bottom for (x0, top, x1, bottom), _ in found):
            continue  # a cell's word: read with its table
        bands[sum(bottom <= y for (_, _, _, bottom), _ in found)].append(box)
    out: list[str | list[list]] = []
    for k, band in enumerate(bands):
        text = "\n".join(layout.reading_lines(band))
        if text.strip():
            out.append(text)
        if k < len(found):
            out.append(found[k][1])
    return out


def _tables(page) -> list[tuple[tuple, list[list]]]:
    """(bounding box, rows of cell texts) of each table pdfplumber finds along the page's rules,
    top to bottom, that has text in 2 rows and 2 columns or more (rules around a figure or a
    lone box make one-column "tables")."""
    found = []
    for table in page.find_tables():
        rows = table.extract(x_tolerance=PLUMBER_WORD_GAP)
        filled = [[j for j, cell in enumerate(row) if cell and cell.strip()] for row in rows]
        if sum(bool(f) for f in filled) >= 2 and len({j for f in filled for j in f}) >= 2:
            found.append((tuple(table.bbox), rows))
    return sorted(found, key=lambda t: t[0][1])


class _DecodedSizes:
    """The streams pdfminer would decode to lay out a page (its content, its forms and theirs,
    its fonts' programs and maps), each decoded by pypdf first, once per document, within
    pypdf's own limits, and only its size kept."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self._sizes: dict = {}  # stream -> decoded bytes, -1 when pypdf could not decode it
        self._fresh = 0

    def fresh(self, page) -> int | None:
        """Bytes of the page's streams that no page before it had; None when one is over
        `PLUMBER_MAX_STREAM_BYTES` or cannot be decoded, or when forms draw each other."""
        self._fresh = 0
        ok = self._stream(_raw(page, "/Contents")) and self._resources(page, ())
        return self._fresh if ok else None

    def _stream(self, ref) -> bool:
        from pypdf.generic import ArrayObject, StreamObject

        obj = ref.get_object() if ref is not None else None
        if isinstance(obj, ArrayObject):  # a page's content given in several streams
            return all(self._stream(part) for part in obj)
        if not isinstance(obj, StreamObject):
            return True
        key = _key(ref, obj)
        if key not in self._sizes:
            self.budget.check_time()
            try:
                self._sizes[key] = len(obj.get_data())
            except Exception:  # noqa: BLE001 - pypdf's LimitReachedError, an unknown filter
                self._sizes[key] = -1
            finally:
                _release(obj)
            self._fresh += max(self._sizes[key], 0)
        return 0 <= self._sizes[key] <= PLUMBER_MAX_STREAM_BYTES

    def _font(self, ref, depth: int = 0) -> bool:
        from pypdf.generic import ArrayObject, DictionaryObject

        font = ref.get_object() if ref is not None else None
        if not isinstance(font, DictionaryObject) or depth > 2:
            return True
        descriptor = _resolved(font, "/FontDescriptor")
        programs = [_raw(descriptor, k) for k in ("/FontFile", "/FontFile2", "/FontFile3")] \
            if isinstance(descriptor, DictionaryObject) else []
        descendants = _resolved(font, "/DescendantFonts")
        descendants = descendants if isinstance(descendants, ArrayObject) else []
        return (all(self._stream(r) for r in [_raw(font, "/ToUnicode"), _raw(font, "/Encoding"), *programs])
                and all(self._font(d, depth + 1) for d in descendants))

    def _resources(self, holder, forms: tuple) -> bool:
        """The fonts and forms of `holder` (a page or a form), `forms` the forms drawing it."""
        from pypdf.generic import DictionaryObject, StreamObject

        resources = _resolved(holder, "/Resources")
        if not isinstance(resources, DictionaryObject):
            return True
        fonts = _resolved(resources, "/Font")
        if isinstance(fonts, DictionaryObject) and not all(self._font(fonts.raw_get(n)) for n in fonts):
            return False
        xobjects = _resolved(resources, "/XObject")
        for name in xobjects if isinstance(xobjects, DictionaryObject) else ():
            ref = xobjects.raw_get(name)
            obj = ref.get_object()
            if not isinstance(obj, StreamObject) or obj.get("/Subtype") != "/Form":
                continue  # an image is not decoded to lay the page out
            key = _key(ref, obj)
            if key in forms or len(forms) > 16 or not (self._stream(ref) and self._resources(obj, (*forms, key))):
                return False
        return True


def _key(ref, obj) -> tuple:
    """What names a PDF object within the document: its object number, or itself if direct."""
    from pypdf.generic import IndirectObject

    return (ref.idnum, ref.generation) if isinstance(ref, IndirectObject) else ("direct", id(obj))


def _raw(d, key: str):
    """`d[key]` as stored (an indirect reference stays one: it names the object), or None."""
    return d.raw_get(key) if key in d else None


def _resolved(d, key: str):
    value = _raw(d, key)
    return value.get_object() if value is not None else None


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
        self.figures_read = 0  # images OCR'd on pages with a text layer (FIGURE_MAX)

    def find(self, page) -> tuple[list[tuple[tuple, object]], list[int]] | None:
        """The page's image XObjects and the declared pixels of its inline images, or None when
        it shows no image; nothing is decoded."""
        xobjects, inline = self._xobjects(page), self._inline_sizes(page)
        return (xobjects, inline) if xobjects or inline else None

    def figure_text(self, page, number: int) -> str:
        """The words OCR reads in the page's figures (image XObjects of FIGURE_MIN_PIXELS or
        more, FIGURE_MAX per document), those of too few words left out; "" without OCR."""
        figures = [(key, obj) for key, obj in self._xobjects(page)
                   if key not in self._texts and _declared_pixels(obj) >= FIGURE_MIN_PIXELS]
        if not figures or self.figures_read >= FIGURE_MAX or not ocr.available():
            return ""
        texts = []
        limits = self.budget.limits
        for key, obj in figures[:FIGURE_MAX - self.figures_read]:
            # best effort: figures may use half of the document's images and OCR time, so that
            # they never cost the scanned pages their reading, nor the document its place
            if self.budget.spent.get("images", 0) + 1 > limits.images // 2 or \
                    self.budget.ocr_seconds() > limits.ocr_seconds / 2:
                self.figures_read = FIGURE_MAX
                log.info("%s: figures past page %d not read: half the OCR budget is spent", self.path, number - 1)
                break
            self.figures_read += 1
            text = " ".join(self._text_of(key, obj, number).split())
            if sum(1 for w in text.split() if sum(ch.isalpha() for ch in w) >= 3) >= FIGURE_MIN_WORDS:
                texts.append(text)
        return "\n".join(texts)

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
        return ocr.image_text(image, budget=self.budget)


def _value(d, *keys):
    """The first of `keys` that `d` (a PDF dictionary) holds, indirect references followed."""
    for key in keys:
        v = d.get(key)
        if v is not None:
            return v.get_object() if hasattr(v, "get_object") else v
    return None


def _declared_pixels(obj) -> int:
    """Width x height an image dictionary declares (0 when it declares no valid size)."""
    w, h = _value(obj, "/Width"), _value(obj, "/Height")
    return w * h if isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0 else 0


def _last_filter(obj) -> str:
    filters = _value(obj, "/Filter")
    if isinstance(filters, list):
        filters = filters[-1] if filters else None
    return str(filters) if filters is not None else ""


def _header_pixels(obj) -> int:
    """Width x height that the image's own codestream header states (read, not decoded), or 0
    when Pillow does not know the format (pypdf's own decoding then goes by the declared size)."""
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
