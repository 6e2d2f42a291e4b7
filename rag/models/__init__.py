"""Model management: which GGUF to use and how to get it.

    catalogue   a few recommended models, where each lives on the Hub and what it costs to run
    local       the models on this machine, and the file the `model` setting names (`model_path`)
    quantize    the shipped model requantized once for llama.cpp's faster CPU kernels
    download    `pull`: one GGUF from the Hugging Face Hub into the models folder

Settings only name a model; finding its file happens here, so `rag.config` stays a leaf.
"""
from ..config import DEFAULT_MODELS_DIR
from .catalogue import CATALOGUE, PROVENANCE, SHIPPED, SPEED_CLASSES, CatalogueEntry, find
from .download import PullResult, parse_spec, pull, sha256_file
from .local import LocalModel, local_models, model_path, resolve, shipped_path
from .quantize import QUANTS, requantize, requantized_path

__all__ = ["CATALOGUE", "DEFAULT_MODELS_DIR", "PROVENANCE", "QUANTS", "SHIPPED", "SPEED_CLASSES",
           "CatalogueEntry", "LocalModel", "PullResult", "find", "local_models", "model_path",
           "parse_spec", "pull", "requantize", "requantized_path", "resolve", "sha256_file", "shipped_path"]
