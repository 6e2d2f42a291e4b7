"""The model catalogue, the models on disk, `--model NAME`, and `rag models pull` against a
loopback Hub (tests/hub_server.py) that serves the shipped GGUF as the Hub serves an LFS file."""
import fcntl
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from rag import models
from rag.cli import main
from rag.config import DEFAULT_LLM_FILE, Settings, default_llm_path
from rag.errors import ConfigError, DownloadError
from rag.models import model_path
from tests.hub_server import LoopbackHub

ROOT = Path(__file__).resolve().parent.parent
QWEN = models.find("qwen2.5-0.5b")


def test_catalogue_entries_are_complete_and_distinct():
    names = [e.name for e in models.CATALOGUE]
    assert len(set(names)) == len(names) and all(n == n.lower() for n in names)
    assert models.find(models.SHIPPED).file == DEFAULT_LLM_FILE and not models.find(models.SHIPPED).repo
    for e in models.CATALOGUE:
        if e.repo:
            assert re.fullmatch(r"[\w-]+/[\w.-]+-GGUF", e.repo), e
        assert e.file.endswith(".gguf") and e.speed in models.SPEED_CLASSES and e.licence
        assert e.ram_gb > e.size_gb > 0 and e.params_b > 0
    assert models.find(" Qwen2.5-0.5B ") is QWEN


def test_local_models_lists_the_shipped_model_first_then_the_folder(tmp_path):
    shipped = Path(default_llm_path())
    (tmp_path / "b-notes.gguf").write_bytes(b"GGUF" + bytes(8))
    (tmp_path / QWEN.file).symlink_to(shipped)
    (tmp_path / f".{QWEN.file}.abc.part").write_bytes(b"GGUF")  # a download under way
    (tmp_path / "readme.txt").write_text("not a model")
    (tmp_path / "gone.gguf").symlink_to(tmp_path / "nowhere.gguf")
    found = models.local_models(tmp_path)
    assert [m.path.name for m in found] == [DEFAULT_LLM_FILE, "b-notes.gguf", QWEN.file]
    assert found[0].shipped and found[0].label.endswith("(shipped default)")
    assert found[2].entry is QWEN and found[2].label == f"qwen2.5-0.5b: {QWEN.file}"
    assert models.local_models(tmp_path / "missing") == found[:1]


def test_model_setting_takes_catalogue_names_and_file_names(tmp_path):
    with pytest.raises(ConfigError, match="rag models pull qwen2.5-0.5b"):
        model_path(Settings.load(model="qwen2.5-0.5b", models_dir=str(tmp_path)))
    (tmp_path / QWEN.file).symlink_to(default_llm_path())
    assert model_path(Settings.load(model="qwen2.5-0.5b", models_dir=str(tmp_path))) == str(tmp_path / QWEN.file)
    assert model_path(Settings.load(model=QWEN.file, models_dir=str(tmp_path))) == str(tmp_path / QWEN.file)
    assert model_path(Settings.load(model="smollm2-135m", models_dir=str(tmp_path))) == default_llm_path()
    with pytest.raises(ConfigError, match="not found: llama9.*rag models"):
        model_path(Settings.load(model="llama9", models_dir=str(tmp_path)))


def test_pull_names_are_checked_before_any_download():
    assert models.parse_spec("me/My-GGUF:tiny.Q4.gguf").repo == "me/My-GGUF"
    for name, words in [("nope", "unknown model 'nope'.*qwen2.5-0.5b"), ("me/x:weights.bin", "unknown model"),
                        ("smollm2-135m", "ships with rag-local")]:
        with pytest.raises(DownloadError, match=words):
            models.parse_spec(name)


