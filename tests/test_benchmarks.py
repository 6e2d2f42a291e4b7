"""Smoke test of the benchmark code paths and of the approximate index they justify.

No timings are asserted: benchmarks measure speed, tests check that the code runs and that
the results have the shape BENCHMARKS.md is rendered from.
"""
import json

import faiss
import numpy as np
import pytest

from benchmarks import common, report, retrieval
from rag import index as index_mod
from rag.stores import faiss as faiss_store
from rag.config import Settings
from rag.errors import ConfigError


def test_synthetic_vectors_are_unit_length_and_reproducible():
    a = common.synthetic_vectors(500, seed=3)
    assert a.shape == (500, 384) and a.dtype == np.float32
    assert np.allclose(np.linalg.norm(a, axis=1), 1, atol=1e-5)
    assert np.array_equal(a, common.synthetic_vectors(500, seed=3))


def test_build_faiss_is_exact_below_the_threshold_and_ivf_above():
    v = common.synthetic_vectors(4000, seed=1)
    assert isinstance(faiss_store.build_faiss(v, ann_threshold=5000), faiss.IndexFlatIP)
    assert isinstance(faiss_store.build_faiss(v, ann_threshold=0), faiss.IndexFlatIP)
    ivf = faiss_store.build_faiss(v, ann_threshold=4000)
    assert isinstance(ivf, faiss.IndexIVFFlat) and ivf.ntotal == 4000
    nlist, nprobe = faiss_store.ivf_params(4000)
    assert (ivf.nlist, ivf.nprobe) == (nlist, nprobe)
    q = common.synthetic_vectors(20, seed=9)
    exact = faiss_store.build_faiss(v, ann_threshold=0).search(q, 10)[1]
    approx = ivf.search(q, 10)[1]
    assert retrieval._recall(approx, exact) >= 0.5  # structure exploited, not a random answer


def test_ann_threshold_reaches_the_stored_index(corpus_copy, tmp_path, fake_embedder):
    idx = tmp_path / "index"
    report_ = index_mod.build([corpus_copy], index_dir=idx, embedder=fake_embedder, chunk_size=64,
                              chunk_overlap=8, ann_threshold=20)
    store = faiss_store.open_index(idx)
    assert report_.n_chunks >= 20
    assert isinstance(store.faiss_index, faiss.IndexIVFFlat)
    assert store.faiss_index.nprobe == faiss_store.ivf_params(len(store))[1]  # saved with the index
    scores, rows = store.search(fake_embedder.embed(["LoRA fine-tuning"]), 3)
    assert (rows[0] >= 0).all()


def test_ann_threshold_setting(monkeypatch):
    assert Settings.load().ann_threshold > 0
    monkeypatch.setenv("RAG_ANN_THRESHOLD", "0")
    assert Settings.load().ann_threshold == 0
    with pytest.raises(ConfigError):
        Settings.load(ann_threshold=-1)


@pytest.fixture(scope="module")
def embedder():
    from rag.config import DEFAULT_EMBEDDER_NAME
    from rag.embed import Embedder

    return Embedder(Settings.load().embedder_path(), name=DEFAULT_EMBEDDER_NAME)


@pytest.mark.e2e  # the real embedder
def test_retrieval_section_and_report(embedder, tmp_path):
    out = retrieval.run(quick=True, embedder=embedder, top_k=4, ann_threshold=3000, sizes=[2000, 4000])
    assert set(out["sizes"]) == {"2000", "4000"}
    row = out["sizes"]["4000"]
    assert row["default_index"] == "ivf" and out["sizes"]["2000"]["default_index"] == "flat"
    for key in ("raw_flat_ms", "raw_ann_ms", "e2e_flat_ms", "e2e_ann_ms"):
        assert row[key]["n"] == row["queries"] and 0 < row[key]["p50"] <= row[key]["p95"]
    assert 0 <= row["ann_recall_at_10_vs_flat"] <= 1
    assert [g["goal"].startswith("IVF recall@10") for g in out["goals"]] == [True]
    results = {"quick": True, "command": "python benchmarks/run.py --quick", "started": "now",
               "total_s": 1.0, "machine": common.machine(), "versions": common.versions(),
               "sections": {"retrieval": out}, "goals": out["goals"]}
    md = report.render(results)
    assert "## 5. Retrieval" in md and "| 4,000 |" in md and "## Goals" in md
    assert common.machine()["logical_cores"] >= 1


