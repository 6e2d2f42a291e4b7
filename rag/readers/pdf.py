"""PDF files through pypdf: one section per page (located by page number), the title from the
document's metadata, pages without a text layer read by OCR.

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
from __future__ import annotations

import io
import logging
import warnings
from pathlib import Path

from ..errors import DocumentError, OverBudget
from ..types import Location, Section
from . import ocr
from .budget import Budget

log = logging.getLogger(__name__)

# A page whose text layer has fewer non-space characters than this is taken for a scan and its
# images are OCR'd (a scanned page often carries a stamped page number or a few stray glyphs).
# 0 turns the heuristic, and so PDF OCR, off.
OCR_BELOW_CHARS = 20

# filters whose image Pillow decodes from the codestream's own header, which may state another
# size than the PDF dictionary's /Width and /Height: that header is read and checked as well
_SELF_SIZED = {"/DCTDecode", "/JPXDecode", "/CCITTFaxDecode", "/LZWDecode", "/ASCII85Decode"}


def read(path: Path, raw: bytes, *, budget: Budget | None = None) -> tuple[str, tuple[Section, ...]]:
    """A PDF's pages, one section each, its scanned pages read by OCR, within `budget`."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

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
