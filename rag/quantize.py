"""`python -m rag.quantize`, as the set-up (scripts/setup.sh) runs it: requantizing lives in
`rag.models.quantize`; this is its command (run as `-m` inside the package, runpy would warn
that the package imported it first) and the name the benchmarks import."""
import sys

from .models.quantize import CACHE, QUANTS, main, requantize, requantized_path

__all__ = ["CACHE", "QUANTS", "main", "requantize", "requantized_path"]

if __name__ == "__main__":
    sys.exit(main())
