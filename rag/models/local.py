"""The models this machine has: the shipped GGUF, the files in the models folder, and the one
file the `model` setting names (a path, a file name in `models_dir`, or a catalogue name)."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ..config import Settings, default_llm_path
from ..errors import ConfigError
from .catalogue import CATALOGUE, SHIPPED, CatalogueEntry, find
from .quantize import requantize

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LocalModel:
    """A GGUF this machine can load: the shipped one or a file in the models folder."""

    path: Path
    size: int  # bytes
    shipped: bool = False
    entry: CatalogueEntry | None = None  # the catalogue entry it is the file of, if any

    @property
    def label(self) -> str:
        """How the chat's picker and `rag models` name it."""
        tag = " (shipped default)" if self.shipped else ""
        return f"{self.entry.name}: {self.path.name}{tag}" if self.entry else f"{self.path.name}{tag}"


def shipped_path() -> Path | None:
    try:
        return Path(default_llm_path())
    except ConfigError:
        return None


def local_models(models_dir: str | Path) -> list[LocalModel]:
    """The shipped model first, then every `*.gguf` in `models_dir` by name (partial downloads,
    which are dot files, are not models). A file is listed whether or not it loads: picking a
    broken one says why."""
    by_file = {e.file: e for e in CATALOGUE if e.repo}
    out: list[LocalModel] = []
    shipped = shipped_path()
    if shipped is not None:
        out.append(LocalModel(shipped, shipped.stat().st_size, shipped=True, entry=find(SHIPPED)))
    folder = Path(models_dir).expanduser()
    try:
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".gguf" and not p.name.startswith("."))
    except OSError:  # no models folder yet: nothing pulled
        files = []
    for p in files:
        try:
            if p.is_file():
                out.append(LocalModel(p, p.stat().st_size, entry=by_file.get(p.name)))
        except OSError:  # a link to nowhere
            continue
    return out


def resolve(model: str, models_dir: str | Path) -> Path | None:
    """Where the `model` setting points, when it is not a path: a catalogue name that is on disk
    (or the shipped one), or a file name in `models_dir`. None when it is neither; a catalogue
    name not pulled yet raises ConfigError saying how to get it."""
    folder = Path(models_dir).expanduser()
    entry = find(model)
    if entry is not None:
        if not entry.repo:
            return shipped_path()
        path = folder / entry.file
        if not path.is_file():
            raise ConfigError(f"model {entry.name} is not downloaded yet: run `rag models pull {entry.name}` "
                              f"({entry.size_gb:g} GB into {folder})")
        return path
    if "/" not in model and os.sep not in model and (folder / model).is_file():
        return folder / model
    return None


def model_path(settings: Settings) -> str:
    """The GGUF file `settings.model` names: a path, a catalogue name that was pulled (`rag models`),
    or a file name in `models_dir`; the shipped model when empty (requantized to `model_quant`)."""
    path = settings.model or default_llm_path()
    if not settings.model and settings.model_quant != "shipped":
        try:  # made by the set-up; made here (under a second) when the cache lost it
            path = str(requantize(path, settings.model_quant))
        except (OSError, ConfigError) as e:
            log.warning("using the shipped model: requantizing to %s failed (%s)", settings.model_quant, e)
    p = Path(path).expanduser()
    if not p.is_file() and settings.model:
        p = resolve(settings.model, settings.models_dir) or p
    if not p.is_file():
        raise ConfigError(f"model file not found: {path} (a GGUF path, a file in {settings.models_dir} "
                          f"or a catalogue name; `rag models` lists them)")
    with p.open("rb") as fh:
        if fh.read(4) != b"GGUF":
            raise ConfigError(f"not a GGUF model file: {path}")
    return str(p)
