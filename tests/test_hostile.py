"""The twenty kinds of hostile file of benchmarks/hostile.py at small sizes, and a short seeded
fuzz run of the readers through index.build: nothing escapes as anything but a one-line
DocumentError, nothing aborts a build, and the budgets stop what they are meant to stop.
The full sizes, with each read's peak memory and time, are in BENCHMARKS.md ("Hostile files")."""
import pytest

from benchmarks import fuzz, hostile
from rag import ingest
from rag.errors import DocumentError, OverBudget
from rag.readers.budget import MB, ReadLimits

# small enough that each case reads in about a second here, and still over the limits below
SCALE = 0.02
LIMITS = ReadLimits(seconds=120, unpacked_bytes=4 * MB, markup_bytes=MB // 2, cells=50_000, ocr_pages=3,
                    pixels=200_000)
# the cases a budget must stop at this scale, and which budget
STOPPED_BY = {"xlsx_cells": "cells", "docx_markup": "markup_bytes", "docx_unpacked": "unpacked_bytes",
              "epub_markup": "markup_bytes", "html_deep": "depth", "html_unmatched": "depth",
              "pdf_ocr_pages": "ocr_pages", "tiff_frame": "pixels"}


@pytest.mark.parametrize("case", sorted(hostile.CASES))
def test_a_hostile_file_is_read_or_skipped_with_one_line(tmp_path, case):
    path = hostile.CASES[case](tmp_path / case, SCALE)
    try:
        doc = ingest.load(path, limits=LIMITS)
    except DocumentError as e:
        assert "\n" not in str(e) and str(e).startswith(str(path))
        if case in STOPPED_BY:
            assert isinstance(e, OverBudget) and e.resource == STOPPED_BY[case], e
        return
    assert case not in STOPPED_BY, f"{case} was read whole: {doc.title}"
    assert sum(len(s.text) for s in doc.sections) > 0


def test_the_sparse_sheet_is_read_from_its_cells_not_its_declared_size(tmp_path):
    doc = ingest.load(hostile.xlsx_sparse(tmp_path / "sparse", 1.0))  # the issue's own size, 200,000 rows
    text = "\n".join(s.text for s in doc.sections)
    assert "last row" in text and text.count("|") < 40


def test_a_seeded_fuzz_run_aborts_no_build_and_gives_every_skip_a_reason():
    r = fuzz.run(files=66, seed=7, embedder="hash", batch=33, log=lambda *_: None)
    assert r["aborted_builds"] == [] and r["unreasoned"] == []
    assert r["outcomes"].get("indexed", 0) > 0 and r["outcomes"].get("skipped", 0) > 0
    assert sum(r["outcomes"].values()) == 66


def test_the_same_seed_makes_the_same_files_on_every_run(tmp_path):
    # seeds written twice (the libraries stamp the time into packages; the harness fixes it)
    a = [p.read_bytes() for p in fuzz.mutants(fuzz.seeds(tmp_path / "s1"), 22, 3, _folder(tmp_path / "a"))]
    b = [p.read_bytes() for p in fuzz.mutants(fuzz.seeds(tmp_path / "s2"), 22, 3, _folder(tmp_path / "b"))]
    assert a == b and len(set(a)) == 22


def _folder(p):
    p.mkdir()
    return p
