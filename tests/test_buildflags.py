"""The llama.cpp build chosen from the CPU flags (scripts/setup.sh runs rag/buildflags.py)."""
import subprocess
import sys

from rag.buildflags import avx512_requested, choose, cpu_flags

AVX2 = {"sse4_2", "avx", "avx2", "fma", "f16c"}
AVX512 = AVX2 | {"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"}
AMX = {"amx_tile", "amx_int8", "amx_bf16"}


def test_an_avx2_cpu_gets_the_wheel_earlier_set_ups_built():
    flavour, opts = choose(AVX2)
    assert flavour == "avx2"
    assert opts == ["-DGGML_NATIVE=OFF", "-DGGML_AVX=ON", "-DGGML_AVX2=ON", "-DGGML_FMA=ON", "-DGGML_F16C=ON",
                    "-DGGML_AVX512=OFF", "-DGGML_AMX_TILE=OFF", "-DGGML_AMX_INT8=OFF", "-DGGML_AMX_BF16=OFF"]


def test_an_avx512_cpu_gets_the_portable_build_unless_it_asks_for_avx512():
    zen4 = AVX512 | {"avx512_vnni", "avx512_bf16", "avx512vbmi"}
    assert choose(zen4) == choose(AVX2)  # same answers as every other x86-64 machine
    flavour, opts = choose(zen4, avx512=True)
    assert flavour == "avx512-vnni-bf16-vbmi"
    assert {"-DGGML_AVX512=ON", "-DGGML_AVX512_VNNI=ON", "-DGGML_AVX512_BF16=ON", "-DGGML_AVX512_VBMI=ON",
            "-DGGML_NATIVE=OFF"} <= set(opts)
    assert choose(AVX512, avx512=True) == ("avx512", [o for o in opts if "VNNI" not in o and "BF16=ON" not in o
                                                      and "VBMI" not in o])
    assert choose(AVX2, avx512=True) == choose(AVX2)  # asking needs the CPU to have it


def test_amx_stays_off_even_when_the_cpu_reports_it():
    for flags, avx512 in ((AVX2 | AMX, False), (AVX512 | AMX | {"avx512_vnni"}, True)):
        flavour, opts = choose(flags, avx512=avx512)
        assert "amx" not in flavour
        assert {"-DGGML_AMX_TILE=OFF", "-DGGML_AMX_INT8=OFF", "-DGGML_AMX_BF16=OFF"} <= set(opts)
        assert not any("AMX" in o and o.endswith("=ON") for o in opts)


def test_partial_avx512_and_older_cpus_fall_back():
    assert choose(AVX2 | {"avx512f"}, avx512=True)[0] == "avx2"  # foundation alone: not what the kernels need
    assert choose(AVX2 | {"avx_vnni"}) == ("avx2-vnni", [*choose(AVX2)[1][:5], "-DGGML_AVX_VNNI=ON",
                                                          *choose(AVX2)[1][5:]])
    flavour, opts = choose({"sse4_2", "avx"})
    assert flavour == "generic" and "-DGGML_AVX2=OFF" in opts
    assert choose(set())[0] == "generic"  # no flags readable (not x86, or no /proc)


def test_flags_are_read_from_cpuinfo_and_printed_for_the_shell(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu " + " ".join(sorted(AVX512 | AMX)) + "\n\n"
                    "processor\t: 1\nflags\t\t: fpu\n")
    assert cpu_flags(info) == {"fpu"} | AVX512 | AMX
    assert cpu_flags(tmp_path / "missing") == set()
    root = __file__.rsplit("/tests/", 1)[0]
    for asked, expected in (("", choose(AVX2)), ("0", choose(AVX2)), ("1", choose(AVX512, avx512=True))):
        out = subprocess.run([sys.executable, "rag/buildflags.py", str(info)], capture_output=True, text=True,
                             check=True, cwd=root, env={"RAG_LLAMA_AVX512": asked}).stdout.split()
        assert (out[0], out[1:]) == expected
    assert avx512_requested("on") and avx512_requested(" TRUE ") and not avx512_requested("no")
    bad = subprocess.run([sys.executable, "rag/buildflags.py", str(info)], capture_output=True, text=True,
                         cwd=root, env={"RAG_LLAMA_AVX512": "maybe"})
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.strip() == "error: RAG_LLAMA_AVX512='maybe' is not 1 or 0"