def test_a_section_run_again_replaces_only_its_part_of_the_full_run():
    from benchmarks.run import _merge

    goal = {"goal": "g", "target": "t", "measured": 1, "unit": "", "met": True, "note": ""}
    old = {"quick": False, "started": "then", "total_s": 60.0, "command": "python benchmarks/run.py",
           "sections": {"indexing": {"goals": [goal], "x": 1}, "retrieval": {"goals": [], "x": 1}}}
    new = {"quick": False, "started": "now", "total_s": 120.0, "command": "python benchmarks/run.py --only retrieval",
           "sections": {"retrieval": {"goals": [{**goal, "goal": "r"}], "x": 2}}}
    merged = _merge(old, new)
    assert merged["sections"]["indexing"]["x"] == 1 and merged["sections"]["retrieval"]["x"] == 2
    assert [g["goal"] for g in merged["goals"]] == ["g", "r"]
    assert merged["reruns"] == ["python benchmarks/run.py --only retrieval at now (2.0 min)"]
    assert merged["started"] == "then"
    assert _merge({**old, "quick": True}, new) is new  # a quick run never mixes with a full one


def test_readers_section_measures_both_sides_and_renders(tmp_path):
    from benchmarks import readers
    from rag import samples

    f = samples.write_pptx(tmp_path / "d.pptx", [(f"Slide {i}", ["Some text here"]) for i in range(5)])
    x = readers.measure("pptx", f, 5, "slides", repeats=1)
    assert x["ours_chars"] > 0 and x["raw_chars"] > 0 and x["ratio"] > 0 and x["ours_units_per_s"] > 0
    assert readers.accuracy("The pump needs 4 bar.", "The  pump needs\n4 bar.") == 1.0
    assert 0 < readers.accuracy("The pump needs 4 bar.", "The pomp neds 4 bar") < 1
    ocr = {"pages": 1, "image_px": [10, 10], "tesseract": "5", "raw_pages_per_s": 1.0,
           "image_reader_pages_per_s": 1.0, "pdf_reader_pages_per_s": 1.0, "raw_accuracy": 1.0,
           "image_reader_accuracy": 1.0, "pdf_reader_accuracy": 1.0}
    results = {"quick": True, "command": "python benchmarks/run.py --quick", "started": "now",
               "total_s": 1.0, "machine": common.machine(), "versions": common.versions(),
               "sections": {"readers": {"formats": {"pptx": x}, "ocr": ocr}}, "goals": []}
    md = report.render(results)
    assert "## Document readers and OCR" in md and "| pptx |" in md and "OCR (Tesseract 5)" in md


def test_the_issue_20_sections_render():
    st = {"median": 1.0, "min": 0.5, "max": 2.0, "n": 3}
    pc = {"p50": 1.0, "p95": 2.0, "n": 3}
    side = {"total_s": pc, "decode_s": pc, "generated": 120, "shown": 100, "generated_per_shown": 1.2,
            "answered": 2}
    row = {"tokens": 60, "shown": 50, "total": 1.0, "decode": 0.5, "text": "x", "abstained": False, "by_model": True}
    stages = {k: st for k in ("import", "index", "bm25", "embedder", "model", "first_token", "wall_to_first_token")}
    sections = {
        "stop_early": {"questions": 1, "on": side, "off": {**side, "generated_per_shown": 2.5},
                       "per_question": [{"question": "What is LoRA?", "on": row, "off": row, "same_answer": True}]},
        "answer_evals": {"dataset": "data/eval/corpus.jsonl", "variants": {"Q4_1, on": {
            "model": "m.gguf", "metrics": {"answer.contains": 0.45}, "generated_mean": 58.0, "total_p50_s": 4.0}}},
        "prefill": {"prompts": 2, "prompt_tokens": st, "threads": 2, "repeats": 3, "quantize_s": 0.8,
                    "quants": {"q4_0": {"file": "m.Q4_0.gguf", "size_mb": 87, "prefill_tokens_per_s": st,
                                        "decode_tokens_per_s": st}},
                    "build": {"flavour": "avx2", "cmake": ["-DGGML_AVX2=ON"], "avx512": [], "measured_avx512": False}},
        "cold": {"question": "What is LoRA?", "baseline_commit": "abc", "old": {**stages, "heavy_modules": ["torch"]},
                 "new": {**stages, "heavy_modules": []},
                 "big": {"chunks": 1000, "chat_start_s": 3.0, "bm25_mb": 1.0, "write_s": 2.0, "first_search_s": 0.1}},
        "concurrency": {"users": 20, "levels": {"1": {"answer_s": pc, "wait_s": pc, "work_s": pc,
                                                      "all_answered_s": 9.0}}},
    }
    md = "\n".join(report._speed(sections))
    for heading in ("## Stop when the answer is complete", "## Prefill on this CPU", "## Cold start",
                    "## Concurrency"):
        assert heading in md
    assert "1.20x" in md and "2.50x" in md and "| m.Q4_0.gguf (q4_0) | 87 |" in md
    assert "could not be measured here" in md and "| old |" in md and "1,000 synthetic chunks" in md


