"""The KV state of a prompt's fixed head (instructions and worked examples), kept on disk.

Every question starts with the same few hundred tokens of instructions and examples. Within a
process llama.cpp keeps their KV state from one question to the next; a fresh process (a cold
`rag ask`, the chat's first question) used to prefill them again. Their state is saved once per
model and template and read back in milliseconds instead.

Only heads that hold no user data are saved: the caller says how many leading messages are
fixed text (`LLM.stream(cache_head=)`), and a conversation's earlier turns are never among them.
The state is llama.cpp's own copy of the KV cells computed for those tokens, so a restored head
gives the same logits, and the same answers, as a prefilled one.
"""
from __future__ import annotations

import ctypes
import hashlib
import logging
import os
from pathlib import Path

from .cachedir import USER_CACHE

log = logging.getLogger(__name__)

FOLDER = USER_CACHE / "kv"
KEEP = 16  # saved heads; the least recently used go first (a few MB each for a 135M model)


def build_identity() -> str:
    """The loaded llama.cpp build: the CPU features it was compiled for and its libraries' sizes.

    One llama-cpp-python version built for AVX2 and for AVX-512 rounds differently (greedy answers
    of the 135M model differ between them), so a state one build wrote is not the prefill of another."""
    import llama_cpp

    lib = Path(llama_cpp.__file__).parent / "lib"
    sizes = sorted((p.name, p.stat().st_size) for p in lib.iterdir() if p.is_file()) if lib.is_dir() else []
    return llama_cpp.llama_print_system_info().decode("utf-8", "replace") + repr(sizes)


class PrefixCache:
    """Saved KV states of prompt heads for one loaded model, in `folder`."""

    def __init__(self, model_path: str, *, n_ctx: int, n_gpu_layers: int,
                 folder: str | Path = FOLDER, keep: int = KEEP) -> None:
        import llama_cpp

        self.folder = Path(folder)
        self.keep = keep
        st = os.stat(model_path)
        # a state is only valid for the very model file, context size and build that wrote it
        self._identity = "|".join(str(x) for x in (
            os.path.realpath(model_path), st.st_size, st.st_mtime_ns, n_ctx, n_gpu_layers,
            llama_cpp.__version__, build_identity()))

    def path(self, ids: list[int]) -> Path:
        digest = hashlib.sha256(self._identity.encode())
        digest.update(",".join(map(str, ids)).encode())
        return self.folder / f"{digest.hexdigest()[:40]}.kv"

    def load(self, llama, ids: list[int]) -> bool:
        """Put the saved state of exactly `ids` into sequence 0 of `llama`'s empty KV cache;
        False (and the cache left empty) when there is none or it does not read back whole."""
        import llama_cpp

        path = self.path(ids)
        if not path.is_file():
            return False
        tokens = (llama_cpp.llama_token * len(ids))()
        count = ctypes.c_size_t(0)
        llama._ctx.kv_cache_seq_rm(-1, 0, -1)
        read = llama_cpp.llama_state_seq_load_file(llama._ctx.ctx, str(path).encode(), 0, tokens,
                                                   len(ids), ctypes.byref(count))
        if not read or count.value != len(ids) or list(tokens) != list(ids):
            log.warning("saved prompt state %s does not read back; prefilling instead", path.name)
            llama._ctx.kv_cache_seq_rm(-1, 0, -1)
            path.unlink(missing_ok=True)  # saved again, whole, after this prefill
            return False
        llama.input_ids[: len(ids)] = ids
        llama.n_tokens = len(ids)
        try:
            os.utime(path)  # recently used: kept when older ones are pruned
        except OSError:
            pass
        return True

    def save(self, llama, ids: list[int]) -> None:
        """Write the state of the first `len(ids)` tokens now in `llama`'s cache, once."""
        import llama_cpp

        path = self.path(ids)
        if path.is_file():
            return
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            written = llama_cpp.llama_state_seq_save_file(
                llama._ctx.ctx, str(tmp).encode(), 0, (llama_cpp.llama_token * len(ids))(*ids), len(ids))
            if not written:
                raise OSError("llama.cpp wrote nothing")
            os.replace(tmp, path)  # a reader never sees half a file
        except OSError as e:
            log.warning("cannot save the prompt state in %s: %s", self.folder, e)
            tmp.unlink(missing_ok=True)
            return
        self._prune()

    def _prune(self) -> None:
        try:
            saved = sorted(self.folder.glob("*.kv"), key=lambda p: p.stat().st_mtime, reverse=True)
            for old in saved[self.keep:]:
                old.unlink(missing_ok=True)
        except OSError:
            pass
