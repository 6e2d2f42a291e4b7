"""OCR through Tesseract (Debian's tesseract-ocr, driven by pytesseract).

Chosen over rapidocr-onnxruntime on a generated scanned page (see README, "Documents"): both
run offline with no model download, Tesseract read the page exactly where RapidOCR dropped
and merged lines, and it comes from Debian instead of pulling OpenCV into the venv.
`RAG_OCR=off` turns OCR off; `RAG_OCR_LANG` picks Tesseract's languages ("eng+deu"; each needs
its tesseract-ocr-<lang> package). Without the engine, OCR is skipped with one warning.
"""
from __future__ import annotations

import logging
import math
import os
import shutil
import threading

log = logging.getLogger(__name__)

# images above this many pixels are not OCR'd: decoding alone would take gigabytes
MAX_PIXELS = 64_000_000
# Tesseract reads text best at about 300 dpi; an A4 page is about this tall at 200-300 dpi, and
# a larger image only costs time
MAX_SIDE = 3500

_warned = threading.Event()


def enabled() -> bool:
    """OCR is on unless RAG_OCR says off (off, 0, no, false)."""
    return os.environ.get("RAG_OCR", "on").strip().lower() not in ("off", "0", "no", "false")


def engine_path() -> str | None:
    """The tesseract binary pytesseract will run, or None when it is not installed."""
    import pytesseract

    cmd = pytesseract.pytesseract.tesseract_cmd
    return shutil.which(cmd) if not os.path.isabs(cmd) else (cmd if os.access(cmd, os.X_OK) else None)


def available() -> bool:
    """OCR can run: switched on and the engine installed. Warns once when the engine is missing."""
    if not enabled():
        return False
    if engine_path() is None:
        if not _warned.is_set():
            _warned.set()
            log.warning("OCR skipped: tesseract is not installed (Debian: apt-get install tesseract-ocr); "
                        "scanned pages and images are not read")
        return False
    return True


MISSING = "no OCR engine (install Debian's tesseract-ocr) or OCR is off (RAG_OCR)"


def image_text(image, *, budget=None) -> str:
    """The text Tesseract reads in a PIL image ('' for none). The caller checks `available()`.
    With a `budget`, Tesseract gets the document's OCR time left and OverBudget("ocr_seconds")
    follows when it runs out: one page of a pathological scan must not outlast the whole document."""
    import pytesseract

    image = image.convert("L")
    w, h = image.size
    if max(w, h) > MAX_SIDE:
        scale = MAX_SIDE / max(w, h)
        image = image.resize((max(1, int(w * scale)), max(1, int(h * scale))))
    lang = os.environ.get("RAG_OCR_LANG", "eng")
    if budget is None:
        text = pytesseract.image_to_string(image, lang=lang)
    else:
        failure = None
        with budget.ocr() as left:
            try:  # pytesseract's timeout 0 is none
                text = pytesseract.image_to_string(image, lang=lang,
                                                   timeout=max(1.0, left) if math.isfinite(left) else 0)
            except RuntimeError as e:  # pytesseract kills the process and says "Tesseract process timeout"
                failure = e
        if failure is not None:
            budget.check_time()  # over the OCR time: OverBudget
            raise failure  # another failure of Tesseract
    # Tesseract ends paragraphs with blank lines and pages with a form feed
    return "\n".join(line.rstrip() for line in text.replace("\f", "\n").splitlines()).strip()