def test_eval_tables_put_every_model_and_template_in_one_table(tmp_path):
    import json

    from benchmarks.eval_tables import table

    def run(folder, model, templates):
        scores = {t: {"answer": {"contains": c, "f1": 0.2, "lost_to_checks": 0.0},
                      "abstention": {"recall": 1.0, "false_abstention_rate": 0.1},
                      "citations": {"precision": 1.0, "hit_rate": 0.9},
                      "latency": {"total_p50_s": 3.25}, "tokens": {"generated_mean": 41.25}}
                  for t, c in templates.items()}
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "results.json").write_text(json.dumps(
            {"dataset": "corpus", "n": 43, "settings": {"model": f"/m/{model}.gguf", "guards": "auto",
                                                        "n_threads": 1}, "templates": scores}))
        return tmp_path / folder

    md = table([run("a", "small", {"auto": 0.455, "extract": 0.1}), run("b", "big", {"auto": 0.6})])
    rows = [line for line in md.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [r.split(" | ")[:3] for r in rows] == [["| small", "auto", "0.455"], ["| small", "extract", "0.100"],
                                                   ["| big", "auto", "0.600"]]
    assert rows[0].endswith("| 3.250 | 41.2 |")
    picked = table([f"{tmp_path / 'a'}:extract", tmp_path / "b"])
    assert "| small | auto |" not in picked and "| small | extract |" in picked and "| big | auto |" in picked
    (tmp_path / "b" / "results.json").write_text((tmp_path / "b" / "results.json").read_text()
                                                 .replace('"corpus"', '"squad"'))
    with pytest.raises(SystemExit, match="different datasets"):
        table([tmp_path / "a", tmp_path / "b"])
    with pytest.raises(SystemExit, match="no results.json"):
        table([tmp_path / "missing"])
    (tmp_path / "b" / "results.json").write_bytes(b"\x00\xff{")
    with pytest.raises(SystemExit, match="not JSON"):
        table([tmp_path / "b"])
    (tmp_path / "b" / "results.json").write_text("[]")
    with pytest.raises(SystemExit, match="not a rag eval report"):
        table([tmp_path / "b"])


def test_render_writes_the_report_from_the_results_file_and_says_there_was_no_gpu(tmp_path):
    from benchmarks.run import main

    machine = {**common.machine(), "gpu": {"nvidia_smi": False, "llama_gpu_offload": False}, "commit": "abc1234"}
    results = {"quick": False, "command": "python benchmarks/run.py", "started": "now", "total_s": 60.0,
               "machine": machine, "versions": {}, "sections": {}, "goals": []}
    (tmp_path / "results.json").write_text(json.dumps(results))
    assert main(["--render", "--out", str(tmp_path), "--json", str(tmp_path / "results.json")]) == 0
    md = (tmp_path / "BENCHMARKS.md").read_text()
    assert "at commit abc1234" in md
    assert "## GPU" in md and "`nvidia-smi` absent, the installed llama.cpp build cannot offload" in md
    assert json.loads((tmp_path / "results.json").read_text()) == results  # rendering measures nothing


@pytest.mark.e2e  # the real model
def test_the_decode_comparison_gives_raw_the_tokens_of_an_answer_stopped_early(real_rag):
    from benchmarks import generation

    # this answer ends at its sentence limit, well before max_tokens; the raw call must decode
    # the same tokens for the rates to be comparable (decode_ratio asserts they match)
    out = generation.decode_ratio(real_rag, ["What are autoencoders used for?"])
    assert out["questions"] == 1 and 32 < out["tokens"][0] < real_rag.settings.max_tokens - 1
    assert out["ratio"]["n"] == 1 and out["ratio"]["median"] > 0


@pytest.mark.e2e  # the real embedder
def test_the_batch_sweep_and_the_benchmarks_onnx_embedder_run_on_the_real_model(embedder, tmp_path):
    from benchmarks import indexing, onnx_embed
    from rag.embed import export_onnx

    texts = ["LoRA adapts a large model with small low-rank matrices.", "FAISS searches vectors.",
             "A short one.", "Retrieval-augmented generation answers from passages it retrieves."] * 2
    sweep = indexing.batch_sweep(embedder, texts, [2, 8])
    assert set(sweep) == {"2", "8"} and min(sweep.values()) > 0
    model = embedder.model
    ort = onnx_embed.OrtEmbedder(export_onnx(model, tmp_path / "model.onnx"), model.tokenizer,
                                 max_length=embedder.max_seq_length, threads=1, dim=embedder.dim)
    got = ort.embed(texts, batch_size=3)  # batches cut across the length order
    want = model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    assert got.shape == want.shape and np.allclose(got, want, atol=1e-4)


def test_build_flavours_pair_the_avx2_fallback_with_the_setups_pick():
    from benchmarks import flavours
    from rag.buildflags import choose

    avx2 = {"avx", "avx2", "fma", "f16c"}
    assert flavours.pair(avx2) is None  # one build to run: nothing to compare
    zen4 = avx2 | {"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd", "avx512_vnni", "avx512_bf16"}
    (fb, fb_opts), (ch, ch_opts) = flavours.pair(zen4)
    assert (fb, ch) == ("avx2", "avx512-vnni-bf16") and (ch, ch_opts) == choose(zen4, avx512=True)
    assert (fb, fb_opts) == choose(zen4)  # the set-up's default
    assert "-DGGML_AVX512=OFF" in fb_opts and "-DGGML_AVX512_VNNI=ON" in ch_opts


def test_the_build_flavour_table_renders():
    st = {"median": 200.0, "min": 190.0, "max": 210.0, "n": 6}
    fast = {**st, "median": 300.0}
    f = {"fallback": "avx2", "chosen": "avx512-vnni", "repeats": 3,
         "builds": {"avx2": {"system_info": "AVX2 = 1 | AVX512 = 0"}, "avx512-vnni": {"system_info": "AVX512 = 1"}},
         "models": {"shipped": {"avx2": {"prefill_tokens_per_s": st, "decode_tokens_per_s": st},
                                "avx512-vnni": {"prefill_tokens_per_s": fast, "decode_tokens_per_s": st},
                                "prefill_ratio": 1.5, "decode_ratio": 1.0, "same_text": 2}}}
    md = "\n".join(report._flavours(f, 2))
    assert "| shipped | 200 (190-210, n=6) | 300 (190-210, n=6) | 1.50 |" in md and "| 2/2 |" in md
    assert "`avx512-vnni`: AVX512 = 1" in md
    # a pick slower than the fallback beyond the spread is said to be one, from the figures
    slow = {**st, "median": 100.0, "min": 95.0, "max": 105.0}
    f["models"]["shipped"]["avx512-vnni"]["prefill_tokens_per_s"] = slow
    results = {"sections": {"prefill": {"build": {"flavours": f}}},
               "goals": [{"goal": "prefill tokens/s, the set-up's avx512-vnni build / the portable avx2 build",
                          "met": False}]}
    (why,) = report._why_not_met(results)
    assert "100 (95-105) tok/s against 200 (190-210)" in why and "slower beyond the spread" in why
    assert "only 2 of 2 greedy answers" in why and "RAG_LLAMA_AVX512=1" in why


def test_the_resume_benchmark_counts_the_cpu_time_of_the_processes_it_waited_for():
    # the resumed/full ratio is also given in CPU time, which other work on the cores does not stretch
    import subprocess
    import sys

    from benchmarks import big_pdf

    before = big_pdf._children_cpu_s()
    subprocess.run([sys.executable, "-c", "sum(i * i for i in range(3_000_000))"], check=True)
    assert big_pdf._children_cpu_s() - before > 0.05
