#!/usr/bin/env bash
# Idempotent set-up: .venv with CPU torch, a portable llama.cpp build and this package.
# Re-runs are instant unless pyproject.toml or this script changed.
set -euo pipefail
cd "$(dirname "$0")/.."

LLAMA_VERSION=0.3.36
# -march=native builds may use CPU features the OS does not grant (AMX tiles crash here with
# "Illegal instruction"), so the build is chosen from the CPU flags by rag/buildflags.py: AVX2,
# AMX always off; RAG_LLAMA_AVX512=1 builds AVX-512 (+VNNI/BF16/VBMI) where the CPU has it (not the
# default: no faster for the shipped model here, and its answers differ). For a GPU build, e.g.:
#   RAG_LLAMA_FLAVOUR=cuda RAG_LLAMA_CMAKE_ARGS="-DGGML_CUDA=on" ./run.sh
read -r AUTO_FLAVOUR AUTO_FLAGS < <("${PYTHON:-python3}" rag/buildflags.py) || true
[ -n "${AUTO_FLAVOUR:-}" ] || exit 1  # buildflags.py has said why on stderr
FLAVOUR=${RAG_LLAMA_FLAVOUR:-$AUTO_FLAVOUR}
CMAKE_FLAGS=${RAG_LLAMA_CMAKE_ARGS:-$AUTO_FLAGS}
WHEELS=${XDG_CACHE_HOME:-$HOME/.cache}/rag-local/wheels/$FLAVOUR

bash scripts/ocr.sh  # a system package, so checked on every run, not only when the venv is new
[ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
stamp=.venv/.setup-$(cat pyproject.toml scripts/setup.sh | sha1sum | cut -c1-12)-$FLAVOUR
[ -f "$stamp" ] && exit 0

export PIP_DISABLE_PIP_VERSION_CHECK=1
py=.venv/bin/python
$py -m pip install -q --upgrade pip wheel
# CPU build of torch first: an unpinned torch would pull several GB of CUDA packages
$py -m pip install -q "torch==2.13.0"
if ! ls "$WHEELS"/llama_cpp_python-$LLAMA_VERSION-*.whl >/dev/null 2>&1; then
  echo "building llama-cpp-python $LLAMA_VERSION ($FLAVOUR); this takes about 5 minutes once" >&2
  CMAKE_ARGS="$CMAKE_FLAGS" $py -m pip wheel -q --no-deps --no-cache-dir -w "$WHEELS" "llama-cpp-python==$LLAMA_VERSION"
fi
$py -m pip install -q --force-reinstall --no-deps "$WHEELS"/llama_cpp_python-$LLAMA_VERSION-*.whl
$py -m pip install -q -e ".[test]" "llama-cpp-python==$LLAMA_VERSION"
# the default model requantized once for the faster CPU kernels (quick; skipped when present)
$py -m rag.quantize >/dev/null 2>&1 || true
rm -f .venv/.setup-*
touch "$stamp"
