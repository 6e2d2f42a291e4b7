"""Which llama.cpp CPU build suits this machine: CPU flags to a flavour name and CMake options.

Run by scripts/setup.sh with the system Python before any package is installed, so it uses the
standard library only:

    python3 rag/buildflags.py        # prints "<flavour> <cmake options...>"

    RAG_LLAMA_AVX512=1 python3 rag/buildflags.py   # the AVX-512 build where the CPU has it

The flavour names the wheel cache folder, so builds for different CPUs never mix. AVX2 is the
default on every x86-64 CPU that has it, AVX-512 ones included: on an AVX-512 (Zen 4) machine the
AVX-512/VNNI build prefilled the shipped Q4_1 model no faster (0.85x and 0.90x of AVX2 in two
measurements, BENCHMARKS.md), and its kernels round differently, so its greedy answers differ
from those every other x86-64 machine gives (the corpus eval's "contains" 0.394 against 0.455).
The portable build keeps evaluations reproducible across machines. AVX-512 (with VNNI, BF16 and
VBMI where the CPU has them) is built on request: llama.cpp repacks Q4_0 weights for it (1.26x
prefill there). AMX stays off whatever the flags say: a VM may report AMX tiles its kernel does
not grant, and llama.cpp then dies with "Illegal instruction" at the first matrix product.
"""
from __future__ import annotations

import sys
from pathlib import Path

AVX2_NEEDS = frozenset({"avx", "avx2", "fma", "f16c"})
# llama.cpp's AVX-512 kernels use the foundation plus byte/word and vector-length extensions
AVX512_NEEDS = frozenset({"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"})
AMX_OFF = ("-DGGML_AMX_TILE=OFF", "-DGGML_AMX_INT8=OFF", "-DGGML_AMX_BF16=OFF")
PORTABLE = ("-DGGML_NATIVE=OFF",)
# optional AVX-512 extensions: CPU flag -> CMake option and the flavour suffix it adds
AVX512_EXTRAS = (("avx512_vnni", "-DGGML_AVX512_VNNI=ON", "vnni"),
                 ("avx512_bf16", "-DGGML_AVX512_BF16=ON", "bf16"),
                 ("avx512vbmi", "-DGGML_AVX512_VBMI=ON", "vbmi"))


def choose(flags: set[str] | frozenset[str], *, avx512: bool = False) -> tuple[str, list[str]]:
    """(flavour, CMake options) for a CPU with these /proc/cpuinfo flags; its AVX-512 kernels only
    when `avx512` asks for them."""
    flags = set(flags) if avx512 else {f for f in flags if not f.startswith("avx512")}
    if not AVX2_NEEDS <= flags:  # older or non-x86 CPUs: llama.cpp's plain C kernels
        return "generic", [*PORTABLE, "-DGGML_AVX=OFF", "-DGGML_AVX2=OFF", "-DGGML_FMA=OFF",
                           "-DGGML_F16C=OFF", "-DGGML_AVX512=OFF", *AMX_OFF]
    opts = [*PORTABLE, "-DGGML_AVX=ON", "-DGGML_AVX2=ON", "-DGGML_FMA=ON", "-DGGML_F16C=ON"]
    if not AVX512_NEEDS <= flags:
        if "avx_vnni" in flags:  # VNNI on 256-bit vectors (Alder Lake and later laptops)
            return "avx2-vnni", [*opts, "-DGGML_AVX_VNNI=ON", "-DGGML_AVX512=OFF", *AMX_OFF]
        # the name and options of the wheel every earlier set-up built, so its cache stays valid
        return "avx2", [*opts, "-DGGML_AVX512=OFF", *AMX_OFF]
    name = "avx512"
    opts.append("-DGGML_AVX512=ON")
    for flag, option, suffix in AVX512_EXTRAS:
        if flag in flags:
            opts.append(option)
            name += "-" + suffix
    return name, [*opts, *AMX_OFF]


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str]:
    """The first processor's flags ("flags" on x86); empty when the file cannot be read."""
    try:
        for line in Path(cpuinfo).read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def avx512_requested(value: str | None = None) -> bool:
    """Whether `RAG_LLAMA_AVX512` (or `value`) asks for the AVX-512 build; ValueError for a value
    that is neither yes nor no, so a typo never builds what the user did not mean."""
    import os

    value = os.environ.get("RAG_LLAMA_AVX512", "") if value is None else value
    word = value.strip().lower()
    if word in {"1", "on", "true", "yes"}:
        return True
    if word in {"", "0", "off", "false", "no"}:
        return False
    raise ValueError(f"RAG_LLAMA_AVX512={value!r} is not 1 or 0")


if __name__ == "__main__":
    try:
        asked = avx512_requested()
    except ValueError as e:
        sys.exit(f"error: {e}")
    flavour, options = choose(cpu_flags(sys.argv[1] if len(sys.argv) > 1 else "/proc/cpuinfo"), avx512=asked)
    print(flavour, *options)
