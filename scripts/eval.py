#!/usr/bin/env python3
"""`rag eval` without installing the package: python scripts/eval.py DATASET [options].

Same options as `rag eval --help`; the project folder is put on the import path first.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rag.cli import main  # noqa: E402  (needs the path set above)

if __name__ == "__main__":
    sys.exit(main(["eval", *sys.argv[1:]]))
