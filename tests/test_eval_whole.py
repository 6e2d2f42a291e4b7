"""`rag eval` on questions about a whole document or collection (issue 32): the list, documents and
summary kinds of a JSONL set, the shipped sets whole.jsonl and whole-git.jsonl (their gold checked
against the documents), and the scope metrics: item recall, precision, citations, completeness."""
import json
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest

from rag.errors import DatasetError
from rag.evaluation.data import EvalItem, load_jsonl, select_split
from rag.evaluation.metrics import (Passage, answer_lines, grounded, match_form, mentions, names, same_file,
                                    score_scope)
from rag.evaluation.report import format_table, write_report
from rag.evaluation.results import EvalReport, QuestionResult, scope_scores, template_scores
from rag.evaluation.runner import _answer, _check_sources, found_items

ROOT = Path(__file__).resolve().parent.parent
EVAL = ROOT / "data" / "eval"


def _write(path: Path, *rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# ------------------------------------------------------------------ reading the kinds


def test_documents_and_summary_questions_are_read(tmp_path):
    f = _write(tmp_path / "w.jsonl",
               {"id": "d", "question": "Which files mention GANs?", "kind": "documents", "topic": ["GAN"],
                "items": ["a.txt", "b.md"], "split": "dev"},
               {"id": "s", "question": "Summarise a.txt.", "kind": "summary", "sources": ["a.txt"],
                "items": [["intro", "overview"], "results"], "split": "test"},
               {"id": "l", "question": "List them.", "kind": "list", "sources": ["a.txt"], "items": [["x"]]})
    d, s, lst = load_jsonl(f).items
    assert d.kind == "documents" and d.items == (("a.txt",), ("b.md",)) and d.topic == ("GAN",)
    assert d.sources == ("a.txt", "b.md")  # the documents found are where the answer lives
    assert s.kind == "summary" and s.items == (("intro", "overview"), ("results",)) and s.sources == ("a.txt",)
    assert s.topic == () and lst.kind == "list" and lst.answers == ()


@pytest.mark.parametrize("row, message", [
    ({"question": "q", "kind": "table", "items": [["a"]], "sources": ["a"]},
     "'kind' must be \"list\", \"documents\" or \"summary\" when given, got 'table'"),
    ({"question": "q", "kind": "documents", "topic": ["x"]}, "a documents question needs 'items', the file names"),
    ({"question": "q", "kind": "summary", "sources": ["a"]}, "a summary question needs 'items', one phrase"),
    ({"question": "q", "kind": "summary", "sources": ["a"], "items": []}, "a summary question needs 'items'"),
    ({"question": "q", "kind": "list", "sources": ["a"]}, "a list question needs 'items'"),
    ({"question": "q", "kind": "documents", "items": [["a.txt", "b.txt"]]},
     "every entry of 'items' of a documents question is one file name"),
    ({"question": "q", "kind": "documents", "items": ["a.txt", ""]}, "'items' must be a list of non-empty"),
    ({"question": "q", "kind": "summary", "sources": ["a", "b"], "items": [["x"]]},
     "a summary question names its one document in 'sources'"),
    ({"question": "q", "kind": "summary", "items": [["x"]]}, "a summary question names its one document"),
    ({"question": "q", "kind": "list", "topic": ["x"], "items": [["x"]], "sources": ["a"]},
     "'topic' belongs to \"kind\": \"documents\" questions"),
    ({"question": "q", "items": ["a.txt"], "answers": ["a"], "sources": ["a"]},
     "'items' needs \"kind\": \"list\", \"documents\" or \"summary\""),
    ({"question": "q", "kind": "documents", "items": ["a.txt"], "topic": [3]}, "'topic' must be a list"),
    ({"question": "q", "kind": "documents", "items": ["a.txt"], "answerable": False},
     "unanswerable question must not list"),
])
def test_bad_scope_questions_are_one_line_naming_the_line(tmp_path, row, message):
    with pytest.raises(DatasetError) as e:
        load_jsonl(_write(tmp_path / "e.jsonl", {"question": "ok?", "answers": ["a"], "sources": ["a"]}, row))
    assert str(e.value).startswith(f"{tmp_path / 'e.jsonl'} line 2: ") and message in str(e.value)
    assert "\n" not in str(e.value)


# ------------------------------------------------------------------ the shipped sets


def _texts(folder: Path) -> dict[str, str]:
    """Each document's text as the index reads it (HTML through rag.readers.html)."""
    from rag.readers.html import read

    out = {}
    for p in sorted(folder.iterdir()):
        if p.suffix == ".html":
            out[p.name] = "\n".join(s.text for s in read(p, p.read_bytes())[1])
        elif p.suffix in (".md", ".txt") and p.name != "SOURCE.txt":
            out[p.name] = p.read_text(encoding="utf-8")
    return out


@pytest.mark.parametrize("name, at_least", [("whole.jsonl", {"list": 6, "documents": 5, "summary": 5}),
                                            ("whole-git.jsonl", {"list": 3, "documents": 3, "summary": 3})])
def test_shipped_sets_are_stratified_by_kind_and_split(tmp_path, name, at_least):
    s = load_jsonl(EVAL / name, cache_root=tmp_path)
    assert s.docs_dir and Path(s.docs_dir).is_dir()  # each set indexes its own corpus
    kinds = Counter(i.kind for i in s.items)
    assert all(kinds[k] >= n for k, n in at_least.items()) and set(kinds) == set(at_least)
    assert len(s.items) >= (16 if name == "whole.jsonl" else 10)
    assert len({i.id for i in s.items}) == len(s.items)
    for kind, n in kinds.items():  # every kind in both splits, at least a quarter of it held out
        test = sum(i.kind == kind and i.split == "test" for i in s.items)
        assert 4 * test >= n and test < n, (kind, test, n)
    assert len(select_split(s, "test").items) + len(select_split(s, "dev").items) == len(s.items)


def test_every_corpus_file_has_a_summary_question(tmp_path):
    s = load_jsonl(EVAL / "whole.jsonl", cache_root=tmp_path)
    summarised = {i.sources[0] for i in s.items if i.kind == "summary"}
    assert summarised == set(_texts(Path(s.docs_dir)))
    assert all(i.sources[0] in i.question for i in s.items if i.kind == "summary")  # named by file name


@pytest.mark.parametrize("name", ["whole.jsonl", "whole-git.jsonl"])
def test_shipped_gold_matches_the_documents(tmp_path, name):
    """A documents question's gold is exactly the files that mention its topic (as grep finds it),
    and every list or summary entry has a spelling that its documents contain."""
    s = load_jsonl(EVAL / name, cache_root=tmp_path)
    docs = _texts(Path(s.docs_dir))
    for item in s.items:
        if item.kind == "documents":
            assert item.topic, item.id
            have = {n for n, t in docs.items() if any(mentions(t, w) for w in item.topic)}
            assert have == {e[0] for e in item.items}, item.id
            assert 2 <= len(have) < len(docs), item.id  # a question about several files, not all
        else:
            text = "\n".join(docs[src] for src in item.sources)
            for alts in item.items:
                assert any(names(text, a) for a in alts), (item.id, alts)


# ------------------------------------------------------------------ matching


def test_match_form_and_names():
    assert match_form("- Decision tree-based [2]: GPT-4V, User’s Manual") == \
        "decision tree based gpt 4v user s manual"
    assert names("Decision tree-based", "decision tree") and names("Deep Gaussian Processes", "Gaussian process")
    assert names("GANs and LSTMs [1]", "GAN") and names("GANs and LSTMs", "lstm")
    assert not names("GPT-4V", "GPT-4") and names("GPT-4 and BERT", "gpt-4")
    assert not names("organise", "GAN") and not names("anything", "  ")
    assert names("use --no-contains", "--no-contains") and not names("use --no-contains", "--contains")
    assert not names("merged", "--merged") and names("the --merged option", "--merged")


def test_mentions_is_the_topic_as_grep_finds_it():
    assert mentions("Use git merge --abort to", "--abort") and not mentions("reset is aborted", "--abort")
    assert mentions("GANs were superseded", "GAN") and not mentions("organized in layers", "GAN")
    assert mentions("--rerere-autoupdate", "rerere") and mentions("git-reflog(1)", "reflog")
    assert mentions("transfer\n  learning", "Transfer Learning") and not mentions("x", " ")
    assert mentions("ORIG_HEAD is set", "orig_head") and not mentions("ORIG_HEADS_UP", "ORIG_HEAD")


def test_same_file():
    assert same_file("notes.md", "notes.md") and same_file("sub/notes.md", "notes.md")
    assert same_file("notes.md", "sub/notes.md") and not same_file("a/notes.md", "b/notes.md")
    assert not same_file("notes.txt", "notes.md") and not same_file("", "notes.md")


def test_grounded_takes_verbatim_or_nearly_all_content_words():
    chunk = "- Kernel-based\n\t- \"Mimic\" deep neural networks with hierarchical kernel functions."
    assert grounded("Kernel-based", chunk) and grounded("kernel based [3]", chunk)
    assert grounded("Kernel-based models mimic deep neural networks with hierarchical kernel functions", chunk)
    assert not grounded("Capsule networks", chunk) and not grounded("", chunk) and not grounded("[1]", chunk)
    assert grounded("Kernel-based", Passage("a.md", chunk))


def test_answer_lines_are_bullets_or_else_sentences():
    assert answer_lines("Found these:\n- LoRA [1]\n* QLoRA [2]\n3. prefix tuning") == \
        ["LoRA", "QLoRA", "prefix tuning"]
    assert answer_lines("LoRA adapts models [1]. QLoRA too!\nAnd more?") == ["LoRA adapts models.", "QLoRA too!",
                                                                             "And more?"]
    assert answer_lines("") == []


# ------------------------------------------------------------------ scoring one answer


PASSAGES = {
    "c1": Passage("notes.md", "Deep learning models: decision tree-based ones and kernel-based ones."),
    "c2": Passage("notes.md", "Deep probabilistic models such as deep Gaussian processes."),
    "c3": Passage("other.txt", "GANs were largely superseded by diffusion models."),
    "c4": Passage("other.txt", "Nothing about the topic here."),
}
GOLD = (("decision tree",), ("kernel",), ("probabilistic", "Gaussian process"), ("evolutionary",))


def test_list_answer_scores():
    items = [("Decision tree-based", "notes.md", "c1"), ("Kernel-based", "notes.md", "c2"),  # wrong chunk cited
             ("Deep Gaussian processes [2]", "notes.md", "c2"), ("Capsule networks", "notes.md", "c1")]
    s = score_scope("list", GOLD, items, "ignored when there are items", PASSAGES)
    assert s.recall == 0.75 and s.missing == ["evolutionary"]
    assert (s.n_items, s.n_grounded, s.n_cited) == (4, 3, 2)  # capsules invented; kernel read from c1, cites c2
    assert s.precision == 0.75 and s.cited == 0.5
    assert s.found == [t for t, _, _ in items]


def test_answer_without_items_falls_back_to_its_lines():
    text = "The notes list:\n- decision trees [1]\n- kernel methods [1]\n- evolutionary search"
    s = score_scope("summary", GOLD, [], text, PASSAGES)
    assert s.recall == 0.75 and s.found == ["decision trees", "kernel methods", "evolutionary search"]
    assert s.n_items == 0 and s.precision is None and s.cited is None
    assert score_scope("list", GOLD, [], "", PASSAGES).recall == 0.0


def test_documents_answer_scores():
    gold = (("notes.md",), ("other.txt",), ("third.md",))
    items = [("notes.md", "notes.md", "c2"), ("other.txt", "other.txt", "c4"),  # c4 is off the topic
             ("stray.md", "stray.md", "c1")]
    s = score_scope("documents", gold, items, "", PASSAGES, topic=("Gaussian", "GAN"))
    assert s.recall == pytest.approx(2 / 3) and s.missing == ["third.md"]
    assert (s.n_items, s.n_grounded, s.n_cited) == (3, 2, 1)  # stray.md not gold; its chunk is another file's
    assert score_scope("documents", gold, items, "", PASSAGES).n_cited == 2  # without a topic: the file is enough
    # an item that gives the file only as its text, the source left out
    assert score_scope("documents", gold, [("sub/notes.md", "", "")], "", PASSAGES).recall == pytest.approx(1 / 3)
    # an ordinary answer: the file names it writes; notes.md is not other.md
    plain = score_scope("documents", gold, [], "See notes.md [1] and other.md.", PASSAGES)
    assert plain.recall == pytest.approx(1 / 3) and plain.n_items == 0
    with pytest.raises(ValueError):
        score_scope("table", gold, [], "", PASSAGES)


# ------------------------------------------------------------------ the run


def _fake_answer(text, *, items=(), scope="", coverage=None, citations=(), abstained=False, total=2.0):
    z = SimpleNamespace(retrieve=0.0, prompt=0.0, prefill=0.0, total=total, load=0.0, generate=0.0)
    return SimpleNamespace(
        text=text, abstained=abstained, abstain_reason="", abstain_code="", template="auto", draft=text,
        support=0.0, relevance=0.0, timings=z, usage=SimpleNamespace(prompt_tokens=0, completion_tokens=0),
        citations=[SimpleNamespace(n=n, source=s, chunk_id=c, snippet="snip") for n, s, c in citations],
        hits=[], scope=scope, coverage=coverage,
        items=[SimpleNamespace(text=t, n=n, source=s, chunk_id=c) for t, n, s, c in items])


def _base(item):
    return QuestionResult(id=item.id, question=item.question, template="", answerable=item.answerable,
                          gold_sources=list(item.sources), gold_answers=[], retrieved_ids=[],
                          retrieved_sources=[], retrieval_s=0.0, kind=item.kind)


def _ask(answer, item):
    rag = SimpleNamespace(ask=lambda q, template: answer)
    return _answer(rag, item, "auto", _base(item), passages=PASSAGES)


def test_found_items_take_source_and_chunk_from_their_citation():
    a = _fake_answer("", items=[("Kernel-based", 1, "", ""), ("x", 2, "s.md", "c9"), ("y", 7, "", "")],
                     citations=[(1, "notes.md", "c1"), (2, "notes.md", "c2")])
    assert found_items(a) == [("Kernel-based", "notes.md", "c1"), ("x", "s.md", "c9"), ("y", "", "")]
    assert found_items(SimpleNamespace(citations=[])) == []  # an ordinary answer of an older pipeline


def test_answer_records_the_scope_metrics():
    item = EvalItem(id="1", question="Which kinds?", sources=("notes.md",), kind="list", items=GOLD)
    coverage = SimpleNamespace(complete=False, chunks_read=40, chunks_total=50, seconds=9.0)
    a = _fake_answer("- Decision tree-based [1]\n- Kernel-based [1]", scope="list", coverage=coverage,
                     items=[("Decision tree-based", 1, "notes.md", "c1"), ("Kernel-based", 1, "notes.md", "c1")],
                     citations=[(1, "notes.md", "c1")])
    res = _ask(a, item)
    assert res.scope == "list" and res.item_recall == 0.5 and res.missing_items == ["probabilistic", "evolutionary"]
    assert res.item_precision == res.item_cited == 1.0 and res.n_items == 2
    assert res.coverage_complete is False and (res.chunks_read, res.chunks_total) == (40, 50)
    assert res.total_s == 2.0
    no_timings = _ask(_fake_answer("x", coverage=coverage, total=0.0), item)
    assert no_timings.total_s == 9.0  # the coverage's own clock where the timings are empty
    refusal = _ask(_fake_answer("decision tree, kernel: not found", abstained=True), item)
    assert refusal.item_recall == 0.0 and refusal.item_precision is None and refusal.coverage_complete is None
    ordinary = _ask(_fake_answer("Which kinds? Ask about the weather."), EvalItem(id="2", question="q", answers=("a",),
                                                                                   sources=("notes.md",)))
    assert ordinary.item_recall is None and ordinary.gold_items == []


def _fake_index(*sources):
    return SimpleNamespace(store=SimpleNamespace(chunks=[SimpleNamespace(source=s) for s in sources]),
                           settings=SimpleNamespace(index="idx"))


def test_documents_gold_files_are_resolved_like_sources():
    rag = _fake_index("sub/notes.md", "other.txt")
    item = EvalItem(id="1", question="q", kind="documents", items=(("notes.md",), ("other.txt",)),
                    sources=("notes.md", "other.txt"), where="f line 1")
    out = _check_sources(None, [item], rag)[0]
    assert out.items == (("sub/notes.md",), ("other.txt",)) and out.sources == ("sub/notes.md", "other.txt")
    bad = EvalItem(id="2", question="q", kind="documents", items=(("gone.md",),), sources=("other.txt",),
                   where="f line 2")
    with pytest.raises(DatasetError, match=r"f line 2: source 'gone.md' is not in the index idx"):
        _check_sources(None, [bad], rag)


def _row(n, kind, recall, *, scope="", n_items=0, grounded=0, cited=0, complete=None, total=1.0, chunks=0):
    return QuestionResult(id=str(n), question=f"q{n}?", template="auto", answerable=True, gold_sources=["a.txt"],
                          gold_answers=["x"], retrieved_ids=[], retrieved_sources=[], retrieval_s=0.0, kind=kind,
                          em=0.0, f1=0.0, contains=recall, scope=scope, item_recall=recall, n_items=n_items,
                          n_grounded=grounded, n_cited=cited, coverage_complete=complete, total_s=total,
                          item_precision=grounded / n_items if n_items else None,
                          item_cited=cited / n_items if n_items else None,
                          chunks_read=chunks, missing_items=[] if recall == 1.0 else ["kernel | kernels"])


def test_scope_scores_add_up_and_are_printed(tmp_path):
    rows = [_row(1, "list", 1.0, scope="list", n_items=4, grounded=4, cited=3, complete=True, total=3.0, chunks=20),
            _row(2, "documents", 0.5, scope="documents", n_items=2, grounded=1, cited=1, complete=False,
                 total=5.0, chunks=40),
            _row(3, "list", 0.25, total=1.0),  # an ordinary answer: recall from its lines, no items
            QuestionResult(id="4", question="q", template="auto", answerable=True, gold_sources=["a.txt"],
                           gold_answers=["x"], retrieved_ids=[], retrieved_sources=[], retrieval_s=0.0,
                           em=1.0, f1=1.0, contains=1.0)]  # an ordinary question: out of the scope figures
    s = scope_scores(rows)
    assert s["questions"] == 3 and s["in_scope"] == pytest.approx(2 / 3)
    assert s["item_recall"] == pytest.approx(1.75 / 3) and s["item_recall_list"] == pytest.approx(0.625)
    assert s["item_recall_documents"] == 0.5 and "item_recall_summary" not in s
    assert s["item_precision"] == pytest.approx(5 / 6) and s["item_cited"] == pytest.approx(4 / 6)
    assert s["complete"] == pytest.approx(1 / 3) and s["coverage_complete"] == 1
    assert s["items_mean"] == 2.0 and s["chunks_read_mean"] == 20.0 and s["total_p50_s"] == 3.0
    assert scope_scores(rows[3:]) == {}
    scores = template_scores(rows, {})
    report = EvalReport(dataset="whole", format="jsonl", n=4, settings={}, retrieval={}, retrieval_latency={},
                        templates={"auto": scores}, results=rows, seconds=1.0, split="test")
    table = format_table(report)
    assert "| gold items found (item recall) | 0.583 |" in table and "| item recall, documents questions | 0.500 |" in table
    assert "| answers whose coverage says complete (count) | 1 |" in table
    assert "| scope answer time p50 s | 3.000 |" in table and "summary questions" not in table
    d = report.to_dict()["templates"]["auto"]["scope"]
    assert d["item_precision"] == pytest.approx(0.8333) and d["coverage_complete"] == 1 and d["questions"] == 3
    md = Path(write_report(report, tmp_path)[-1]).read_text()
    assert "## Questions about a whole document or collection" in md
    assert "| auto | 2 | documents | documents | 0.50 | 0.50 | 0.50 | 2 | no | kernel \\| kernels |" in md
    assert "| auto | 3 | list | - | 0.25 | - | - | 0 | - |" in md


def test_no_scope_rows_without_scope_questions():
    rows = [QuestionResult(id="1", question="q", template="auto", answerable=True, gold_sources=["a.txt"],
                           gold_answers=["x"], retrieved_ids=[], retrieved_sources=[], retrieval_s=0.0,
                           em=1.0, f1=1.0, contains=1.0)]
    report = EvalReport(dataset="d", format="jsonl", n=1, settings={}, retrieval={}, retrieval_latency={},
                        templates={"auto": template_scores(rows, {})}, results=rows, seconds=1.0)
    assert "item recall" not in format_table(report) and report.to_dict()["templates"]["auto"]["scope"] == {}
