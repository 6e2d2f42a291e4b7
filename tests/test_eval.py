"""`rag eval`: metric functions on hand-computed cases, dataset parsing, and a small real run."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rag.errors import ConfigError, DatasetError
from rag.evaluation.metrics import (abstention_scores, contains, exact_match, mrr_at_k, ndcg_at_k,
                                   normalize_answer, percentile, recall_at_k, strip_citations, token_f1)
from rag.evaluation.runner import parse_overrides, run_eval
from rag.evaluation.data import EvalItem, EvalSet, load_beir, load_dataset, load_jsonl, load_squad, sample

ROOT = Path(__file__).resolve().parent.parent
FIX = Path(__file__).parent / "fixtures" / "eval"

# ------------------------------------------------------------------ answer metrics


def test_squad_normalisation():
    assert normalize_answer("The  Cat, sat!") == "cat sat"
    assert normalize_answer("An apple a day") == "apple day"


def test_exact_match_and_f1_by_hand():
    assert exact_match("the Eiffel Tower.", ["Eiffel tower"]) == 1.0
    assert exact_match("Eiffel", ["Eiffel tower"]) == 0.0
    # pred {cat, sat}, gold {cat, sat, on, mat}: precision 1, recall 1/2, F1 2/3
    assert token_f1("the cat sat", ["a cat sat on the mat"]) == pytest.approx(2 / 3)
    # the best gold answer counts: second gold matches exactly
    assert token_f1("mice", ["voles only", "mice"]) == 1.0
    # pred {a1, b, c}=3 tokens, gold {b, c, d, e}: common 2, p 2/3, r 1/2, F1 4/7
    assert token_f1("x b c", ["b c d e"]) == pytest.approx(4 / 7)
    assert token_f1("", ["something"]) == 0.0


def test_contains_matches_whole_words():
    assert contains("It was built in 1769 by Watt [1].", ["1769"]) == 1.0
    assert contains("Its cost was 17690 pounds.", ["1769"]) == 0.0
    assert contains("Softmax is used.", ["sigmoid", "softmax"]) == 1.0


def test_strip_citations():
    assert strip_citations("Owls hunt at night [1][2], mostly [1, 3].") == "Owls hunt at night, mostly."


# ------------------------------------------------------------------ retrieval metrics


def test_retrieval_metrics_by_hand():
    ranked = ["a", "b", "c", "d"]
    gold = {"c", "x"}
    assert recall_at_k(ranked, gold, 1) == 0.0
    assert recall_at_k(ranked, gold, 3) == 1.0  # any gold document suffices
    assert recall_at_k(ranked, gold, 3, any_source=False) == 0.5  # BEIR: one of two found
    assert mrr_at_k(ranked, gold) == pytest.approx(1 / 3)
    assert mrr_at_k(ranked, {"z"}) == 0.0
    # one relevant at rank 3, ideal has it at rank 1: 1/log2(4) / 1
    assert ndcg_at_k(ranked, gold) == pytest.approx(0.5)
    # BEIR: relevant at ranks 1 and 3 of two gold: (1 + 1/log2(4)) / (1 + 1/log2(3))
    assert ndcg_at_k(["c", "a", "x"], gold, any_source=False) == pytest.approx(1.5 / (1 + 1 / 1.5849625))
    # alternatives: only the first gold hit earns gain, so two gold hits still cap at 1
    assert ndcg_at_k(["c", "x"], gold) == 1.0


def test_abstention_scores_by_hand():
    abstained = [True, True, False, False, True]
    answerable = [False, True, False, True, True]
    # tp 1 (q1), fp 2 (q2, q5), unanswerable 2, answerable 3
    s = abstention_scores(abstained, answerable)
    assert s["precision"] == pytest.approx(1 / 3)
    assert s["recall"] == pytest.approx(1 / 2)
    assert s["f1"] == pytest.approx(0.4)
    assert s["false_abstention_rate"] == pytest.approx(2 / 3)
    assert abstention_scores([False], [True]) == {"precision": 0.0, "recall": 0.0, "f1": 0.0,
                                                  "false_abstention_rate": 0.0}


def test_percentile_interpolates():
    assert percentile([4, 1, 3, 2], 50) == 2.5
    assert percentile([1, 2, 3, 4, 5], 95) == pytest.approx(4.8)
    assert percentile([], 50) == 0.0


# ------------------------------------------------------------------ datasets


def test_jsonl_fixture():
    s = load_jsonl(FIX / "tiny.jsonl")
    assert (s.format, len(s.items)) == ("jsonl", 3)
    lora, softmax, tungsten = s.items
    assert lora.id == "lora" and lora.answers == ("low-rank parameters", "LoRA")
    assert softmax.where.endswith("tiny.jsonl line 3")  # the blank line still counts
    assert len(softmax.sources) == 2
    assert not tungsten.answerable and tungsten.sources == ()


def test_squad_fixture(tmp_path):
    s = load_squad(FIX / "squad.json", cache_root=tmp_path)
    assert [i.id for i in s.items] == ["q1", "q2", "q3", "q4"]
    q1, q2, q3, q4 = s.items
    assert q1.answers == ("mice and voles",) and q1.group == "Owls"
    assert not q2.answerable and q2.answers == () and q2.sources == ()
    docs = sorted(p.name for p in Path(s.docs_dir).iterdir())
    assert len(docs) == 3 and q3.sources[0] in docs and q3.sources != q4.sources
    assert (Path(s.docs_dir) / q1.sources[0]).read_text().startswith("Owls\n\n")
    # unchanged dataset: files are not rewritten, so the incremental index sees nothing new
    before = {p.name: p.stat().st_mtime_ns for p in Path(s.docs_dir).iterdir()}
    again = load_squad(FIX / "squad.json", cache_root=tmp_path)
    assert {p.name: p.stat().st_mtime_ns for p in Path(again.docs_dir).iterdir()} == before


def test_beir_fixture(tmp_path):
    s = load_beir(FIX / "beir", cache_root=tmp_path)
    assert s.retrieval_only and not s.any_source
    by_id = {i.id: i for i in s.items}
    assert set(by_id) == {"q1", "q2"}  # q3 has no judgements; score 0 is not relevant
    assert [s.doc_ids[f] for f in by_id["q2"].sources] == ["d/2", "d1"]
    assert all("/" not in f for f in s.doc_ids)
    assert load_dataset(FIX / "beir", cache_root=tmp_path).format == "beir"


@pytest.mark.parametrize("name, text, message", [
    ("bad.jsonl", '{"question": "ok?", "answers": ["a"], "sources": ["s"]}\n{"question": "x", ',
     "bad.jsonl line 2: not valid JSON"),
    ("bad.jsonl", '\n\n{"answers": ["a"], "sources": ["s"]}\n', "bad.jsonl line 3: 'question' is missing"),
    ("bad.jsonl", '{"question": "q", "answers": "a", "sources": ["s"], "answerable": "yes"}\n',
     "line 1: 'answerable' must be true or false"),
    ("bad.jsonl", '{"question": "q", "answers": [1], "sources": ["s"]}\n', "line 1: 'answers' must be a list"),
    ("bad.jsonl", '{"question": "q", "answers": ["a"]}\n', "line 1: an answerable question needs"),
    ("bad.jsonl", '[1, 2]\n', "line 1: expected a JSON object"),
    ("bad.jsonl", '\n \n', "no questions"),
    ("bad.json", '{"data": [\n  {"title": "t",\n   "paragraphs": [}\n]}', "bad.json line 3: not valid JSON"),
    ("bad.json", '{"data": [{"title": "t", "paragraphs": [{"context": "c", "qas": [{"id": "x"}]}]}]}',
     "data[0].paragraphs[0].qas[0]: 'question' is missing"),
    ("bad.json", '{"version": "v2.0"}', "not a SQuAD file"),
])
def test_malformed_files_name_the_line(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DatasetError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_dataset(path, cache_root=tmp_path / "cache")


def test_sources_given_as_an_empty_list_say_where_the_answer_lives_is_not_known(tmp_path):
    """A correction from the chat (`rag feedback export`) knows its right answer, not its document:
    "sources": [] is taken (a missing "sources" is still refused), and the question is left out
    of the retrieval and citation figures."""
    from rag.evaluation.results import QuestionResult, retrieval_scores, template_scores

    path = tmp_path / "fixes.jsonl"
    path.write_text('{"question": "q?", "answers": ["a"], "sources": []}\n')
    assert load_jsonl(path).items[0].sources == ()
    path.write_text('{"question": "q?", "answers": ["a"]}\n')
    with pytest.raises(DatasetError, match=r"needs at least one entry in 'sources' \(or \"sources\": \[\]"):
        load_jsonl(path)
    rows = [QuestionResult(id=str(n), question="q?", template="t", answerable=True, gold_sources=gold,
                           gold_answers=["a"], retrieved_ids=[], retrieved_sources=["x.md"], retrieval_s=0.0,
                           cited_sources=["x.md"], em=0.0, f1=0.0, contains=0.0)
            for n, gold in enumerate((["x.md"], []))]
    retrieval = retrieval_scores(rows, True)
    assert retrieval["recall@1"] == 1.0
    assert template_scores(rows, retrieval).citations["precision"] == 1.0
    assert template_scores(rows, retrieval).citations["hit_rate"] == 1.0


def test_malformed_beir_names_the_line(tmp_path):
    import shutil

    folder = tmp_path / "beir"
    shutil.copytree(FIX / "beir", folder)
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\tnope\t1\n")
    with pytest.raises(DatasetError, match=r"test.tsv line 3: document 'nope' is not in corpus.jsonl"):
        load_beir(folder, cache_root=tmp_path)
    (folder / "corpus.jsonl").write_bytes(b'{"_id": "d1", "text": "caf\xe9"}\n')
    with pytest.raises(DatasetError, match="not UTF-8"):
        load_beir(folder, cache_root=tmp_path)
    with pytest.raises(DatasetError, match="not found"):
        load_dataset(tmp_path / "missing.jsonl", cache_root=tmp_path)


def test_sample_is_deterministic_stratified_and_ordered():
    items = [EvalItem(id=f"{g}{i}", question="q", group=g, answerable=i % 3 != 0)
             for g in "abcd" for i in range(30)]
    one = sample(items, 20, seed=0)
    assert [i.id for i in one] == [i.id for i in sample(items, 20, seed=0)]
    assert [i.id for i in one] != [i.id for i in sample(items, 20, seed=1)]
    assert len(one) == 20
    assert {i.group: sum(j.group == i.group for j in one) for i in one} == {g: 5 for g in "abcd"}
    assert sum(not i.answerable for i in one) in (6, 7, 8)  # a third of the items are unanswerable
    assert [items.index(i) for i in one] == sorted(items.index(i) for i in one)
    assert sample(items, None) == items


def test_lost_to_checks_counts_right_drafts_the_checks_took_away(tmp_path):
    from rag.evaluation.report import write_report
    from rag.evaluation.results import EvalReport, QuestionResult, template_scores as _template_scores

    def row(n, draft_contains, contains, **kw):
        return QuestionResult(id=str(n), question=f"q{n}?", template="auto", answerable=True,
                              gold_sources=["a.md"], gold_answers=["8000"], retrieved_ids=[],
                              retrieved_sources=[], retrieval_s=0.0, em=0.0, f1=0.0, draft_contains=draft_contains,
                              contains=contains, **kw)

    rows = [row(1, 1.0, 1.0), row(2, 1.0, 0.0, abstained=True, abstain_code="other_subject",
                                   abstain_reason="cites [2], which does not mention X",
                                   draft="port 8000 [2]", chosen="extract"),
            row(3, 0.0, 0.0), row(4, 1.0, 0.0, draft="8000 | 80", answer="80 [1]")]
    scores = _template_scores(rows, {k: 1.0 for k in ("recall@1", "recall@5", "mrr@10")})
    assert scores.answer["lost_to_checks"] == 0.5
    report = EvalReport(dataset="d", format="jsonl", n=4, settings={}, retrieval={}, retrieval_latency={},
                        templates={"auto": scores}, results=rows, seconds=1.0)
    md = (Path(write_report(report, tmp_path)[-1])).read_text()
    assert "| right before the checks, lost to them | 0.500 |" in md
    assert "| auto→extract | q2? | 8000 | port 8000 [2] | " in md and "other_subject: cites [2]" in md
    assert "8000 \\| 80" in md and "cut from the answer" in md  # a pipe in a draft stays in its cell


def test_set_overrides_are_typed():
    assert parse_overrides(["top_k=6", "min-score=0.3", "corpus=docs"]) == \
        {"top_k": 6, "min_score": 0.3, "corpus": "docs"}
    with pytest.raises(ConfigError, match="not a valid int"):
        parse_overrides(["top_k=six"])
    with pytest.raises(ConfigError, match="unknown setting"):
        parse_overrides(["colour=blue"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_overrides(["top_k"])


def _cli(*args, script=False, env=None):
    cmd = [sys.executable, str(ROOT / "scripts" / "eval.py")] if script else [sys.executable, "-m", "rag", "eval"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env={**os.environ, **(env or {})})


def test_cli_bad_dataset_is_one_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "ok", "answers": ["a"], "sources": ["s"]}\n{oops}\n')
    for script in (False, True):  # the plain script works without installing the package
        out = _cli(str(bad), script=script)
        assert out.returncode == 1
        assert out.stderr.strip() == f"error: {bad} line 2: not valid JSON " \
                                     "(Expecting property name enclosed in double quotes, column 2)"
    out = _cli(str(FIX / "tiny.jsonl"), "--set", "top_k=0")
    assert out.returncode == 1 and "top_k must be at least 1" in out.stderr and "Traceback" not in out.stderr


# ------------------------------------------------------------------ with the real models


@pytest.mark.e2e
def test_small_eval_run_with_the_real_models(real_rag, tmp_path, monkeypatch):
    import dataclasses

    from rag.evaluation.report import format_table, write_report

    # short answers keep this test quick; the metrics do not care how long they are
    monkeypatch.setattr(real_rag, "settings", dataclasses.replace(real_rag.settings, max_tokens=64))

    full = load_jsonl(ROOT / "data" / "eval" / "corpus.jsonl")
    picked = [full.items[0], full.items[12], next(i for i in full.items if not i.answerable)]
    evalset = EvalSet(name="mini", format="jsonl", path="mini", items=picked)
    report = run_eval(evalset, real_rag, templates=["few_shot", "zero_shot"])
    assert report.n == 3 and list(report.templates) == ["few_shot", "zero_shot"]
    d = report.to_dict()
    few = d["templates"]["few_shot"]
    assert set(few["retrieval"]) >= {"recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10"}
    assert set(few["answer"]) == {"em", "f1", "contains", "lost_to_checks", "item_recall", "fragment_rate",
                                  "echo_rate", "sentence_rate"}
    assert set(few["abstention"]) == {"precision", "recall", "f1", "false_abstention_rate"}
    assert set(few["citations"]) == {"precision", "hit_rate", "evidence_cited", "evidence_cited_all"}
    assert set(few["latency"]) >= {"retrieve_p50_s", "ttft_p50_s", "total_p50_s", "total_p95_s"}
    assert all(isinstance(v, (int, float)) for g in few.values() for v in g.values())
    # both answerable questions have their gold document in the top 5
    assert few["retrieval"]["recall@5"] == 1.0
    assert 0 < few["latency"]["ttft_p50_s"] <= few["latency"]["total_p50_s"]
    assert few["tokens"]["prompt_mean"] > 100 and few["tokens"]["per_s"] > 0
    rows = [r for r in report.results if r.template == "few_shot"]
    assert len(rows) == 3 and all(r.retrieved_ids and r.retrieved_sources for r in rows)
    assert rows[0].gold_sources[0] in rows[0].retrieved_sources[:5]
    # every answered row keeps the model's draft, so a rejection can be read afterwards
    assert all(r.draft for r in rows if not r.abstained)
    # deterministic: a second run gives the same answers word for word
    again = run_eval(evalset, real_rag, templates=["few_shot"])
    assert [r.answer for r in again.results] == [r.answer for r in rows]

    files = write_report(report, tmp_path / "report")
    names = {p.name for p in files}
    assert names == {"results.json", "questions.jsonl", "metrics.png", "latency.png", "report.md"}
    assert (tmp_path / "report" / "metrics.png").read_bytes()[:4] == b"\x89PNG"
    assert len((tmp_path / "report" / "questions.jsonl").read_text().splitlines()) == 6
    assert "| exact match |" in format_table(report)
    assert json.loads((tmp_path / "report" / "results.json").read_text())["n"] == 3


@pytest.mark.e2e
def test_cli_retrieval_only_json(real_rag):
    out = _cli(str(FIX / "tiny.jsonl"), "--retrieval-only", "--json",
               env={"RAG_INDEX": real_rag.settings.index})
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert d["n"] == 3 and d["templates"] == {}
    assert d["retrieval"]["recall@10"] == 1.0 and d["retrieval_latency"]["p50_s"] > 0


@pytest.mark.e2e
def test_unknown_gold_source_is_refused(real_rag, tmp_path):
    path = tmp_path / "typo.jsonl"
    path.write_text('{"question": "What is LoRA?", "answers": ["LoRA"], "sources": ["no-such-file.txt"]}\n')
    with pytest.raises(DatasetError, match="typo.jsonl line 1: source 'no-such-file.txt' is not in the index"):
        run_eval(load_jsonl(path), real_rag, templates=["few_shot"], retrieval_only=True)


def test_template_names_are_checked_before_any_work():
    evalset = load_jsonl(FIX / "tiny.jsonl")
    with pytest.raises(ConfigError, match="unknown template 'chatty'"):
        run_eval(evalset, None, templates=["few_shot", "chatty"])
    with pytest.raises(ConfigError, match="no templates"):
        run_eval(evalset, None, templates=[])
