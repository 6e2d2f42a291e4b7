"""BENCHMARKS.md from the results dictionary of benchmarks/run.py."""
from __future__ import annotations


def _s(st: dict, fmt: str = "{:.2f}") -> str:
    """median (min-max, n runs)"""
    if not st:
        return "-"
    return f"{fmt.format(st['median'])} ({fmt.format(st['min'])}-{fmt.format(st['max'])}, n={st['n']})"


def _p(p: dict) -> str:
    return f"{p['p50']:.2f} / {p['p95']:.2f}"


def render(r: dict) -> str:
    m, v = r["machine"], r["versions"]
    out = ["# Benchmarks", "",
           f"Reproduce: `.venv/bin/python benchmarks/run.py{' --quick' if r['quick'] else ''}` "
           f"(this file: `{r['command']}`, started {r['started']}, took {r['total_s'] / 60:.1f} min"
           f"{', at commit ' + m['commit'] if m.get('commit') else ''}).",
           "Ratios compare the pipeline with the raw library doing the same work in the same run;",
           "times are medians with (min-max, number of runs).", ""]
    if r.get("reruns"):
        out += ["Sections measured again later, on their own: " + "; ".join(f"`{x}`" for x in r["reruns"]) + ".", ""]
    if r["quick"]:
        out += ["**Quick mode: small sizes and single runs; a smoke run, not the reference figures.**", ""]
    out += ["## Machine", "",
            f"- CPU: {m['cpu']}, {m['logical_cores']} logical cores, {m['memory']} RAM",
            f"- SIMD flags: {' '.join(m['simd'])}",
            f"- Python {m['python']} on {m['platform']}",
            f"- load average at start: {', '.join(f'{x:.2f}' for x in m['load_average_at_start'])}",
            "- versions: " + ", ".join(f"{k} {val}" for k, val in v.items() if val), "",
            "## Goals", "", "| goal | target | measured | met |", "|---|---|---|---|"]
    for g in r["goals"]:
        note = f" ({g['note']})" if g["note"] else ""
        out.append(f"| {g['goal']} | {g['target']} | {g['measured']} {g['unit']}{note} | "
                   f"{'yes' if g['met'] else '**no**'} |")
    sec = r["sections"]
    why = _why_not_met(r)
    if why:
        out += ["", "Why the goals marked **no** are not met, from the figures of this run:", ""] + \
            [f"- {w}" for w in why]
    if "indexing" in sec:
        s = sec["indexing"]
        out += ["", "## 1-2, 6. Indexing", "",
                f"`index.build` (what `rag index` runs) against `SentenceTransformer.encode` on the same chunk "
                f"texts, batch size {s['batch_size']}, each in a fresh process with the model already loaded.",
                "", "| corpus | chunks | tokens/chunk | rag index chunks/s | raw encode chunks/s | ratio | "
                "full build s | unchanged re-index s | re-index/build | peak RSS build / raw MB |",
                "|---|---|---|---|---|---|---|---|---|---|"]
        for tag, c in s["corpora"].items():
            out.append(f"| {tag} | {c['chunks']} | {c['mean_tokens_per_chunk']} | {_s(c['rag_index_chunks_per_s'], '{:.1f}')} | "
                       f"{_s(c['raw_encode_chunks_per_s'], '{:.1f}')} | {_s(c['ratio'], '{:.3f}')} | "
                       f"{_s(c['full_build_s'])} | {_s(c['unchanged_reindex_s'], '{:.3f}')} | "
                       f"{_s(c['reindex_over_build'], '{:.4f}')} | {c['peak_rss_build_mb']:.0f} / "
                       f"{c['peak_rss_raw_encode_mb']:.0f} |")
        out += ["", "Memory through the real build path (real tokenizer and chunker, stand-in 384-d embedder "
                "so that 100k chunks fit the time budget; the real model adds its constant "
                f"{next(iter(s['corpora'].values()))['rss_after_model_load_mb']:.0f} MB process size):", "",
                "| chunks | build s | peak RSS MB |", "|---|---|---|"]
        for n, mm in s["memory_standin"].items():
            out.append(f"| {mm['chunks']} | {mm['build_s']:.1f} | {mm['rss_peak_mb']:.0f} |")
        out.append(f"\nGrowth: {s['memory_kb_per_chunk']:.1f} KB per chunk (texts, metadata, vectors, index).")
    if "retrieval" in sec:
        s = sec["retrieval"]
        out += ["", "## 5. Retrieval", "",
                "Synthetic unit vectors (dimension 384, topic clusters plus low-rank structure); real query "
                "embedding. Raw = one `faiss` search (k=10); end to end = `Retriever.search` (query "
                "embedding + search + ranking). IVF = `build_faiss` above its threshold "
                f"(`ann_threshold` {s['ann_threshold']}). Times in ms, p50 / p95.", "",
                "| chunks | queries | raw flat | raw IVF | IVF recall@10 vs flat | e2e flat | e2e IVF | "
                "default index | IVF lists/probed | IVF build s | BM25 build s |",
                "|---|---|---|---|---|---|---|---|---|---|---|"]
        for n, x in s["sizes"].items():
            out.append(f"| {int(n):,} | {x['queries']} | {_p(x['raw_flat_ms'])} | {_p(x['raw_ann_ms'])} | "
                       f"{x['ann_recall_at_10_vs_flat']:.3f} | {_p(x['e2e_flat_ms'])} | {_p(x['e2e_ann_ms'])} | "
                       f"{x['default_index']} | {x['ivf_lists_probed'][0]}/{x['ivf_lists_probed'][1]} | "
                       f"{x['ann_build_s']:.1f} | {x.get('bm25_build_s', float('nan')):.1f} |")
    if "generation" in sec:
        s = sec["generation"]
        d, pc = s["decode"], s["prefix_cache"]
        out += ["", "## 3-4, 7-8. Generation", "",
                f"Default model, {s['n_threads']} threads, n_ctx {s['n_ctx']}, max_tokens {s['max_tokens']}.", "",
                f"- Decode over {d['questions']} questions (tokens {d['tokens']}): RAG.stream "
                f"{_s(d['rag_tokens_per_s'], '{:.1f}')} tok/s, raw create_completion on the recorded identical "
                f"prompt and settings {_s(d['raw_tokens_per_s'], '{:.1f}')} tok/s, ratio {_s(d['ratio'], '{:.3f}')} "
                f"(answers of 32 tokens or fewer left out). Citation and grounding checks after the last "
                f"token: {_s(d.get('answer_checks_s', {}), '{:.3f}')} s.",
                f"- Prefix cache: cold TTFT {_s(pc['cold_ttft_s'], '{:.3f}')} s, second question "
                f"{_s(pc['warm_ttft_s'], '{:.3f}')} s, ratio {_s(pc['ratio'], '{:.3f}')}; share of the second "
                f"prompt served from the KV cache {_s(pc['cached_fraction_of_prompt'], '{:.2f}')}."]
        if "threads" in s:
            out.append("- llama.cpp threads (raw, same prompt): " + "; ".join(
                f"{n}: decode {t['decode_tokens_per_s']:.1f} tok/s, prefill of {t['prompt_tokens']} tokens "
                f"{t['prefill_s']:.3f} s" for n, t in s["threads"].items()))
        c = s["cold_start"]
        out.append(f"- Cold start (fresh process): import {_s(c['import_s'])} s; `RAG(...)` to first answer "
                   f"{_s(c['rag_to_first_answer_s'])} s, of which loading {_s(c['load_s'])} s.")
        e = s["end_to_end"]
        sp = e["seconds"]
        out += [f"- End to end over {e['questions']} corpus questions ({e['answered_by_model']} answered by the "
                f"model): p50 / p95 seconds: total {_p(sp['total'])}, retrieve {_p(sp['retrieve'])}, prompt "
                f"{_p(sp['prompt'])}, prefill {_p(sp['prefill'])}, decode {_p(sp['decode'])}; prompt tokens "
                f"{_s(e['prompt_tokens'], '{:.0f}')}, answer tokens {_s(e['completion_tokens'], '{:.0f}')}.", "",
                "| question | total s | retrieve s | prefill s | decode s | prompt tok | cached | answer tok |",
                "|---|---|---|---|---|---|---|---|"]
        for q in e["per_question"]:
            out.append(f"| {q['question']} | {q['total']:.2f} | {q['retrieve']:.3f} | {q['prefill']:.3f} | "
                       f"{q['decode']:.2f} | {q['prompt_tokens']} | {q['cached_tokens']} | {q['completion_tokens']} |")
    if "milvus" in sec:
        out += ["", "## Milvus Lite against FAISS", "",
                "The same synthetic 384-d vectors in both stores through the `VectorStore` writer (build: "
                "add + commit, which for Milvus is insert, flush, load and the alias switch) and one "
                "question's dense search for the top 50 (FAISS: exact below 50k chunks, IVF from there).", "",
                "| chunks | FAISS build chunks/s | Milvus build chunks/s | ratio | FAISS search p50 / p95 ms | "
                "Milvus search p50 / p95 ms |", "|---|---|---|---|---|---|"]
        for n, x in sec["milvus"]["sizes"].items():
            f, m = x["faiss"], x["milvus"]
            out.append(f"| {int(n):,} | {f['chunks_per_s']:.0f} | {m['chunks_per_s']:.0f} | "
                       f"{x['build_ratio_milvus_vs_faiss']:.3f} | {f['search_p50_ms']:.2f} / {f['search_p95_ms']:.2f} | "
                       f"{m['search_p50_ms']:.2f} / {m['search_p95_ms']:.2f} |")
    if "server" in sec:
        s = sec["server"]
        out += ["", "## LLM server", "",
                f"The default GGUF behind `python -m llama_cpp.server` on loopback, against the same GGUF "
                f"in-process (raw `create_completion`), on the pipeline's identical prompts for {s['questions']} "
                f"corpus questions, greedy, at most {s['max_tokens']} tokens, alternating which side goes first.", "",
                f"- decode tokens/s: server {_s(s['server_tokens_per_s'])}, in-process {_s(s['raw_tokens_per_s'])}, "
                f"ratio {_s(s['decode_ratio'])}",
                f"- time to first token: server {_s(s['server_ttft_s'], '{:.3f}')} s, in-process "
                f"{_s(s['raw_ttft_s'], '{:.3f}')} s, ratio {_s(s['ttft_ratio'])}",
                f"- HTTP overhead per question (server total - in-process total): {_s(s['http_overhead_s'], '{:.3f}')} s",
                f"- tokens generated: server {s['tokens']['server']}, in-process {s['tokens']['raw']}"]
    if "serve" in sec:
        s = sec["serve"]
        out += ["", "## rag serve", "",
                f"`rag serve` (HTTP, non-streamed chat completion) against `RAG.ask` in-process, the same "
                f"{s['questions']} corpus questions, alternating which goes first: total p50 / p95 "
                f"{_p(s['http_total_s'])} s through the server, {_p(s['local_total_s'])} s in-process; "
                f"added by the server p50 / p95 {_p(s['added_s'])} s."]
    if "embed_batch_size" in sec:
        b = sec["embed_batch_size"]
        out += ["", "## Embedding batch size", "",
                f"Raw encode of the {b['chunks']} corpus chunks: " +
                ", ".join(f"batch {k}: {x:.1f} chunks/s" for k, x in b["chunks_per_s"].items()) + "."]
    if "onnx" in sec:
        s = sec["onnx"]
        out += ["", "## ONNX embedder", "",
                f"SQuAD sample: {s['paragraphs']} paragraphs, {s['questions']} answerable questions, dense "
                f"retrieval, gold = the question's paragraph. Export + int8 quantisation took {s['export_s']:.1f} s.", "",
                "| backend | paragraphs/s | speed vs torch | one question ms p50 / p95 | speed vs torch | "
                "recall@5 | drop (points) | recall@5, one question at a time | drop (points) | "
                "kept for batches | kept for questions |",
                "|---|---|---|---|---|---|---|---|---|---|---|"]
        for name in [n for n in ("torch", "onnx", "onnx-int8", "onnx-int8-per-channel") if n in s]:
            x = s[name]
            q = x["question_ms"]
            keep = ("-", "-") if name == "torch" else tuple(
                "yes" if x[k] else "no" for k in ("keep_batches", "keep_questions"))
            out.append(f"| {name} | {x['paragraphs_per_s']:.1f} | {x.get('speed_ratio_vs_torch', 1):.2f} | "
                       f"{q['p50']:.2f} / {q['p95']:.2f} | {x.get('question_speed_ratio_vs_torch', 1):.2f} | "
                       f"{x['recall_at_5']:.4f} | {x.get('recall_drop_points', 0):.2f} | "
                       + (f"{x['recall_at_5_one_question']:.4f} | {x.get('recall_drop_points_one_question', 0):.2f} | "
                          if "recall_at_5_one_question" in x else "- | - | ")
                       + f"{keep[0]} | {keep[1]} |")
        pc = s.get("onnx-int8-per-channel")
        if pc and "recall_drop_points_one_question" in pc:
            out += ["", "The product embeds index chunks and questions alike with the per-channel int8 model "
                    "(`embed_backend=auto`, when onnxruntime works; else torch, questions through the fp32 "
                    "ONNX twin), never int8 questions against fp32 chunks: the index records its backend "
                    "and one built by another is rebuilt by `rag index`. The answer checks, which compare texts "
                    "with one another and not with the index, keep torch's vectors (the fp32 twin): their "
                    "thresholds were set on them. Per-tensor int8 stays unused "
                    f"(drop {s['onnx-int8']['recall_drop_points']:.2f} points). Dynamic int8 scales the "
                    "activations of each call by their range over the whole batch, so in batches a vector moves "
                    "with its batch-mates (per tensor, the two recall columns differ); the per-channel model runs "
                    "one text per call (`INT8_BATCH`), which gives each text one vector and was faster than "
                    "batches of 16 with their padding."]
        else:
            i8 = s["onnx-int8"]
            out += ["", "The product embeds questions with the fp32 ONNX model (`query_backend=auto`: the same "
                    "vectors as torch) and builds indexes with torch. int8 is not used even where it passes: "
                    f"its questions would sit {i8['recall_drop_points']:.2f} recall points lower against "
                    "fp32 chunk vectors for a few milliseconds."]
        if "build" in s:
            b = s["build"]
            t, d = b["torch"], next((v, k) for k, v in b.items() if k != "torch")
            out += ["", f"Index build of corpus/ ({t['chunks']} chunks), each embedder loaded first, best of the "
                    f"runs, in this run: torch {t['seconds']:.2f} s, {d[1]} (the default) {d[0]['seconds']:.2f} s "
                    f"({t['seconds'] / d[0]['seconds']:.2f}x)."]
    if "readers" in sec:
        s = sec["readers"]
        out += ["", "## Document readers and OCR", "",
                "`ingest.load` (structure, headings, locations, Markdown tables) against the library's own "
                "plainest text extraction of the same generated file, best of the runs; ratio = raw time / "
                "our time (1 = as fast as the raw library).", "",
                "| format | file MB | units | ours units/s | raw units/s | ours MB/s | raw MB/s | ratio |",
                "|---|---|---|---|---|---|---|---|"]
        for kind, x in s["formats"].items():
            out.append(f"| {kind} | {x['file_mb']:.2f} | {x['units']} {x['unit']} | {x['ours_units_per_s']:.1f} | "
                       f"{x['raw_units_per_s']:.1f} | {x['ours_mb_per_s']:.2f} | {x['raw_mb_per_s']:.2f} | "
                       f"{x['ratio']:.2f} |")
        o = s["ocr"]
        out += ["", f"OCR (Tesseract {o['tesseract']}) of {o['pages']} generated pages of "
                f"{o['image_px'][0]}x{o['image_px'][1]} pixels: pages/s {o['image_reader_pages_per_s']:.2f} "
                f"through the image reader, {o['pdf_reader_pages_per_s']:.2f} through a scanned PDF, "
                f"{o['raw_pages_per_s']:.2f} for raw `pytesseract.image_to_string`; character accuracy "
                f"{o['image_reader_accuracy']:.4f} / {o['pdf_reader_accuracy']:.4f} / {o['raw_accuracy']:.4f}."]
    out += _hostile(sec)
    out += _speed(sec)
    out += _gpu(r)
    notes = r.get("notes") or []
    if notes:
        out += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(out) + "\n"


