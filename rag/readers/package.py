"""Checks on the zip container of Office files and EPUBs, before a library parses them.

A password-protected .docx/.xlsx/.pptx is not a zip at all but an OLE compound file holding an
encrypted package; so is a legacy .doc/.xls/.ppt renamed. Libraries fail on either with
"File is not a zip file", so the reason is told here in words a user can act on.

The zip's own directory is checked against the document's `Budget` before any part is unpacked:
the sizes it declares, all parts together (`unpacked_bytes`) and the markup parts that the XML
parsers hold in memory as trees (`markup_bytes`, a lower cap: python-docx and python-pptx parse
every XML part up front, and a tree takes many times its text). What a tree costs depends on its
nodes more than its bytes: lxml took +362 MB for 16 MB of `<w:p/>` but +840 MB for 16 MB of
`<a/>b` (two nodes in five bytes). So each markup part is also charged by its nodes, counted as it
is inflated below: `max(bytes, nodes x NODE_COST)`.

Declared sizes bound what a library gets, not what zipfile inflates on the way. CPython's
`ZipExtFile` (Lib/zipfile.py, 3.11) counts down the central directory's `file_size` (`self._left`)
and cuts each decompressed chunk at it (`data = data[:self._left]`), so a part never comes back
longer than declared. But `read()` of a whole part, which is how python-docx, python-pptx and
ebooklib read, asks `_read1(MAX_N)` with `MAX_N = 1 << 31 - 1` (1 GiB, by precedence): all the
compressed bytes at once, inflated with `max_length` 1 GiB, and cut only afterwards. A 204 KB part
declared as 1,000 bytes that inflates to 200 MB peaked at +200 MB here; a 1 MB one would take
1 GiB. So every deflated part is inflated once here, in bounded steps, and a part that goes past
its declared size is refused; after that the declared sizes are a true bound. Only stored and
deflated parts are allowed (all that OPC and OCF permit): bzip2 and LZMA chunks are inflated
without any `max_length`.
"""
from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

from ..errors import DocumentError
from .budget import Budget

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# A package with more parts than this is refused before its directory is parsed: zipfile builds
# a ZipInfo (~0.5 KB) per entry, and a real Office file or e-book has tens to a few thousand.
MAX_ENTRIES = 10_000
# the signature that starts every central directory entry: zipfile parses one ZipInfo for each,
# so their count in the file bounds the entries whatever the end record claims
_CENTRAL_ENTRY = b"PK\x01\x02"
# OPC (Office) and OCF (EPUB) allow only these; zipfile inflates others without an output limit
_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
# general purpose flags: 0 encrypted, 5 compressed patched data, 6 strong encryption
_ENCRYPTED, _PATCHED, _STRONG = 1 << 0, 1 << 5, 1 << 6
# parts parsed into in-memory trees (XML, XHTML, OPF, NCX)
MARKUP_SUFFIXES = (".xml", ".rels", ".xhtml", ".html", ".htm", ".opf", ".ncx", ".vml")
# Workbook parts the xlsx reader streams instead of holding (`sheet`, element by element): they
# count as cells, not markup. Known from the package's own relationships, never from part names
# alone, or a shared-string table or chart sheet (parsed whole) could hide under a sheet's name.
_WORKSHEET = ("/worksheet",)  # relationship types end so (transitional and strict namespaces)
_WORKSHEET_TYPE = "spreadsheetml.worksheet+xml"
# What one tree node (element, text, attribute counted twice) is charged as, in bytes of markup:
# lxml holds ~125 bytes per node (16 MB of `<a/>b`, 3.4 million nodes: +840 MB), and the markup
# budget assumes a tree ~20 times its text; ordinary Word XML (~20 bytes a node) pays its size.
NODE_COST = 125 / 20

NAMES = {"docx": "Word document", "pptx": "PowerPoint file", "xlsx": "Excel workbook", "epub": "EPUB"}
# the part that a package of each kind cannot be without
REQUIRED = {"docx": "word/", "pptx": "ppt/", "xlsx": "xl/", "epub": "META-INF/container.xml"}


