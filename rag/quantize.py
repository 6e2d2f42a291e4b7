"""`python -m rag.quantize`, as the set-up (scripts/setup.sh) runs it: requantizing lives in
`rag.models.quantize` now; this name stays for the set-up and the benchmarks."""
import sys

from .models.quantize import CACHE, QUANTS, main, requantize, requantized_path

__all__ = ["CACHE", "QUANTS", "main", "requantize", "requantized_path"]

if __name__ == "__main__":
    sys.exit(main())
