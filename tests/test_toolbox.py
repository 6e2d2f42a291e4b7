"""The MCP tools' decisions (rag.toolbox) without a server, over stand-ins: a question about a
whole document or collection through `ask`, with and without `document`."""
import pytest

from rag.errors import QueryError
from rag.toolbox import Toolbox

from survey_docs import MODEL_ANSWER, survey_rag


@pytest.fixture
def toolbox(tmp_path):
    return Toolbox(survey_rag(tmp_path / "docs", collections=str(tmp_path / "collections")))


def test_ask_about_a_document_reads_all_of_it_and_says_so(toolbox):
    r = toolbox.ask("Summarise this", document="owls.md")
    assert r["scope"] == "summary" and r["answer"].startswith("Summary of owls.md")
    assert r["coverage"]["document"] == "owls.md" and r["coverage"]["complete"] is True
    line = r["coverage_line"]
    assert line == f"Read {r['coverage']['chunks_read']} of {r['coverage']['chunks_total']} chunks of owls.md."
    # what the agent reads: the answer, what was read, then the sources
    assert r["text"].startswith(r["answer"] + "\n\n" + line + "\n\nSources:\n[1] owls.md")
    assert r["items"] and all(i["source"] == "owls.md" and f"[{i['n']}]" in r["answer"] for i in r["items"])


def test_a_which_files_question_lists_the_documents_with_its_coverage(toolbox):
    r = toolbox.ask("Which files mention owls?")
    assert r["scope"] == "documents" and {i["source"] for i in r["items"]} == {"owls.md", "bats.md"}
    assert "\n\nSearched 3 chunks in 2 documents; the topic is in 2.\n\nSources:\n" in r["text"]


def test_an_ordinary_answer_has_no_coverage(toolbox):
    r = toolbox.ask("When do owls hunt at night?", document="owls.md")
    assert r["answer"] == MODEL_ANSWER and r["scope"] == "" and r["coverage"] is None and r["items"] == []
    assert "Read " not in r["text"] and "Searched " not in r["text"]


@pytest.mark.parametrize("kw, message", [
    ({"document": "owsl.md"}, "document: no document of collection 'default' has the path 'owsl.md'.*did you mean owls.md"),
    ({"document": "zebras/"}, r"\(2 documents are indexed\)"),
    ({"document": ""}, "document must be a non-empty text"),
    ({"document": 5}, "document must be a non-empty text"),
    ({"document": "x" * 2000}, "at most 1024 characters"),
    ({"document": "owls.md", "source": "bats"}, "give source or document, not both"),
])
def test_a_document_that_is_not_indexed_is_refused_in_one_line(toolbox, kw, message):
    with pytest.raises(QueryError, match=message) as e:
        toolbox.ask("Summarise this", **kw)
    assert "\n" not in str(e.value)