def _outcome(x: dict) -> str:
    """An outcome without the temporary path it names, short enough for a table cell."""
    text = x["outcome"].replace("|", "\\|")
    if ": /" in text:  # "OverBudget: /tmp/x/f.docx: not read: ..." -> "OverBudget: not read: ..."
        head, _, rest = text.partition(": /")
        text = head + ": " + rest.partition(": ")[2]
    return text if len(text) <= 110 else text[:107] + "..."


def _hostile(sec: dict) -> list[str]:
    """Issue 34: twenty kinds of hostile file, and the fuzz run of the readers."""
    out = []
    if "hostile" in sec:
        s = sec["hostile"]
        before = s.get("before") or {}
        out += ["", "## Hostile files", "",
                "Each file read by `ingest.load` in a fresh interpreter (libraries imported first; address "
                "space capped at 6 GB) at scale " + f"{s['scale']:g}" + " of the sizes reported in issue 34. "
                "`before`: the same files read by the code before the reading budgets"
                + (f" (`{s['before_repo']}`, killed at 120 s)" if before else " (not measured in this run)")
                + "; peak = the reading process's peak RSS, with about 85 MB of interpreter and libraries in it.", "",
                "| case | file KB | before: outcome | s | peak MB | after: outcome | s | peak MB |",
                "|---|---:|---|---:|---:|---|---:|---:|"]
        for name, x in s["after"].items():
            b = before.get(name)
            bcols = (f"{_outcome(b)} | {b['seconds']:.2f} | {b['peak_mb']:.0f}" if b else "- | - | -")
            out.append(f"| {name}: {x['doc']} | {x['file_kb']:.0f} | {bcols} | {_outcome(x)} | "
                       f"{x['seconds']:.2f} | {x['peak_mb']:.0f} |")
    if "fuzz" in sec:
        f = sec["fuzz"]
        o = f["outcomes"]
        out += ["", "## Fuzzing the readers", "",
                f"{f['files']:,} mutants (seed {f['seed']}; bytes flipped, cut, repeated, spliced; inside the XML "
                f"of Office and EPUB packages, repacked) of one valid file per format, through `index.build` "
                f"in batches of 100 with the {f['embedder']} embedder: {o.get('indexed', 0):,} indexed, "
                f"{o.get('skipped', 0):,} skipped with a reason, {len(f['aborted_builds'])} builds aborted, "
                f"{len(f['unreasoned'])} skips without a reason; peak RSS {f['peak_mb']:.0f} MB "
                f"({f['peak_before_mb']:.0f} MB {f.get('baseline', 'at the start')}), "
                f"{f['seconds'] / 60:.1f} min. Commonest skip reasons:", ""]
        out += [f"- {why} ({n})" for why, n in list(f["reasons"].items())[:10]]
    return out