def test_models_command_lists_catalogue_and_disk(tmp_path, capsys):
    (tmp_path / QWEN.file).symlink_to(default_llm_path())
    assert main(["models", "--models-dir", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    on_disk = {e["name"]: e["on_disk"] for e in out["catalogue"]}
    assert on_disk["qwen2.5-0.5b"] and not on_disk["mistral-7b"]
    assert [m["name"] for m in out["local"]] == ["smollm2-135m", "qwen2.5-0.5b"]
    assert main(["models", "--models-dir", str(tmp_path)]) == 0
    table = capsys.readouterr().out
    assert re.search(r"qwen2\.5-7b .*bartowski/Qwen2\.5-7B-Instruct-GGUF", table)
    assert f"qwen2.5-0.5b: {QWEN.file}" in table and "sources:" in table


def test_pull_with_downloads_switched_off_is_one_line(tmp_path, capsys):
    # this process runs with HF_HUB_OFFLINE=1 (conftest), as the whole suite does
    assert main(["models", "pull", "qwen2.5-0.5b", "--models-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: downloads are switched off (HF_HUB_OFFLINE=1)")
    assert not any(tmp_path.iterdir())


# ---------------------------------------------------------------- pull over HTTP, on loopback

def _pull(hub_endpoint: str, folder: Path, *args: str) -> subprocess.CompletedProcess:
    """`python -m rag models pull` as a user runs it, with the Hub on loopback and online."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")}
    env.update(HF_ENDPOINT=hub_endpoint, HF_HUB_OFFLINE="0", HF_HOME=str(folder.parent / "hf-home"),
               NO_PROXY="127.0.0.1,localhost", PYTHONPATH=str(ROOT), TQDM_POSITION="-1")  # bars on, in a pipe too
    return subprocess.run([sys.executable, "-m", "rag", "models", "pull", *args, "--models-dir", str(folder)],
                          env=env, capture_output=True, text=True, timeout=300, cwd=folder.parent)


@pytest.fixture
def hub():
    with LoopbackHub({(QWEN.repo, QWEN.file): Path(default_llm_path())}) as h:
        yield h


@pytest.mark.e2e
def test_interrupted_pull_resumes_and_checks_the_sha256(hub, tmp_path):
    folder = tmp_path / "models"
    size = Path(default_llm_path()).stat().st_size
    # the connection drops after 25 MB; huggingface_hub retries with a Range request, and the CDN
    # then fails (HTTP 500): the pull stops with one line and keeps what it fetched
    hub.cut_after, hub.fail_status = 25_000_000, 500
    first = _pull(hub.endpoint, folder, "qwen2.5-0.5b")
    assert first.returncode == 1, first.stderr
    last = first.stderr.strip().splitlines()[-1]
    assert re.fullmatch(rf"error: the download of {re.escape(QWEN.file)} stopped at \d+ MB of 98 MB "
                        r"\(.*500.*\); run the same pull again to continue it", last), last
    assert hub.ranges(), "huggingface_hub did not resume after the dropped connection"
    [part] = folder.glob(f".{QWEN.file}.*.part")
    kept = part.stat().st_size
    assert 0 < kept <= 25_000_000 and not (folder / QWEN.file).exists()

    hub.fail_status = None
    sent_before = hub.body_bytes
    second = _pull(hub.endpoint, folder, "qwen2.5-0.5b")
    assert second.returncode == 0, second.stderr
    assert hub.ranges()[-1] == f"bytes={kept}-"  # continued from the part, not from byte 0
    assert hub.body_bytes - sent_before == size - kept
    pulled = folder / QWEN.file
    assert hashlib.sha256(pulled.read_bytes()).hexdigest() == hub.sha256(QWEN.repo, QWEN.file)
    assert "sha256 matches the Hub's" in second.stdout and f"continued from {kept / 1e6:,.0f} MB" in second.stdout
    assert "100%" in second.stderr  # the progress bar
    assert not list(folder.glob(".*.part"))
    assert model_path(Settings.load(model="qwen2.5-0.5b", models_dir=str(folder))) == str(pulled)

    gets = len(hub.ranges())
    third = _pull(hub.endpoint, folder, "qwen2.5-0.5b")
    assert third.returncode == 0 and "is already here (sha256 checked)" in third.stdout
    assert len(hub.ranges()) == gets and hub.body_bytes - sent_before == size - kept  # nothing fetched


@pytest.mark.e2e
def test_damaged_or_missing_downloads_fail_with_one_line(hub, tmp_path):
    folder = tmp_path / "models"
    hub.corrupt = True
    r = _pull(hub.endpoint, folder, "qwen2.5-0.5b")
    assert r.returncode == 1
    assert re.fullmatch(r"error: .* arrived damaged \(sha256 \w+\.\.\., the Hub says \w+\.\.\.\): it was "
                        r"removed; pull again", r.stderr.strip().splitlines()[-1])
    assert not any(folder.iterdir())  # neither the model nor a part that could be continued

    for spec, words in [(f"{QWEN.repo}:other.gguf", f"{QWEN.repo} has no file other.gguf"),
                        ("someone/Else-GGUF:x.gguf", "has no repo someone/Else-GGUF")]:
        r = _pull(hub.endpoint, folder, spec)
        assert r.returncode == 1 and words in r.stderr.strip().splitlines()[-1], r.stderr

    hub.corrupt = False
    folder.mkdir(exist_ok=True)
    part = folder / f".{QWEN.file}.{hub.sha256(QWEN.repo, QWEN.file)[:16]}.part"
    with part.open("wb") as held:  # another pull is writing this file
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        r = _pull(hub.endpoint, folder, "qwen2.5-0.5b")
    assert r.returncode == 1, r.stderr
    assert r.stderr.strip().splitlines()[-1] == f"error: another pull of {QWEN.file} is running; wait for it to finish"
    part.unlink()

    with socket.socket() as s:  # a port nothing listens on: the Hub cannot be reached
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    r = _pull(closed, folder, "qwen2.5-0.5b")
    assert r.returncode == 1
    assert re.fullmatch(rf"error: cannot reach {closed} to pull .* \(offline\?\): .*", r.stderr.strip().splitlines()[-1])
