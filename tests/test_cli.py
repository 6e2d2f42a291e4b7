"""The CLI turns every error into one line on stderr and a non-zero exit code."""
import json
import os
import subprocess
import sys

import pytest


def rag(*args, env=None):
    return subprocess.run([sys.executable, "-m", "rag", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


@pytest.mark.parametrize("args, env, message", [
    (["ask", "   "], {}, "the question is empty"),
    (["ask", "What?", "--model", "/nonexistent/model.gguf"], {}, "model file not found"),
    (["ask", "What?", "--top-k", "0"], {}, "top_k must be at least 1"),
    (["ask", "What?"], {"RAG_N_CTX": "lots"}, "RAG_N_CTX"),
    (["ask", "What?", "--index", "/nonexistent/index"], {}, "no index at /nonexistent/index"),
    (["index", "/nonexistent/folder", "--index", "/proc/forbidden/idx"], {}, "error:"),
])
def test_errors_are_one_line(args, env, message):
    out = rag(*args, env=env)
    assert out.returncode != 0
    assert message in out.stderr
    assert "Traceback" not in out.stderr
    assert len([line for line in out.stderr.splitlines() if line.startswith("error:")]) == 1


def test_index_reports_summary(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "owls.md").write_text("# Owls\nOwls hunt at night and sleep by day.")
    (docs / "junk.bin.txt").write_bytes(b"\x00\x01" * 64)
    out = rag("index", str(docs), "--index", str(tmp_path / "idx"))
    assert out.returncode == 0, out.stderr
    assert "1 added, 0 updated, 0 removed, 0 unchanged, 1 skipped" in out.stdout
    assert "skipped" in out.stdout and "binary" in out.stdout
    again = rag("index", str(docs), "--index", str(tmp_path / "idx"))
    assert "0 added, 0 updated, 0 removed, 1 unchanged" in again.stdout


@pytest.fixture
def scripted(tmp_path):
    """A RAG of stand-ins over one document, whose model writes a made-up second sentence."""
    from rag import RAG
    from rag.testing import HashEmbedder, MemoryStore, ScriptedGenerator

    (tmp_path / "owls.md").write_text("# Owls\n\nOwls hunt at night and sleep by day.\n")

    def make():
        gen = ScriptedGenerator(["Owls hunt at night [1]. Nicki Minaj trains them [1]."])
        rag = RAG(embedder=HashEmbedder(dim=512), generator=gen, store=store, corpus=str(tmp_path),
                  guards="small", checks_off="relevance", min_score=0.05)
        return rag
    store = MemoryStore()
    make().index()
    return make


def _args(question):
    import argparse

    return argparse.Namespace(question=question, template="few_shot", top_k=None)


def test_a_pipe_gets_only_the_checked_answer(scripted, capsys):
    from rag.cli import _stream_answer

    answer = _stream_answer(scripted(), _args("When do owls hunt?"), live=False)
    out = capsys.readouterr().out
    assert out == "Owls hunt at night [1].\n" and answer.text == "Owls hunt at night [1]."
    assert "Minaj" not in out


def test_a_terminal_sees_the_draft_replaced_by_the_checked_answer(scripted, capsys):
    from rag.cli import _stream_answer

    _stream_answer(scripted(), _args("When do owls hunt?"), live=True)
    out = capsys.readouterr().out
    draft, _, after = out.partition("\r")
    assert "Minaj" in draft and draft.startswith("\x1b[2m")  # streamed as generated, dimmed: a draft
    assert draft.endswith("\x1b[0m")
    assert after.startswith("\x1b[J") and after.endswith("Owls hunt at night [1].\n")
    assert "Minaj" not in after


def test_rollback_from_the_command_line(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "owls.md").write_text("# Owls\nOwls hunt at night and sleep by day.")
    idx = tmp_path / "idx"
    assert rag("index", str(docs), "--index", str(idx)).returncode == 0
    (docs / "bats.md").write_text("# Bats\nBats hunt insects at dusk.")
    assert rag("index", str(docs), "--index", str(idx)).returncode == 0
    live = (idx / "CURRENT").read_text()
    out = rag("index", "--rollback", "--index", str(idx))
    assert out.returncode == 0 and "is live again" in out.stdout
    assert (idx / "CURRENT").read_text() != live
    none = rag("index", "--rollback", "--index", str(tmp_path / "nothing"))
    assert none.returncode == 1 and "no intact older version" in none.stderr


# ---------------------------------------------------------------- whole-document questions

@pytest.fixture
def surveyed(tmp_path):
    from survey_docs import survey_rag

    return survey_rag(tmp_path / "docs")


def _survey_args(question, source=None):
    import argparse

    return argparse.Namespace(question=question, template="auto", top_k=None, source=source)


def test_a_terminal_shows_how_far_a_survey_has_read_on_stderr_then_clears_it(surveyed, capsys):
    from rag.cli import CLEAR_LINE, _print_notes, _stream_answer

    answer = _stream_answer(surveyed, _survey_args("Which files mention owls?"), live=False, status=True)
    out, err = capsys.readouterr()
    assert answer.scope == "documents" and out == answer.text + "\n"  # stdout: the answer alone
    assert err.startswith(f"\r{CLEAR_LINE}") and "Scored 3 chunks in 2 documents" in err
    assert err.endswith(f"\r{CLEAR_LINE}")  # the status line is gone before the answer shows
    _print_notes(answer)
    notes = capsys.readouterr().out
    # what was read, under the answer and before its sources; no similarity score for entries copied
    assert notes.startswith("\nSearched 3 chunks in 2 documents; the topic is in 2.\n\nSources:\n  [1] ")
    assert "score" not in notes and "Template: survey" in notes


def test_off_a_terminal_a_survey_prints_no_progress(surveyed, capsys):
    from rag.cli import _stream_answer

    _stream_answer(surveyed, _survey_args("Summarise this", "owls.md"), live=False, status=False)
    out, err = capsys.readouterr()
    assert err == "" and out.startswith("Summary of owls.md") and "\x1b" not in out


def test_an_abstaining_survey_still_says_what_it_read(surveyed, capsys):
    from rag.cli import _print_notes, _stream_answer

    answer = _stream_answer(surveyed, _survey_args("Which files mention zeppelins?"), live=False)
    _print_notes(answer)
    out = capsys.readouterr().out
    assert answer.abstained and "Searched 3 chunks in 2 documents; the topic is in 0." in out


def test_document_takes_an_indexed_path_a_prefix_or_the_file_and_names_close_ones(surveyed, tmp_path):
    from rag.cli import _document
    from rag.errors import ConfigError, QueryError

    assert _document(surveyed, "owls.md", None) == "owls.md"
    assert _document(surveyed, "ow", None) == "ow"  # a prefix: the documents under it
    assert _document(surveyed, str(tmp_path / "docs" / "owls.md"), None) == "owls.md"  # the file on disk
    with pytest.raises(QueryError, match=r"^--document: no document of the index has the path 'owsl.md'.*"
                                         r"did you mean owls.md"):
        _document(surveyed, "owsl.md", None)
    with pytest.raises(ConfigError, match="not both"):
        _document(surveyed, "owls.md", "bats")


@pytest.mark.e2e
def test_ask_document_summarises_it_and_says_it_read_all_of_it(real_rag):
    env = {"RAG_INDEX": real_rag.settings.index, "RAG_N_CTX": "2048"}
    out = rag("ask", "--document", "deep-learning-overview.md", "Summarise this document", env=env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "Summary of deep-learning-overview.md, one sentence per section, in order:"
    assert lines[1].startswith("- ") and lines[1].endswith("[1]")
    read = next(i for i, line in enumerate(lines) if line.startswith("Read "))
    n = sum(d["n_chunks"] for s, d in real_rag.store.manifest["documents"].items()
            if s == "deep-learning-overview.md")
    assert lines[read] == f"Read {n} of {n} chunks of deep-learning-overview.md."
    assert lines[read + 2] == "Sources:" and lines[read + 3].startswith("  [1] deep-learning-overview.md")
    bad = rag("ask", "--document", "deep-learning-overviw.md", "Summarise this", env=env)
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1
    assert "did you mean deep-learning-overview.md" in bad.stderr


# ---------------------------------------------------------------- rag feedback


def _rated(tmp_path):
    """A history file with feedback of two users on two collections."""
    from rag.feedback import Feedback, FeedbackStore

    path = tmp_path / "history.db"
    store = FeedbackStore(path)
    store.add(Feedback(rating="down", question="When do owls hunt?", answer="At noon [1].",
                       correction="At night.", user="alice",
                       citations=[{"source": "owls.md", "chunk_id": "owls.md#0"}]))
    store.add(Feedback(rating="down", question="Do owls sleep?", answer="No [1]."))  # no correction
    store.add(Feedback(rating="up", question="What do owls eat?", answer="Mice [1].", user="bob"))
    store.add(Feedback(rating="down", question="Who drew the bees?", answer="Nobody.", correction="Ada.",
                       collection="bees", user="bob"))
    return path


def test_feedback_export_writes_the_corrections_as_a_question_set(tmp_path, capsys):
    from rag import cli
    from rag.evaluation.data import load_jsonl

    path, out = _rated(tmp_path), tmp_path / "cases.jsonl"
    assert cli.main(["feedback", "export", "--history", str(path), "-o", str(out)]) == 0
    err = capsys.readouterr().err.strip()
    assert err == (f"1 case (left out: 1 thumbs-down without a correction, 1 thumbs-up (add them with --up)) "
                   f"written to {out}; evaluate them: rag eval {out}")
    [item] = load_jsonl(out).items
    assert (item.question, item.answers, item.sources, item.split) == ("When do owls hunt?", ("At night.",), (), "test")

    assert cli.main(["feedback", "export", "--history", str(path), "--collection", "bees", "-o", str(out)]) == 0
    assert capsys.readouterr().err.strip().endswith(f"evaluate them: rag eval {out} --collection bees")
    assert [i.answers for i in load_jsonl(out).items] == [("Ada.",)]

    assert cli.main(["feedback", "export", "--history", str(path), "--up", "--user", "bob", "--split", "dev"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]  # stdout without -o
    assert [(r["question"], r["answers"], r["split"]) for r in rows] == [("What do owls eat?", ["Mice."], "dev")]

    assert cli.main(["feedback", "--history", str(path)]) == 0  # list
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and lines[0].startswith("1  ") and lines[0].endswith(
        "alice  down  default  When do owls hunt? -> At night.")
    assert cli.main(["feedback", "list", "--json", "--history", str(path), "--user", ""]) == 0
    assert [r["question"] for r in json.loads(capsys.readouterr().out)] == ["Do owls sleep?"]


@pytest.mark.parametrize("argv, message", [
    (["feedback", "export", "--history", "{tmp}/nope.db"], "no feedback saved: {tmp}/nope.db does not exist"),
    (["feedback", "export", "--history", "{tmp}/history.db", "--user", "carol"],
     "no feedback on collection 'default' makes a case: 0 cases"),
    (["feedback", "export", "--history", "{tmp}/history.db", "--split", "train"], "split must be one of dev, test"),
])
def test_feedback_export_errors_are_one_line(tmp_path, capsys, argv, message):
    from rag import cli

    _rated(tmp_path)
    assert cli.main([a.format(tmp=tmp_path) for a in argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message.format(tmp=tmp_path)}") and err.count("\n") == 1


def test_rag_eval_runs_on_an_exported_correction(tmp_path, scripted):
    """The exported set is evaluated like any other: its case judged by its gold answer, left out
    of the retrieval and citation figures (where the answer lives is not known)."""
    from rag import cli
    from rag.evaluation.data import load_jsonl
    from rag.evaluation.runner import run_eval

    out = tmp_path / "cases.jsonl"
    assert cli.main(["feedback", "export", "--history", str(_rated(tmp_path)), "-o", str(out)]) == 0
    report = run_eval(load_jsonl(out), scripted(), templates=["few_shot"])
    [row] = report.results
    assert row.gold_answers == ["At night."] and row.gold_sources == [] and row.contains == 1.0
    scores = report.templates["few_shot"]
    assert scores.answer["contains"] == 1.0 and scores.citations["precision"] == 0.0
    assert scores.citations["hit_rate"] == 0.0 and report.retrieval["recall@1"] == 0.0


@pytest.mark.e2e
def test_rag_eval_command_runs_on_an_exported_correction(tmp_path, real_rag):
    out = tmp_path / "cases.jsonl"
    assert rag("feedback", "export", "--history", str(_rated(tmp_path)), "-o", str(out)).returncode == 0
    run = rag("eval", str(out), "--templates", "extract", "--json",
              env={"RAG_INDEX": real_rag.settings.index, "RAG_N_CTX": "2048", "RAG_MAX_TOKENS": "48"})
    assert run.returncode == 0, run.stderr
    d = json.loads(run.stdout)
    assert d["n"] == 1 and d["split"] == "all" and set(d["templates"]) == {"extract"}
    assert set(d["templates"]["extract"]["answer"]) >= {"em", "f1", "contains"}