def _gpu(r: dict) -> list[str]:
    """Issue 20.5: what this run says about a GPU. The suite measures on the machine it runs on;
    it has no CUDA section of its own because no machine with a GPU has been lent to measure on."""
    g = r["machine"].get("gpu")
    seen = ("not recorded by this run" if g is None else
            f"`nvidia-smi` {'found' if g['nvidia_smi'] else 'absent'}, the installed llama.cpp build "
            f"{'can' if g['llama_gpu_offload'] else 'cannot'} offload layers")
    if g and (g["nvidia_smi"] or g["llama_gpu_offload"]):
        return ["", "## GPU", "", f"Not measured: this machine may have one ({seen}), but every "
                "section above runs the CPU path (`n_gpu_layers` 0)."]
    return ["", "## GPU", "",
            f"Not measured. This machine has no GPU ({seen}), CI has none, and no session of this "
            "project has been lent a machine with one (the device tool answered `not_drawn` each time), "
            "so the CUDA build with `n_gpu_layers=-1` has no figures here. Every figure above is CPU "
            "only; README § GPU offload says how to build for a GPU."]


def _one_thread_faster(sec: dict) -> str:
    """A sentence when the run's own thread sweep decoded faster on one thread than on two: the
    sign that something else held a core while the decode figures were taken."""
    t = sec.get("generation", {}).get("threads", {})
    one, two = t.get("1", {}).get("decode_tokens_per_s"), t.get("2", {}).get("decode_tokens_per_s")
    if not one or not two or one <= two:
        return ""
    return (f" In this run the raw call decoded faster on 1 thread ({one:.1f} tok/s) than on 2 "
            f"({two:.1f}), so one of the two cores was taken by something else while these figures were "
            "measured; on a quiet machine 2 threads are the faster.")


