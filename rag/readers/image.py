"""PNG, JPEG and TIFF files, read by OCR (see `ocr`); each frame of a multi-page TIFF is a page."""
from __future__ import annotations

import io
import warnings
from pathlib import Path

from ..errors import DocumentError
from ..types import Location, Section
from . import ocr


def read(path: Path, raw: bytes) -> tuple[str, tuple[Section, ...]]:
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # the size is checked below, against our own limit, before any pixel is decoded
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(raw))  # reads the header only
            w, h = image.size
            if w * h > ocr.MAX_PIXELS:
                raise DocumentError(f"{path}: image too large for OCR ({w}x{h} pixels, "
                                    f"limit {ocr.MAX_PIXELS // 1_000_000} megapixels)")
            if not ocr.available():
                raise DocumentError(f"{path}: image not read: {ocr.MISSING}")
            image.load()
    except DocumentError:
        raise
    except Image.DecompressionBombError:  # so large that Pillow refuses even to open it
        raise DocumentError(f"{path}: image too large for OCR (limit {ocr.MAX_PIXELS // 1_000_000} "
                            "megapixels)") from None
    except UnidentifiedImageError as e:
        raise DocumentError(f"{path}: not a readable image ({type(e).__name__})") from None
    except (OSError, ValueError, SyntaxError) as e:  # truncated or corrupt image data
        raise DocumentError(f"{path}: broken image ({' '.join(str(e).split())[:120]})") from None
    frames = getattr(image, "n_frames", 1)
    if frames == 1:
        text = ocr.image_text(image)
        if not text.strip():
            raise DocumentError(f"{path}: no text found by OCR")
        return "", (Section(text),)
    sections = []
    for n in range(frames):
        image.seek(n)
        text = ocr.image_text(image)
        if text.strip():
            sections.append(Section(text, (f"page {n + 1}",), Location(page=n + 1)))
    if not sections:
        raise DocumentError(f"{path}: no text found by OCR")
    return "", tuple(sections)