def open_package(path: Path, raw: bytes, kind: str, *, budget: Budget | None = None) -> zipfile.ZipFile:
    """The file as a zip, checked to be a package of `kind` that fits `budget`; DocumentError
    (OverBudget for a size over the budget) with the reason if not."""
    budget = Budget(path) if budget is None else budget
    name = NAMES[kind]
    if raw.startswith(OLE_MAGIC):
        if "EncryptionInfo".encode("utf-16-le") in raw:
            raise DocumentError(f"{path}: password-protected {name} (remove the password to index it)")
        raise DocumentError(f"{path}: legacy binary Office file, not a {name}: save it as {path.suffix} first")
    if raw.count(_CENTRAL_ENTRY) > MAX_ENTRIES:
        raise DocumentError(f"{path}: broken {name} (a zip of over {MAX_ENTRIES:,} parts, not read)")
    try:
        zf = zipfile.ZipFile(io.BytesIO(raw))
        infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise DocumentError(f"{path}: broken {name} (not a zip package: {e})") from None
    except NotImplementedError as e:  # "version needed to extract" above 6.3
        raise DocumentError(f"{path}: broken {name} (unsupported zip feature: {e})") from None
    try:
        _check_entries(path, name, infos)
        names = [i.filename for i in infos]
        need = REQUIRED[kind]
        if not any(n == need or (need.endswith("/") and n.startswith(need)) for n in names):
            raise DocumentError(f"{path}: not a {name} (a zip without its {need.rstrip('/')} part)")
        budget.spend("unpacked_bytes", sum(i.file_size for i in infos))
        try:
            streamed = _worksheets(zf, infos, budget) if kind == "xlsx" else set()
        # a damaged part or header (ParseError is a SyntaxError; a bad offset a ValueError)
        except (SyntaxError, ValueError, OSError, zipfile.BadZipFile, zlib.error, EOFError) as e:
            raise broken(path, kind, e) from None
        budget.spend("markup_bytes", sum(i.file_size for i in infos if i.filename.lower().endswith(MARKUP_SUFFIXES)
                                         and i.filename not in streamed))
        for info in infos:
            budget.check_time()
            markup = info.filename.lower().endswith(MARKUP_SUFFIXES) and info.filename not in streamed
            nodes = _scan(path, name, raw, info, count=markup)
            if markup:
                budget.spend("markup_bytes", max(0, int(nodes * NODE_COST) - info.file_size))
    except BaseException:
        zf.close()
        raise
    return zf


def _check_entries(path: Path, name: str, infos: list[zipfile.ZipInfo]) -> None:
    """Refuse what zipfile or the parsers would fail on, or read as something else than the user
    sees: encrypted or patched parts, compression methods outside the formats, a name twice."""
    seen: set[str] = set()
    for i in infos:
        if i.flag_bits & (_ENCRYPTED | _STRONG):
            raise DocumentError(f"{path}: encrypted {name} (its part {i.filename[:80]} is encrypted)")
        if i.flag_bits & _PATCHED:
            raise DocumentError(f"{path}: broken {name} (part {i.filename[:80]} is patched zip data)")
        if i.compress_type not in _METHODS:
            raise DocumentError(f"{path}: broken {name} (part {i.filename[:80]} uses zip compression "
                                f"method {i.compress_type}; Office and EPUB allow stored or deflated only)")
        # a second part of the same name: zipfile returns the last one, other tools the first,
        # so what is indexed could differ from what the user reads
        if i.filename in seen:
            raise DocumentError(f"{path}: broken {name} (part {i.filename[:80]} appears twice)")
        seen.add(i.filename)