def _why_not_met(r: dict) -> list[str]:
    """One explanation per unmet goal, computed from the measured figures themselves."""
    sec, out = r["sections"], []
    unmet = {g["goal"] for g in r["goals"] if not g["met"]}
    if "indexing" in sec:
        for tag, c in sec["indexing"]["corpora"].items():
            if any(g.startswith(f"index build throughput, {tag} ") for g in unmet):
                raw_s = [c["chunks"] / x for x in (c["raw_encode_chunks_per_s"]["max"],
                                                    c["raw_encode_chunks_per_s"]["min"])]
                b = c["full_build_s"]
                if b["min"] > raw_s[1]:
                    out.append(f"index build, {tag}: every build of {c['chunks']} chunks took longer "
                               f"({b['min']:.2f}-{b['max']:.2f} s) than any raw encode of the same texts "
                               f"({raw_s[0]:.2f}-{raw_s[1]:.2f} s), so the gap is not run-to-run spread: it is "
                               f"a cost of about {b['median'] - sum(raw_s) / 2:.1f} s per build that does not "
                               "grow with the chunks, since the larger corpus stays near the raw rate (see the "
                               "table and the notes).")
                    continue
                out.append(f"index build, {tag}: a build of {c['chunks']} chunks took {b['median']:.2f} s "
                           f"({b['min']:.2f}-{b['max']:.2f}) against {raw_s[0]:.2f}-{raw_s[1]:.2f} s for the raw "
                           f"encode of the same texts, so single runs overlap and the ratio spans "
                           f"{c['ratio']['min']:.2f}-{c['ratio']['max']:.2f} over {c['ratio']['n']} runs: at this "
                           "size the encoder's run-to-run spread decides the figure, not the pipeline's own work "
                           "(reading, chunking, FAISS, the synced manifest), which the larger corpus shows.")
    if "retrieval" in sec and any(g.startswith("retrieval p50") for g in unmet):
        x = sec["retrieval"]["sizes"].get("100000")
        if x:
            out.append(f"retrieval at 100k: the index search itself takes {x['raw_ann_ms']['p50']:.1f} ms "
                       f"(flat {x['raw_flat_ms']['p50']:.1f} ms); the rest of the {x['e2e_default_ms']['p50']:.1f} ms "
                       "is embedding the question with MiniLM on the CPU plus BM25 scoring and fusion.")
    contended = _one_thread_faster(sec)
    if "server" in sec and any(g.startswith("decode tokens/s through an LLM server") for g in unmet):
        sv = sec["server"]
        out.append(f"LLM server decode: the per-question ratio spans {sv['decode_ratio']['min']:.2f}-"
                   f"{sv['decode_ratio']['max']:.2f} over {sv['decode_ratio']['n']} questions (server "
                   f"{sv['server_tokens_per_s']['min']:.1f}-{sv['server_tokens_per_s']['max']:.1f} tok/s, in-process "
                   f"{sv['raw_tokens_per_s']['min']:.1f}-{sv['raw_tokens_per_s']['max']:.1f}); a median of "
                   f"{sv['decode_ratio']['median']:.2f} against 0.9 is inside that spread." + contended)
    if "generation" in sec and any(g.startswith("decode tokens/s through RAG") for g in unmet):
        dc = sec["generation"]["decode"]
        rag_r, raw_r, ratio = dc["rag_tokens_per_s"], dc["raw_tokens_per_s"], dc["ratio"]
        out.append(f"decode: the two sides run the same llama.cpp loop on the same prompt; over "
                   f"{ratio['n']} questions RAG.stream gave {rag_r['min']:.1f}-{rag_r['max']:.1f} tok/s and raw "
                   f"create_completion {raw_r['min']:.1f}-{raw_r['max']:.1f}, and the per-question ratio spans "
                   f"{ratio['min']:.2f}-{ratio['max']:.2f}: a median of {ratio['median']:.3f} against 0.95 is "
                   "inside that run-to-run spread on a 2-core machine." + contended)
    if "generation" in sec and any(g.startswith("TTFT of a second") for g in unmet):
        pc = sec["generation"]["prefix_cache"]
        share = pc["cached_fraction_of_prompt"]["median"]
        out.append(f"prefix cache: only {share:.0%} of the second prompt (the fixed instructions and worked "
                   f"examples) can come from the cache; prefill follows the other {1 - share:.0%} (passages "
                   f"and question), so a ratio near {1 - share:.2f} is what this template allows; measured "
                   f"{pc['ratio']['median']:.2f}.")
    if "answer_evals" in sec:
        for g in sec["answer_evals"]["goals"]:
            if g["goal"] in unmet and "requantized" in g["goal"]:
                out.append(f"{g['goal'].split(' requantized')[0]}: its answers differ from the shipped Q4_1 "
                           f"file's by up to {g['measured']:.3f} on an eval metric ({g['note']}), past the "
                           "0.02 allowed, so it is measured, not used: `model_quant` stays `shipped`.")
    if "stop_early" in sec and any(g.startswith("stop_early: generated") for g in unmet):
        rows = [r for r in sec["stop_early"]["per_question"]
                if r["on"]["by_model"] and not r["on"]["abstained"] and r["on"]["tokens"] > 1.3 * r["on"]["shown"]]
        out.append("stop_early: the checks shortened some answers after generation where no stop condition "
                   "had fired, so part of what was generated is still not shown: " + "; ".join(
                       f"\"{r['question']}\" {r['on']['tokens']} generated, {r['on']['shown']} shown" for r in rows)
                   + ".")
    if "prefill" in sec and any(g.startswith("prefill tokens/s, the set-up's") for g in unmet):
        f = sec["prefill"]["build"]["flavours"]
        fb, ch, row = f["fallback"], f["chosen"], f["models"]["shipped"]
        a, b = row[ch]["prefill_tokens_per_s"], row[fb]["prefill_tokens_per_s"]
        out.append(f"build flavour: the {ch} build prefilled {a['median']:.0f} ({a['min']:.0f}-{a['max']:.0f}) "
                   f"tok/s against {b['median']:.0f} ({b['min']:.0f}-{b['max']:.0f}) for the portable {fb} "
                   "build" + (", the two overlapping" if a["max"] >= b["min"] else ", slower beyond the spread")
                   + f", and only {row['same_text']} of {_n_prompts(f)} greedy answers were the same: the set-up "
                   f"now builds the portable {fb} wheel on this CPU too, and {ch} only on request "
                   "(`RAG_LLAMA_AVX512=1`).")
    if "cold" in sec and any(g.startswith("cold rag ask") for g in unmet):
        x, o = sec["cold"]["new"], sec["cold"]["old"]
        out.append(f"cold start: loading (imports, index, BM25, embedder, model) fell from "
                   f"{o['model']['median']:.2f} s to {x['model']['median']:.2f} s "
                   f"({x['model']['median'] / o['model']['median']:.2f}x); what is left is the model's prefill "
                   f"of the first prompt, {x['first_token']['median'] - x['model']['median']:.1f} s against "
                   f"{o['first_token']['median'] - o['model']['median']:.1f} s before, the same work on both "
                   "sides (the requantized models that prefill faster lost answers, see above).")
    if "onnx" in sec and any(g.startswith("onnx") for g in unmet):
        out.append("ONNX int8 per tensor: its recall drop is over the 1-point limit, so it is measured, "
                   "not used; the per-channel int8 model, within it, embeds chunks and questions "
                   "(`embed_backend=auto`).")
    return out


