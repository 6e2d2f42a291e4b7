"""`rag eval` that one cannot fool oneself with: dev/test splits, a JSONL set's own corpus, list
questions, gold evidence, and the metrics of an answer's form and of the evidence it cites."""
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from rag.errors import ConfigError, DatasetError
from rag.evaluation.data import EvalItem, load_dataset, load_jsonl, load_squad, select_split
from rag.evaluation.metrics import evidence_cited, is_echo, is_fragment, is_sentence, list_contains
from rag.evaluation.report import format_table
from rag.evaluation.results import EvalReport, QuestionResult, template_scores
from rag.evaluation.runner import _answer, _check_sources

ROOT = Path(__file__).resolve().parent.parent
FIX = Path(__file__).parent / "fixtures" / "eval"


def _write(path: Path, *rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _q(i, split=None, **kw):
    row = {"id": f"q{i}", "question": f"What is thing {i}?", "answers": ["a thing"], "sources": ["a.txt"], **kw}
    if split:
        row["split"] = split
    return row


# ------------------------------------------------------------------ splits


def test_split_keeps_only_its_questions(tmp_path):
    f = _write(tmp_path / "s.jsonl", _q(1, "dev"), _q(2, "test"), _q(3, "dev"), _q(4))
    s = load_jsonl(f)
    assert [i.split for i in s.items] == ["dev", "test", "dev", ""]
    assert [i.id for i in select_split(s, "dev").items] == ["q1", "q3"]
    assert [i.id for i in select_split(s, "test").items] == ["q2"]
    everything = select_split(s, "all")
    assert len(everything.items) == 4 and everything.split == "all"  # unmarked ones too
    assert select_split(s, "test").split == "test" and s.split == "all"  # the loaded set is untouched


def test_split_errors_are_one_line(tmp_path):
    s = load_jsonl(_write(tmp_path / "s.jsonl", _q(1, "dev"), _q(2)))
    with pytest.raises(ConfigError, match=r"--split 'tset': choose one of dev, test, all"):
        select_split(s, "tset")
    with pytest.raises(DatasetError) as e:
        select_split(s, "test")
    assert str(e.value) == f"{tmp_path / 's.jsonl'}: no questions in split 'test' (the file has: dev 1, unmarked 1)"
    with pytest.raises(DatasetError, match=r"s2.jsonl line 2: 'split' must be one of dev, test, got 'train'"):
        load_jsonl(_write(tmp_path / "s2.jsonl", _q(1, "dev"), _q(2, "train")))


def test_squad_top_level_split_marks_every_question(tmp_path):
    data = json.loads((FIX / "squad.json").read_text())
    f = tmp_path / "sq.json"
    f.write_text(json.dumps({**data, "split": "test"}))
    s = load_squad(f, cache_root=tmp_path)
    assert s.items and {i.split for i in s.items} == {"test"} and s.paragraph_docs
    assert len(select_split(s, "test").items) == len(s.items)
    with pytest.raises(DatasetError, match="no questions in split 'dev'"):
        select_split(s, "dev")
    f.write_text(json.dumps({**data, "split": "eval"}))
    with pytest.raises(DatasetError, match="'split' must be one of dev, test"):
        load_squad(f, cache_root=tmp_path)


def test_shipped_squad_splits_are_disjoint_and_as_documented(tmp_path):
    dev = load_dataset(ROOT / "data" / "eval" / "squad-dev.json", cache_root=tmp_path)
    test = load_dataset(ROOT / "data" / "eval" / "squad-test.json", cache_root=tmp_path)
    for s, name in ((dev, "dev"), (test, "test")):
        assert len(s.items) == 200 and {i.split for i in s.items} == {name}
        assert 60 <= sum(not i.answerable for i in s.items) <= 70  # a third unanswerable
    assert not {i.group for i in dev.items} & {i.group for i in test.items}  # split by article
    from rag.evaluation.data import sample

    tuned = sample(load_dataset(ROOT / "data" / "squad2-dev-sample.json", cache_root=tmp_path).items, 80)
    assert not {i.id for i in tuned} & {i.id for i in test.items}


def test_cli_split_errors_are_one_line(tmp_path):
    f = _write(tmp_path / "s.jsonl", _q(1, "dev"))
    for split, message in (("bogus", "error: --split 'bogus': choose one of dev, test, all"),
                           ("test", f"error: {f}: no questions in split 'test' (the file has: dev 1)")):
        out = subprocess.run([sys.executable, "-m", "rag", "eval", str(f), "--split", split, "--retrieval-only"],
                             capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert out.returncode == 1 and out.stderr.strip() == message


# ------------------------------------------------------------------ a JSONL set's own corpus


def test_header_makes_the_folder_the_corpus(tmp_path):
    (tmp_path / "docs").mkdir()
    f = _write(tmp_path / "set.jsonl", {"corpus": "docs"}, _q(1, "dev"))
    s = load_jsonl(f, cache_root=tmp_path / "cache")
    assert s.docs_dir == str((tmp_path / "docs").resolve()) and len(s.items) == 1
    assert s.index_home == str(tmp_path / "cache" / "eval-jsonl-set")  # not inside the corpus folder
    assert s.items[0].where.endswith("line 2")
    assert load_jsonl(_write(tmp_path / "plain.jsonl", _q(1))).docs_dir is None


@pytest.mark.parametrize("rows, message", [
    ([{"corpus": "nowhere"}, _q(1)], "line 1: corpus folder 'nowhere' not found"),
    ([{"corpus": ""}, _q(1)], "line 1: 'corpus' must name a folder"),
    ([_q(1), {"corpus": "docs"}], "line 2: the corpus header must be the first line"),
    ([{"corpus": "docs"}], "no questions in the file"),
])
def test_header_errors(tmp_path, rows, message):
    (tmp_path / "docs").mkdir()
    with pytest.raises(DatasetError, match=message):
        load_jsonl(_write(tmp_path / "h.jsonl", *rows), cache_root=tmp_path)


def _fake_index(*sources):
    return SimpleNamespace(store=SimpleNamespace(chunks=[SimpleNamespace(source=s) for s in sources]),
                           settings=SimpleNamespace(index="idx"))


def test_sources_match_the_names_the_index_gives():
    rag = _fake_index("git-commit.html", "sub/git-reset.html", "a/x.html", "b/x.html")
    items = [EvalItem(id="1", question="q", answers=("a",), sources=("git-commit.html",), where="f line 1"),
             EvalItem(id="2", question="q", answers=("a",), sources=("git-reset.html",), where="f line 2")]
    out = _check_sources(None, items, rag)
    assert out[0] is items[0] and out[1].sources == ("sub/git-reset.html",)
    with pytest.raises(DatasetError, match=r"f line 3: source 'x.html' names 2 documents .* 'a/x.html'"):
        _check_sources(None, [EvalItem(id="3", question="q", sources=("x.html",), where="f line 3")], rag)
    with pytest.raises(DatasetError, match=r"f line 4: source 'y.html' is not in the index idx"):
        _check_sources(None, [EvalItem(id="4", question="q", sources=("y.html",), where="f line 4")], rag)


# ------------------------------------------------------------------ list questions and evidence


def test_list_questions_and_evidence_are_read(tmp_path):
    f = _write(tmp_path / "l.jsonl",
               {"question": "Which methods?", "kind": "list", "items": [["LoRA", "low-rank adaptation"], ["QLoRA"]],
                "sources": ["a.txt"], "evidence": ["LoRA and QLoRA adapt a model on one GPU."]})
    item = load_jsonl(f).items[0]
    assert item.kind == "list" and item.items == (("LoRA", "low-rank adaptation"), ("QLoRA",))
    assert item.answers == () and item.evidence == ("LoRA and QLoRA adapt a model on one GPU.",)


@pytest.mark.parametrize("row, message", [
    ({"question": "q", "kind": "list", "sources": ["a"]}, "a list question needs 'items'"),
    ({"question": "q", "kind": "list", "items": [["a"], []], "sources": ["a"]}, "every entry of 'items'"),
    ({"question": "q", "kind": "list", "items": [["a", 3]], "sources": ["a"]}, "'items' must be a list of non-empty"),
    ({"question": "q", "kind": "table", "answers": ["a"], "sources": ["a"]}, "'kind' must be \"list\""),
    ({"question": "q", "items": [["a"]], "answers": ["a"], "sources": ["a"]}, "'items' needs \"kind\""),
    ({"question": "q", "answerable": False, "evidence": ["x"]}, "unanswerable question must not list"),
    ({"question": "q", "answers": ["a"], "sources": ["a"], "evidence": "  "}, "'evidence' must be a list"),
])
def test_list_and_evidence_errors_name_the_line(tmp_path, row, message):
    with pytest.raises(DatasetError, match=f"e.jsonl line 1: .*{message}"):
        load_jsonl(_write(tmp_path / "e.jsonl", row))


def test_list_contains_is_the_share_of_items_named():
    items = (("LoRA", "low-rank adaptation"), ("QLoRA",), ("prefix tuning",))
    assert list_contains("Use low-rank adaptation or QLoRA [1].", items) == pytest.approx(2 / 3)
    assert list_contains("LoRA, QLoRA and prefix tuning.", items) == 1.0
    assert list_contains("QLoRAs", items) == 0.0  # whole words only, as `contains`
    assert list_contains("anything", ()) == 0.0


# ------------------------------------------------------------------ form metrics


@pytest.mark.parametrize("text, expected", [
    ("The Normans were descended from Norse raiders [1].", True),
    ("1973 was the year the oil crisis began.", True),
    ("Harvard has twelve degree-granting schools!", True),  # verb by its -s ending
    ("Is packet switching older than circuit switching?", True),
    ("LoRA.", False),  # too short
    ("the answer is in the second passage.", False),  # no capital at the start
    ("The Normans were descended from Norse raiders", False),  # no full stop
    ("The main reasons are the following:", False),  # a heading that introduces a list
    ("Steam Engines In The Industrial Revolution.", False),  # title case: a heading
    ("Harvard University in Cambridge, Massachusetts.", False),  # a noun phrase, no verb
    ("Denmark, Iceland and Norway [2].", False),
])
def test_sentence_heuristic(text, expected):
    assert is_sentence(text) is expected


def test_fragment_and_echo():
    assert is_fragment("LoRA [1]") and is_fragment("in 1973") and is_fragment("the Norse raiders")
    assert not is_fragment("The Normans descended from Norse raiders in Normandy.")
    q = "When did the oil crisis of 1973 begin?"
    assert is_echo("The oil crisis of 1973 [1].", q)
    assert is_echo("The oil crisis begins.", q)  # "begins" and "begin" fold alike
    assert not is_echo("It began in October 1973.", q)
    assert is_echo("", q)  # nothing new said


def test_evidence_cited_normalises_both_sides():
    ev = ["Replace the tip of the current branch by creating a new commit."]
    assert evidence_cited(["... git commit --amend: replace tip of current branch, by creating a NEW commit; ..."],
                          ev) == 1.0
    assert evidence_cited(["Record changes to the repository."], ev) == 0.0
    assert evidence_cited([], ev) == 0.0
    assert evidence_cited(["anything"], ["  "]) == 0.0  # an empty normal form matches nothing


def _row(n, answer, *, answerable=True, abstained=False, evidence=None, kind="", contains=1.0, question="q?"):
    return QuestionResult(id=str(n), question=question, template="auto", answerable=answerable,
                          gold_sources=["a.txt"] if answerable else [], gold_answers=["x"], retrieved_ids=[],
                          retrieved_sources=[], retrieval_s=0.0, answer=answer, abstained=abstained, kind=kind,
                          evidence_cited=evidence, em=0.0 if answerable else None,
                          f1=0.0 if answerable else None, contains=contains if answerable else None)


def test_template_scores_add_up_the_new_metrics():
    rows = [
        _row(1, "The Normans were descended from Norse raiders [1].", evidence=1.0),
        _row(2, "Norse raiders [1]", evidence=0.0, kind="list", contains=0.5),
        _row(3, "Why did the Norman rulers leave Normandy for England?",
             question="Why did the Norman rulers leave Normandy for England?", evidence=1.0,
             kind="list", contains=1.0),
        _row(4, "I could not find it.", abstained=True, contains=0.0),  # refusal: out of the form metrics
        _row(5, "The answer is not in the documents.", answerable=False, abstained=True),
    ]
    s = template_scores(rows, {})
    assert s.answer["fragment_rate"] == pytest.approx(1 / 3)  # only "Norse raiders"
    assert s.answer["echo_rate"] == pytest.approx(1 / 3)  # row 3 repeats its question
    assert s.answer["sentence_rate"] == pytest.approx(2 / 3)  # rows 1 and 3 ("did" is a verb)
    assert s.answer["item_recall"] == pytest.approx(0.75)  # list rows 2 and 3
    assert s.citations["evidence_cited"] == pytest.approx(2 / 3)  # over the three answered
    assert s.citations["evidence_cited_all"] == pytest.approx(2 / 4)  # over the four answerable
    report = EvalReport(dataset="d", format="jsonl", n=5, settings={}, retrieval={}, retrieval_latency={},
                        templates={"auto": s}, results=rows, seconds=1.0, split="test")
    table = format_table(report)
    assert "split=test" in table and "| fragment rate | 0.333 |" in table
    assert "| evidence cited (all answerable) | 0.500 |" in table and "| list items named | 0.750 |" in table
    d = report.to_dict()
    assert d["split"] == "test" and d["templates"]["auto"]["answer"]["sentence_rate"] == pytest.approx(0.6667)


def test_template_scores_with_nothing_answered_are_zero():
    s = template_scores([_row(1, "no", abstained=True, contains=0.0)], {})
    assert s.answer["fragment_rate"] == s.answer["sentence_rate"] == s.citations["evidence_cited_all"] == 0.0


# ------------------------------------------------------------------ one answer, scored


def _fake_answer(text, cited, hits, *, abstained=False):
    z = SimpleNamespace(retrieve=0.0, prompt=0.0, prefill=0.0, total=0.0, load=0.0, generate=0.0)
    return SimpleNamespace(
        text=text, abstained=abstained, abstain_reason="", abstain_code="", template="auto", draft=text,
        support=0.0, relevance=0.0, timings=z, usage=SimpleNamespace(prompt_tokens=0, completion_tokens=0),
        citations=[SimpleNamespace(source=s, chunk_id=c, snippet="snip") for s, c in cited],
        hits=[SimpleNamespace(chunk=SimpleNamespace(id=c, text=t)) for c, t in hits])


def _base(item):
    return QuestionResult(id=item.id, question=item.question, template="", answerable=item.answerable,
                          gold_sources=list(item.sources), gold_answers=list(item.answers), retrieved_ids=[],
                          retrieved_sources=[], retrieval_s=0.0)


def _ask(answer, item, **kw):
    rag = SimpleNamespace(ask=lambda q, template: answer)
    return _answer(rag, item, "auto", _base(item), **kw)


def test_answer_takes_cited_texts_from_the_hits_and_scores_evidence():
    item = EvalItem(id="1", question="Which option amends a commit?", answers=("--amend",),
                    sources=("git-commit.html",), evidence=("Replace the tip of the current branch.",))
    hits = [("c1", "Record changes."), ("c2", "--amend: Replace the tip of the current branch.")]
    res = _ask(_fake_answer("Use --amend [2].", [("git-commit.html", "c2")], hits), item)
    assert res.cited_texts == ["--amend: Replace the tip of the current branch."] and res.evidence_cited == 1.0
    res = _ask(_fake_answer("Use --amend [1].", [("git-commit.html", "c1")], hits), item)
    assert res.evidence_cited == 0.0  # the right document, but not the passage that says it
    res = _ask(_fake_answer("Use --amend [1].", [("git-commit.html", "c9")], hits), item)
    assert res.cited_texts == ["snip"]  # a citation outside the hits falls back to its snippet
    refusal = _ask(_fake_answer("Not found.", [], hits, abstained=True), item)
    assert refusal.evidence_cited is None and refusal.contains == 0.0


def test_answer_without_evidence_looks_for_a_gold_answer_or_a_paragraph_source():
    item = EvalItem(id="1", question="Who?", answers=("Rollo",), sources=("p001.txt",))
    hits = [("c1", "Rollo led them."), ("c2", "The Normans were Norse.")]
    assert _ask(_fake_answer("Rollo [1].", [("p001.txt", "c1")], hits), item).evidence_cited == 1.0
    assert _ask(_fake_answer("Rollo [1].", [("p001.txt", "c2")], hits), item).evidence_cited == 0.0
    # SQuAD: the document is one paragraph, so citing it cites the evidence
    assert _ask(_fake_answer("Rollo [1].", [("p001.txt", "c2")], hits), item,
                paragraph_docs=True).evidence_cited == 1.0


def test_list_answer_contains_is_the_share_named():
    item = EvalItem(id="1", question="Which?", sources=("a.txt",), kind="list",
                    items=(("git reset",), ("git restore", "restore")))
    res = _ask(_fake_answer("Use git reset [1].", [("a.txt", "c1")], [("c1", "git reset and restore")]), item)
    assert res.contains == 0.5 and res.em == 0.0 and res.f1 > 0  # F1 against "git reset, git restore"
    assert res.evidence_cited == 1.0  # a cited passage names an item's alternative
