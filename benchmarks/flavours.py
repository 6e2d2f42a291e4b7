"""llama.cpp build flavours side by side (issue 20, item 2a): the portable AVX2 wheel the set-up
builds by default against the AVX-512 one (with VNNI/BF16/VBMI where the CPU has them) that
`RAG_LLAMA_AVX512=1` asks for.

Two builds of llama-cpp-python cannot share one interpreter, so each runs in a fresh one with
its wheel unpacked ahead of the venv's copy on `sys.path`; the rounds alternate which build goes
first, and every run gets the identical token ids and sampling settings. A wheel missing from
the set-up's cache is built once the way `scripts/setup.sh` builds it (about 5 minutes on 2 cores).
"""
from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from rag.buildflags import AVX512_NEEDS, choose, cpu_flags
from rag.cachedir import USER_CACHE

from .common import stats

WHEELS = USER_CACHE / "wheels"  # scripts/setup.sh keeps one folder per flavour here
# what a run may pass to the other interpreter: token ids and plain sampling settings
_PLAIN = ("max_tokens", "temperature", "top_k", "top_p", "min_p", "repeat_penalty", "stop", "seed")

_RUN = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])  # this build's llama_cpp ahead of the venv's
import llama_cpp
from llama_cpp import Llama
assert llama_cpp.__file__.startswith(sys.argv[1]), llama_cpp.__file__
job = json.load(open(sys.argv[2]))
out = {"module": llama_cpp.__file__, "system_info": llama_cpp.llama_print_system_info().decode(), "models": {}}
for name, path in job["models"].items():
    llm = Llama(model_path=path, n_ctx=job["n_ctx"], n_threads=job["threads"], n_threads_batch=job["threads"],
                seed=0, verbose=False)
    runs = []
    for kwargs in job["prompts"]:
        llm.reset()
        t0 = time.perf_counter()
        first = last = None
        text = ""
        for chunk in llm.create_completion(**kwargs, stream=True):
            piece = chunk["choices"][0].get("text") or ""
            if piece:
                last = time.perf_counter()
                first = first or last
                text += piece
        tokens = llm.n_tokens - len(kwargs["prompt"])
        runs.append({"prompt": len(kwargs["prompt"]), "ttft": first - t0, "decode_s": last - first,
                     "tokens": tokens, "text": text})
    llm.close()
    out["models"][name] = runs
print(json.dumps(out))
"""


def pair(flags: set[str] | None = None) -> tuple[tuple[str, list[str]], tuple[str, list[str]]] | None:
    """(portable AVX2 build, AVX-512 build) for this CPU, as (flavour, CMake options), or None on a
    CPU without AVX-512, which has only the portable one to run."""
    flags = cpu_flags() if flags is None else set(flags)
    if not AVX512_NEEDS <= flags:
        return None
    return choose(flags), choose(flags, avx512=True)


def installed(builds) -> str:
    """Which of `pair()`'s two flavours the venv's llama_cpp is."""
    import llama_cpp

    return builds[1][0] if b"AVX512 = 1" in llama_cpp.llama_print_system_info() else builds[0][0]


def wheel(flavour: str, options: list[str], *, version: str | None = None) -> Path:
    """The cached llama-cpp-python wheel of `flavour`, built with `options` when missing."""
    version = version or importlib.metadata.version("llama_cpp_python")
    folder = WHEELS / flavour
    found = sorted(folder.glob(f"llama_cpp_python-{version}-*.whl"))
    if found:
        return found[-1]
    print(f"[bench] building llama-cpp-python {version} ({flavour}); about 5 minutes", flush=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-cache-dir", "-w", str(folder),
                    f"llama-cpp-python=={version}"], check=True,
                   env={**os.environ, "CMAKE_ARGS": " ".join(options)})
    return sorted(folder.glob(f"llama_cpp_python-{version}-*.whl"))[-1]


def unpack(flavour: str, options: list[str], folder: Path) -> Path:
    """A folder holding `flavour`'s llama_cpp package, to put ahead of the venv's on sys.path."""
    site = folder / flavour
    zipfile.ZipFile(wheel(flavour, options)).extractall(site)
    return site


def compare(prompts: list[dict], models: dict[str, str], *, threads: int, n_ctx: int, repeats: int = 3,
            flags: set[str] | None = None) -> dict | None:
    """Prefill and decode tokens/s of each build on each model and prompt, and whether the two
    builds wrote the same text; None on a CPU with one build to run."""
    builds = pair(flags)
    if builds is None:
        return None
    jobs = [{k: v for k, v in kw.items() if k in _PLAIN or k == "prompt"} for kw in prompts]
    runs: dict[str, dict[str, list[dict]]] = {}
    info: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench-flavours-") as tmp:
        sites = {}
        for flavour, options in builds:
            sites[flavour] = unpack(flavour, options, Path(tmp))
            info[flavour] = {"wheel": wheel(flavour, options).name, "cmake": options}
        job = Path(tmp) / "job.json"
        job.write_text(json.dumps({"models": models, "prompts": jobs, "threads": threads, "n_ctx": n_ctx}))
        order = [f for f, _ in builds]
        for r in range(repeats):
            for flavour in (order if r % 2 == 0 else order[::-1]):
                proc = subprocess.run([sys.executable, "-c", _RUN, str(sites[flavour]), str(job)],
                                      capture_output=True, text=True, timeout=1800)
                if proc.returncode != 0:
                    raise RuntimeError(f"{flavour} build failed to run:\n{proc.stderr[-2000:]}")
                res = json.loads(proc.stdout.strip().splitlines()[-1])
                info[flavour].update(module=res["module"], system_info=res["system_info"])
                for name, rs in res["models"].items():
                    runs.setdefault(flavour, {}).setdefault(name, []).extend(rs)
    base, chosen = order
    out: dict = {"builds": info, "fallback": base, "chosen": chosen, "repeats": repeats, "models": {}}
    for name in models:
        row = {}
        for flavour in order:
            rs = runs[flavour][name]
            row[flavour] = {"prefill_tokens_per_s": stats([x["prompt"] / x["ttft"] for x in rs]),
                            "decode_tokens_per_s": stats([(x["tokens"] - 1) / x["decode_s"] for x in rs
                                                          if x["tokens"] > 8])}
        # greedy decoding: the first round's texts stand for every round of a build
        n = len(prompts)
        row["same_text"] = sum(a["text"] == b["text"] for a, b in zip(runs[base][name][:n], runs[chosen][name][:n]))
        row["prefill_ratio"] = (row[chosen]["prefill_tokens_per_s"]["median"]
                                / row[base]["prefill_tokens_per_s"]["median"])
        row["decode_ratio"] = (row[chosen]["decode_tokens_per_s"]["median"]
                               / row[base]["decode_tokens_per_s"]["median"])
        out["models"][name] = row
    return out