def _speed(sec: dict) -> list[str]:
    """The sections of issue 20 (benchmarks/speed.py): stopping early, prefill, cold start,
    concurrency."""
    out: list[str] = []
    if "whole" in sec:
        from .whole import render as render_whole

        out += render_whole(sec["whole"])
    if "stop_early" in sec or "answer_evals" in sec:
        out += ["", "## Stop when the answer is complete (`stop_early`)", ""]
    if "stop_early" in sec:
        s = sec["stop_early"]
        on, off = s["on"], s["off"]
        same = sum(r["same_answer"] for r in s["per_question"])
        out += [f"{s['questions']} corpus questions through `RAG.ask`, the stop on and off alternately, default "
                f"model and settings. Generated tokens against the tokens (model tokenizer) of the answer shown, "
                f"over the questions the model answered: on {on['generated']} / {on['shown']} = "
                f"{on['generated_per_shown']:.2f}x, off {off['generated']} / {off['shown']} = "
                f"{off['generated_per_shown']:.2f}x. Total p50 / p95 {_p(on['total_s'])} s on against "
                f"{_p(off['total_s'])} s off; decode {_p(on['decode_s'])} s against {_p(off['decode_s'])} s. "
                f"{same} of {s['questions']} answers are identical.", "",
                "| question | tokens on | tokens off | shown | total s on | total s off | same answer |",
                "|---|---|---|---|---|---|---|"]
        for r in s["per_question"]:
            out.append(f"| {r['question']} | {r['on']['tokens']} | {r['off']['tokens']} | {r['on']['shown']} | "
                       f"{r['on']['total']:.2f} | {r['off']['total']:.2f} | {'yes' if r['same_answer'] else 'no'} |")
    if "answer_evals" in sec:
        s = sec["answer_evals"]
        names = list(next(iter(s["variants"].values()))["metrics"])
        out += ["", f"Answer metrics on `{s['dataset']}` (`rag eval --templates few_shot`, one run each, in one "
                "benchmark run):", "",
                "| variant | model file | " + " | ".join(names) + " | generated tokens / question | total p50 s |",
                "|---" * (len(names) + 4) + "|"]
        for name, x in s["variants"].items():
            out.append(f"| {name} | {x['model']} | " + " | ".join(f"{x['metrics'][m]:.4f}" for m in names)
                       + f" | {x['generated_mean']:.1f} | {x['total_p50_s']:.2f} |")
    if "prefill" in sec:
        s = sec["prefill"]
        b = s["build"]
        out += ["", "## Prefill on this CPU: build flavour and quantization", "",
                f"Raw `create_completion` on the pipeline's own prompts ({s['prompts']} corpus questions, "
                f"{_s(s['prompt_tokens'], '{:.0f}')} tokens), {s['threads']} threads, 64 answer tokens, "
                f"{s['repeats']} rounds alternating the order; tokens/s median (min-max, n).", "",
                "| model | file MB | prefill tok/s | decode tok/s |", "|---|---|---|---|"]
        for q, x in s["quants"].items():
            out.append(f"| {x['file']} ({q}) | {x['size_mb']:.0f} | {_s(x['prefill_tokens_per_s'], '{:.0f}')} | "
                       f"{_s(x['decode_tokens_per_s'], '{:.0f}')} |")
        out += ["", f"Requantizing the shipped Q4_1 file with llama.cpp's quantizer (`rag/quantize.py`, run "
                f"once by the set-up) took {s['quantize_s']:.2f} s. Build: the set-up chose flavour "
                f"`{b['flavour']}` for this CPU (`rag/buildflags.py`: {' '.join(b['cmake'])}). "
                + ("This CPU reports " + ", ".join(b["avx512"]) + "." if b["avx512"] else
                   "This CPU reports no AVX-512 flags, so the AVX-512/VNNI arm could not be measured here: a "
                   "wheel built for it would not run on this machine (the selection is unit-tested, "
                   "tests/test_buildflags.py).")]
        if b.get("flavours"):
            out += _flavours(b["flavours"], s["threads"])
    if "cold" in sec:
        s = sec["cold"]
        stages = ("import", "index", "bm25", "embedder", "model", "first_token", "wall_to_first_token")
        out += ["", "## Cold start: a fresh `rag ask` to its first token", "",
                f"`{s['question']}` in a fresh interpreter, this tree against commit {s['baseline_commit']} "
                "(before issue 20) on the same index, alternating; seconds since the interpreter was launched "
                "(the last column) and, before it, since `import rag` (cumulative, at the end of each stage).", "",
                "| tree | " + " | ".join(stages) + " | torch imported |", "|---" * (len(stages) + 2) + "|"]
        for side in ("old", "new"):
            x = s[side]
            out.append(f"| {side} | " + " | ".join(_s(x[k]) for k in stages) + " | "
                       + ("no" if not x["heavy_modules"] else ", ".join(x["heavy_modules"])) + " |")
        if "big" in s:
            g = s["big"]
            out += ["", f"Chat start at {g['chunks']:,} synthetic chunks (40 words each, 384-d vectors): "
                    f"`RAG(...).warm_up()` in a fresh process, the default models included, took "
                    f"{g['chat_start_s']:.1f} s, with the BM25 index ({g['bm25_mb']:.0f} MB) memory-mapped "
                    f"from the version instead of rebuilt (the retrieval section's figure for rebuilding it "
                    f"is the time each start paid before); writing that version, its BM25 included, took "
                    f"{g['write_s']:.0f} s. The first search afterwards took {g['first_search_s']:.2f} s."]
    if "concurrency" in sec:
        s = sec["concurrency"]
        out += ["", "## Concurrency: many chat users at once", "",
                f"{s['users']} `gradio_client` users call the chat's `/ask` at the same moment, each with one "
                "corpus question; `--concurrency` questions are worked on at once (retrieval, prompt and checks "
                "outside the model's lock, which serves generations first come first served). Wait = answer "
                "time less the question's own work (retrieve, prompt, prefill, decode, checks). Seconds, "
                "p50 / p95.", "",
                "| --concurrency | answer | wait | work | all answered |", "|---|---|---|---|---|"]
        for c, x in s["levels"].items():
            out.append(f"| {c} | {_p(x['answer_s'])} | {_p(x['wait_s'])} | {_p(x['work_s'])} | "
                       f"{x['all_answered_s']:.1f} |")
    return out


