"""Reader numbering and the Sources footer (rag.present): what plain-text clients show."""
import pytest

from rag.present import footer, numbered, source_line
from rag.types import Answer, Citation, Location

pytestmark = pytest.mark.unit


def cite(n, source, *, heading="", location=None, inferred=False):
    return Citation(n, source, f"{source}#0", 0.5, "snippet", heading=heading, location=location,
                    inferred=inferred)


def test_markers_are_renumbered_in_reading_order():
    a = Answer("q", "GANs pit two networks [4]. The generator fakes [2, 4]. Both learn [2].",
               citations=[cite(2, "b.md"), cite(4, "a.md")])
    shown = numbered(a)
    assert shown.text == "GANs pit two networks [1]. The generator fakes [2, 1]. Both learn [2]."
    assert [(c.n, c.source) for c in shown.citations] == [(1, "a.md"), (2, "b.md")]
    assert shown.block_of == {1: 4, 2: 2} and shown.number_of(2) == 2 and shown.number_of(3) is None


def test_an_unmarked_source_follows_and_a_marker_of_no_source_goes():
    a = Answer("q", "It says so [3]. Also this [1].", citations=[cite(1, "x.md"), cite(2, "y.md", inferred=True)])
    shown = numbered(a)
    # [3] names no citation (a block the checks dropped): it would point nowhere
    assert shown.text == "It says so. Also this [1]."
    assert [(c.n, c.source) for c in shown.citations] == [(1, "x.md"), (2, "y.md")]


def test_footer_names_file_place_and_heading():
    cs = [cite(1, "notes/lora.md", heading="Fine-tuning > LoRA"),
          cite(2, "report.pdf", heading="Results > page 4", location=Location(page=4)),
          cite(3, "sales.xlsx", location=Location(sheet="Q1", rows=(2, 9)))]
    assert footer(cs) == ("\n\nSources:\n[1] notes/lora.md (Fine-tuning > LoRA)\n"
                          "[2] report.pdf, page 4 (Results)\n[3] sales.xlsx, sheet Q1, rows 2-9")
    assert source_line(cite(7, "a.md")) == "[7] a.md"


def test_no_citations_no_footer():
    a = Answer("q", "Not found in your documents.", abstained=True)
    shown = numbered(a)
    assert shown.text == a.text and footer(shown.citations) == ""


def test_code_subscripts_keep_their_numbers():
    a = Answer("q", "In R, x[2] returns the second element and m[1, 3] an entry [4].\n\n[7] Also this [2].",
               citations=[cite(2, "b.md"), cite(4, "a.md")])
    shown = numbered(a)
    # only the markers are renumbered; [7] names no citation and goes, the paragraph break stays
    assert shown.text == "In R, x[2] returns the second element and m[1, 3] an entry [1].\n\n Also this [2]."


def test_a_footer_sent_back_as_history_is_taken_off():
    from rag.present import without_footer

    answer = "GANs pit two networks [1]."
    sent = answer + footer([cite(1, "notes/gan.md", heading="GANs")])
    assert without_footer(sent) == answer
    assert without_footer("Sources: my own words.") == "Sources: my own words."  # not a footer


def test_without_footer_takes_off_the_coverage_line_too():
    from rag.present import coverage_line, without_footer
    from rag.types import Coverage

    for cov in (Coverage(scope="summary", document="a.md", chunks_read=3, chunks_total=3),
                Coverage(scope="list", chunks_read=58, chunks_total=58, documents_read=5, documents_found=1)):
        text = "- one [1]\n- two [1]"
        sent = f"{text}\n\n{coverage_line(cov)}" + footer([Citation(1, "a.md", "a.md#0", 1.0, "one")])
        assert without_footer(sent) == text
        assert without_footer(f"{text}\n\n{coverage_line(cov)}") == text
    assert without_footer("Searched the notes.\n\nRead more in the manual.") == "Searched the notes.\n\nRead more in the manual."
