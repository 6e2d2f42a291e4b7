"""A cold `rag ask` loads only what answering needs: no torch, no sentence-transformers, the
BM25 index read from the index version instead of rebuilt, and the prompt's fixed head read
back from its saved KV state instead of prefilled."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent

COLD = """
import json, sys
from rag import RAG
rag = RAG(index=sys.argv[1], n_ctx=2048)
a = rag.ask("What is LoRA?")
print(json.dumps({"text": a.text, "abstained": a.abstained, "cached": a.usage.cached_tokens,
                  "bm25_saved": type(rag._get_retriever().bm25.model.scores["data"]).__name__,
                  "heavy": sorted(m for m in ("torch", "sentence_transformers", "transformers") if m in sys.modules)}))
"""


def test_a_fresh_process_answers_without_torch_and_as_a_warm_one_does(real_rag):
    real_rag.embedder.embed(["the question embedder is exported"])
    warm = real_rag.ask("What is LoRA?")

    def cold(**env):
        proc = subprocess.run([sys.executable, "-c", COLD, real_rag.settings.index], capture_output=True,
                              text=True, cwd=ROOT, timeout=600, env={**os.environ, **env})
        assert proc.returncode == 0, proc.stderr[-2000:]
        return json.loads(proc.stdout.strip().splitlines()[-1])

    first, second, unsaved = cold(), cold(), cold(RAG_SAVE_PREFIX="0")
    assert first["heavy"] == []
    assert first["bm25_saved"] == "memmap"
    assert (first["text"], first["abstained"]) == (warm.text, warm.abstained)
    # the second process reads the instructions' and examples' state that an earlier one saved,
    # and answers word for word as a process that prefilled them
    assert second["cached"] > 100 and unsaved["cached"] == 0
    assert second["text"] == unsaved["text"] == warm.text