def _n_prompts(f: dict) -> int:
    """How many prompts each build answered (per model and round)."""
    return next(iter(f["models"].values()))[f["fallback"]]["prefill_tokens_per_s"]["n"] // f["repeats"]


def _flavours(f: dict, threads: int) -> list[str]:
    """The portable AVX2 build against the AVX-512 one, model by model."""
    fb, ch = f["fallback"], f["chosen"]
    n = _n_prompts(f)
    out = ["", f"Build flavours: the same prompts ({n} of the above) through the portable `{fb}` wheel and the "
           f"AVX-512 `{ch}` wheel, each in a fresh interpreter, {f['repeats']} rounds alternating which goes "
           f"first, {threads} threads; tokens/s median (min-max, n). \"same text\": greedy answers identical "
           "between the two builds.", "",
           f"| model | prefill {fb} | prefill {ch} | ratio | decode {fb} | decode {ch} | ratio | same text |",
           "|---|---|---|---|---|---|---|---|"]
    for name, row in f["models"].items():
        out.append(f"| {name} | {_s(row[fb]['prefill_tokens_per_s'], '{:.0f}')} | "
                   f"{_s(row[ch]['prefill_tokens_per_s'], '{:.0f}')} | {row['prefill_ratio']:.2f} | "
                   f"{_s(row[fb]['decode_tokens_per_s'], '{:.1f}')} | {_s(row[ch]['decode_tokens_per_s'], '{:.1f}')} | "
                   f"{row['decode_ratio']:.2f} | {row['same_text']}/{n} |")
    out += ["", "llama.cpp's own report of each build: " + "; ".join(
        f"`{name}`: {x['system_info'].strip()}" for name, x in f["builds"].items())]
    return out