def _worksheets(zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo], budget: Budget) -> set[str]:
    """The parts that relationships name only as worksheets, and [Content_Types].xml gives no
    other type: the ones `sheet` streams. Relationship and content-type parts are read with
    iterparse, each element dropped once read, after their sizes are checked against the markup
    budget (they count as markup whatever this finds)."""
    import posixpath
    from xml.etree.ElementTree import iterparse

    meta = [i for i in infos if i.filename.endswith(".rels") or i.filename == "[Content_Types].xml"]
    budget.allow("markup_bytes", sum(i.file_size for i in meta))
    sheets: set[str] = set()
    other: set[str] = {"xl/workbook.xml"}  # openpyxl's workbook when no content type names one
    for info in meta:
        budget.check_time()
        # rels of dir/x.xml are dir/_rels/x.xml.rels; their targets are relative to dir
        base = posixpath.dirname(posixpath.dirname(info.filename))
        with zf.open(info) as src:
            for _, element in iterparse(src):
                tag = element.tag.rsplit("}", 1)[-1]
                if tag == "Relationship" and element.get("TargetMode") != "External":
                    target = element.get("Target") or ""
                    target = (target[1:] if target.startswith("/")
                              else posixpath.normpath(posixpath.join(base, target)))
                    (sheets if (element.get("Type") or "").endswith(_WORKSHEET) else other).add(target)
                elif tag == "Override" and _WORKSHEET_TYPE not in (element.get("ContentType") or ""):
                    other.add((element.get("PartName") or "").lstrip("/"))
                element.clear()
    return sheets - other


# inflate at most this much per step
_STEP_IN, _STEP_OUT = 64 << 10, 1 << 20


def _scan(path: Path, name: str, raw: bytes, info: zipfile.ZipInfo, *, count: bool) -> int:
    """Inflates a deflated part in bounded steps (memory stays at one step whatever it holds) and
    refuses it when it goes past its declared `file_size`. With `count`, the markup nodes in the
    part (an estimate, see `_nodes`); 0 without."""
    head = raw[info.header_offset:info.header_offset + 30]
    if len(head) < 30 or head[:4] != b"PK\x03\x04":
        return 0  # zipfile refuses the part when it is read ("Bad magic number"): a broken file
    name_len, extra_len = struct.unpack("<HH", head[26:30])
    start = info.header_offset + 30 + name_len + extra_len
    if info.compress_type == zipfile.ZIP_STORED:  # read as it lies, cut at its declared size
        return _nodes(raw, start, start + min(info.file_size, info.compress_size)) if count else 0
    if not count and info.file_size >= info.compress_size * 1100:
        return 0  # deflate cannot expand past ~1032x: a declared size above that cannot be a lie
    data = memoryview(raw)[start:start + info.compress_size]
    inflate = zlib.decompressobj(-zlib.MAX_WBITS)  # zip holds raw deflate streams
    left, nodes = info.file_size, 0
    try:
        for i in range(0, len(data), _STEP_IN):
            chunk = data[i:i + _STEP_IN]
            while chunk:
                out = inflate.decompress(chunk, _STEP_OUT)
                left -= len(out)
                if left < 0:
                    raise DocumentError(f"{path}: broken {name} (part {info.filename[:80]} unpacks past the "
                                        f"{info.file_size:,} bytes its zip entry declares)")
                if count:
                    nodes += _nodes(out, 0, len(out))
                chunk = inflate.unconsumed_tail
            if inflate.eof:
                break
    except zlib.error:
        pass  # damaged data: zipfile fails on it the same way when the library reads it
    return nodes


def _nodes(data: bytes, start: int, end: int) -> int:
    """About how many tree nodes markup `data[start:end]` parses into: elements (tags less end
    tags), text between tags, and attributes (twice: an attribute and its value's text). Byte
    counts in C, no parsing; a pattern cut by a step boundary is missed, which is noise."""
    elements = data.count(b"<", start, end) - data.count(b"</", start, end)
    texts = data.count(b">", start, end) - data.count(b"><", start, end)
    attributes = data.count(b'="', start, end) + data.count(b"='", start, end)
    return max(0, elements) + max(0, texts) + 2 * attributes


def broken(path: Path, kind: str, error: BaseException) -> DocumentError:
    """The one-line error for a package its library could not parse."""
    detail = " ".join(str(error).split())[:160]
    return DocumentError(f"{path}: broken {NAMES[kind]} ({type(error).__name__}{': ' + detail if detail else ''})")
