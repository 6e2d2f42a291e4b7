"""The CLI turns every error into one line on stderr and a non-zero exit code."""
import os
import subprocess
import sys

import pytest


def rag(*args, env=None):
    return subprocess.run([sys.executable, "-m", "rag", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


@pytest.mark.parametrize("args, env, message", [
    (["ask", "   "], {}, "the question is empty"),
    (["ask", "What?", "--model", "/nonexistent/model.gguf"], {}, "model file not found"),
    (["ask", "What?", "--top-k", "0"], {}, "top_k must be at least 1"),
    (["ask", "What?"], {"RAG_N_CTX": "lots"}, "RAG_N_CTX"),
    (["ask", "What?", "--index", "/nonexistent/index"], {}, "no index at /nonexistent/index"),
    (["index", "/nonexistent/folder", "--index", "/proc/forbidden/idx"], {}, "error:"),
])
def test_errors_are_one_line(args, env, message):
    out = rag(*args, env=env)
    assert out.returncode != 0
    assert message in out.stderr
    assert "Traceback" not in out.stderr
    assert len([line for line in out.stderr.splitlines() if line.startswith("error:")]) == 1


def test_index_reports_summary(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "owls.md").write_text("# Owls\nOwls hunt at night and sleep by day.")
    (docs / "junk.bin.txt").write_bytes(b"\x00\x01" * 64)
    out = rag("index", str(docs), "--index", str(tmp_path / "idx"))
    assert out.returncode == 0, out.stderr
    assert "1 added, 0 updated, 0 removed, 0 unchanged, 1 skipped" in out.stdout
    assert "skipped" in out.stdout and "binary" in out.stdout
    again = rag("index", str(docs), "--index", str(tmp_path / "idx"))
    assert "0 added, 0 updated, 0 removed, 1 unchanged" in again.stdout
