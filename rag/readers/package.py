"""Checks on the zip container of Office files and EPUBs, before a library parses them.

A password-protected .docx/.xlsx/.pptx is not a zip at all but an OLE compound file holding an
encrypted package; so is a legacy .doc/.xls/.ppt renamed. Libraries fail on either with
"File is not a zip file", so the reason is told here in words a user can act on.
"""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

from ..errors import DocumentError

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# a zip whose parts unpack to more than this is refused: XML parsers hold parts in memory
MAX_UNZIPPED_BYTES = 1 << 30

NAMES = {"docx": "Word document", "pptx": "PowerPoint file", "xlsx": "Excel workbook", "epub": "EPUB"}
# the part that a package of each kind cannot be without
REQUIRED = {"docx": "word/", "pptx": "ppt/", "xlsx": "xl/", "epub": "META-INF/container.xml"}


def open_package(path: Path, raw: bytes, kind: str) -> zipfile.ZipFile:
    """The file as a zip, checked to be a package of `kind`; DocumentError with the reason if not."""
    name = NAMES[kind]
    if raw.startswith(OLE_MAGIC):
        if "EncryptionInfo".encode("utf-16-le") in raw:
            raise DocumentError(f"{path}: password-protected {name} (remove the password to index it)")
        raise DocumentError(f"{path}: legacy binary Office file, not a {name}: save it as {path.suffix} first")
    try:
        zf = zipfile.ZipFile(io.BytesIO(raw))
        infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise DocumentError(f"{path}: broken {name} (not a zip package: {e})") from None
    if sum(i.file_size for i in infos) > MAX_UNZIPPED_BYTES:
        raise DocumentError(f"{path}: {name} unpacks to over {MAX_UNZIPPED_BYTES >> 20} MB, not read")
    names = [i.filename for i in infos]
    need = REQUIRED[kind]
    if not any(n == need or (need.endswith("/") and n.startswith(need)) for n in names):
        raise DocumentError(f"{path}: not a {name} (a zip without its {need.rstrip('/')} part)")
    return zf


def broken(path: Path, kind: str, error: BaseException) -> DocumentError:
    """The one-line error for a package its library could not parse."""
    detail = " ".join(str(error).split())[:160]
    return DocumentError(f"{path}: broken {NAMES[kind]} ({type(error).__name__}{': ' + detail if detail else ''})")
