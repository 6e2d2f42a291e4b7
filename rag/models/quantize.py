"""The default model requantized once to what llama.cpp's CPU kernels run fastest.

The shipped SmolLM2-135M GGUF is Q4_1, which llama.cpp's CPU backend runs through its generic
dot products; Q4_0 is repacked at load into interleaved blocks with AVX2 kernels of their own,
and Q8_0 has fast dot products too. llama.cpp's own quantizer (in the installed
llama-cpp-python) writes the copy in under a second, once, into the cache; the shipped file is
never changed. `model_quant` chooses (BENCHMARKS.md, "Prefill on this CPU", has the figures that
decided the default).

    python -m rag.quantize            # make the copy for the configured model_quant (set-up runs it)
"""
from __future__ import annotations

import hashlib
import logging
import os
import sys
import tempfile
from pathlib import Path

from ..cachedir import USER_CACHE
from ..config import Settings, default_llm_path
from ..errors import ConfigError

log = logging.getLogger(__name__)

# name -> llama.cpp's LLAMA_FTYPE_MOSTLY_* value; "shipped" keeps the file as it comes. The names
# are the model_quant setting's (config.MODEL_QUANTS), which settings check without loading this.
QUANTS = {"shipped": None, "q4_0": 2, "q8_0": 7}
CACHE = USER_CACHE / "models" / "requant"


def requantized_path(src: str | Path, quant: str, *, cache: Path = CACHE) -> Path:
    """Where the `quant` copy of `src` lives: keyed by the source's name, size and mtime, so a
    replaced source gets a fresh copy and never a stale one."""
    st = Path(src).stat()
    key = hashlib.sha1(f"{Path(src).resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:12]
    stem = Path(src).name.split(".Q")[0].removesuffix(".gguf")
    return cache / key / f"{stem}.{quant.upper()}.gguf"


def requantize(src: str | Path, quant: str, *, cache: Path = CACHE, threads: int = 0) -> Path:
    """The `quant` copy of the GGUF `src`, made now if it is not there yet (atomically: a crash
    or a second process never leaves half a model where the first looks for it)."""
    if quant not in QUANTS:
        raise ConfigError(f"model_quant must be {', '.join(QUANTS)}, got {quant!r}")
    if QUANTS[quant] is None:
        return Path(src)
    dst = requantized_path(src, quant, cache=cache)
    if dst.is_file():
        return dst
    import llama_cpp

    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".quant-", suffix=".gguf", dir=dst.parent)
    os.close(fd)
    try:
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = QUANTS[quant]
        params.allow_requantize = True  # the source is already quantized (Q4_1)
        params.nthread = threads or (os.cpu_count() or 1)
        if llama_cpp.llama_model_quantize(str(src).encode(), tmp.encode(), params) != 0:
            raise ConfigError(f"llama.cpp could not requantize {src} to {quant}")
        os.chmod(tmp, 0o644)  # mkstemp makes it private; it is a copy of a public model
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    log.info("requantized %s to %s: %s", Path(src).name, quant, dst)
    return dst


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    s = Settings.load()
    try:
        path = requantize(default_llm_path(), s.model_quant)
    except Exception as e:  # set-up goes on: the shipped model works, only slower
        print(f"warning: the default model was not requantized ({e}); the shipped file is used",
              file=sys.stderr)
        return 0
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
