"""PNG, JPEG and TIFF files, read by OCR (see `ocr`); each frame of a multi-page TIFF is a page.

Every frame's size is read from its header and checked against the budget's `pixels` before any
frame is decoded (Pillow checks only the first frame, when the file is opened); each frame is
charged to `images` and `ocr_pages` as its header is read, so a file of too many pages stops
before minutes of OCR. Frames are found by seeking one past the last, so no more headers are read
than the budget allows (`n_frames` would walk every frame header in the file first).
"""
from __future__ import annotations

import io
import struct
import warnings
from pathlib import Path

from ..errors import DocumentError, OverBudget
from ..types import Location, Section
from . import ocr
from .budget import Budget


def read(path: Path, raw: bytes, *, budget: Budget | None = None) -> tuple[str, tuple[Section, ...]]:
    from PIL import Image, UnidentifiedImageError

    budget = Budget(path) if budget is None else budget
    limit = budget.limits.pixels
    texts: list[str] = []
    try:
        with warnings.catch_warnings():
            # sizes are checked below, against our own limit, before any pixel is decoded
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(raw))  # reads the first frame's header only
            frames = 0
            while True:  # every frame's header, so a frame over a limit stops the file before any OCR
                _check_size(path, image, frames, limit)
                budget.spend("images")  # each frame is decoded once, one at a time
                budget.spend("ocr_pages")  # and read by OCR
                frames += 1
                try:
                    image.seek(frames)  # the next frame's header only
                except EOFError:
                    break
            if not ocr.available():
                raise DocumentError(f"{path}: image not read: {ocr.MISSING}")
            for frame in range(frames):
                image.seek(frame)
                image.load()
                texts.append(ocr.image_text(image, budget=budget))
    except DocumentError:
        raise
    except Image.DecompressionBombError:  # so large that Pillow refuses even to open it
        raise DocumentError(f"{path}: image too large for OCR (limit {limit // 1_000_000} "
                            "megapixels)") from None
    except UnidentifiedImageError as e:
        raise DocumentError(f"{path}: not a readable image ({type(e).__name__})") from None
    # truncated or corrupt data; Pillow's TIFF tag parsing also fails with TypeError or struct.error
    except (OSError, ValueError, SyntaxError, TypeError, struct.error) as e:
        raise DocumentError(f"{path}: broken image ({' '.join(str(e).split())[:120]})") from None
    if len(texts) == 1:
        if not texts[0].strip():
            raise DocumentError(f"{path}: no text found by OCR")
        return "", (Section(texts[0]),)
    sections = tuple(Section(text, (f"page {n}",), Location(page=n))
                     for n, text in enumerate(texts, 1) if text.strip())
    if not sections:
        raise DocumentError(f"{path}: no text found by OCR")
    return "", sections


def _check_size(path: Path, image, frame: int, limit: int) -> None:
    """OverBudget("pixels") for a frame over `limit`, from its header, before it is decoded."""
    w, h = image.size
    if w * h > limit:
        where = f"page {frame + 1} of the image" if frame else "image"
        raise OverBudget(f"{path}: {where} too large for OCR ({w}x{h} pixels, limit "
                         f"{limit // 1_000_000} megapixels)", resource="pixels")

