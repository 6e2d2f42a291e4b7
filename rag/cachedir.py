"""Where rag-local keeps what it derives on the user's machine: the ONNX export of the
embedder, downloaded and requantized models, saved prompt states. `$XDG_CACHE_HOME` moves it."""
from __future__ import annotations

import os
from pathlib import Path

USER_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rag-local"
