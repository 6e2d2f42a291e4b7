"""What an index build shows while it runs: file n of N, the megabytes read, the chunks embedded
and their rate, and an estimate of the time left, on stderr.

Three modes, chosen by the caller (the CLI picks by whether stderr is a terminal):
- `True`: tqdm bars, "reading" over the files (its postfix the file being read) and "embedding"
  over the chunks; the chat's upload box shows the same bars (Gradio follows tqdm) and its
  Cancel acts at their next step;
- `"lines"`: a plain status line every `every` seconds from a ticker thread, so a log or a pipe
  (`rag index | cat`, CI) hears from a long build even while one large PDF is being read, and
  one line at the end;
- `False`: nothing.

The estimate is by bytes: the time so far times the share of the files' bytes not yet done. A
manual of 600 pages and a note of 2 KB are not alike per file, and bytes follow the work better.
"""
from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

LINE_EVERY = 5.0  # seconds between status lines when stderr is not a terminal


class BuildProgress:
    """Progress of one build over `files` (their sizes are read once, up front)."""

    def __init__(self, files: list[Path], mode: bool | str, *, every: float | None = None) -> None:
        self.every = every if every is not None else LINE_EVERY
        self.n_files = len(files)
        self.sizes = {}
        for f in files:
            try:
                self.sizes[f] = f.stat().st_size
            except OSError:  # gone since the scan: the build skips it with the reason
                self.sizes[f] = 0
        self.total_bytes = sum(self.sizes.values())
        self.done_files = self.done_bytes = self.chunks = 0
        self.current: Path | None = None
        self.current_since = self.t0 = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._bar = self._chunk_bar = self._ticker = None
        if mode is True and files:
            from tqdm import tqdm

            self._bar = tqdm(total=self.n_files, desc="reading", unit="file", file=sys.stderr, dynamic_ncols=True)
            self._chunk_bar = tqdm(desc="embedding", unit="chunk", file=sys.stderr, dynamic_ncols=True)
        elif mode == "lines" and files:
            self._ticker = threading.Thread(target=self._tick, daemon=True, name="index-progress")
            self._ticker.start()

    # ---------------------------------------------------------------- what the build reports

    def reading(self, path: Path) -> None:
        with self._lock:
            self.current, self.current_since = path, time.monotonic()
        if self._bar is not None:
            self._bar.set_postfix_str(path.name, refresh=True)

    def file_done(self, path: Path) -> None:
        with self._lock:
            self.done_files += 1
            self.done_bytes += self.sizes.get(path, 0)
            self.current = None
        if self._bar is not None:
            self._bar.update(1)

    def embedded(self, n: int) -> None:
        with self._lock:
            self.chunks += n
        if self._chunk_bar is not None:
            self._chunk_bar.update(n)

    def close(self) -> None:
        if self._ticker is not None:
            self._stop.set()
            self._ticker.join()
            self._print()
        for bar in (self._bar, self._chunk_bar):
            if bar is not None:
                bar.close()

    # ---------------------------------------------------------------- what is shown

    def status(self) -> str:
        """One line: "indexing: file 3/10 (r-exts.pdf, 42 s so far), 12.3/40.0 MB, 812 chunks
        embedded (9.8/s), about 2 min left"."""
        with self._lock:
            now = time.monotonic()
            elapsed = now - self.t0
            if self.current is not None:
                doing = f"file {self.done_files + 1}/{self.n_files} ({self.current.name}, " \
                        f"{now - self.current_since:.0f} s so far)"
            else:
                doing = f"{self.done_files}/{self.n_files} files"
            line = f"indexing: {doing}, {self.done_bytes / 1e6:.1f}/{self.total_bytes / 1e6:.1f} MB, " \
                   f"{self.chunks} chunks embedded ({self.chunks / elapsed if elapsed > 0 else 0:.1f}/s)"
            if 0 < self.done_bytes < self.total_bytes:
                line += f", about {_duration(elapsed * (self.total_bytes - self.done_bytes) / self.done_bytes)} left"
            return line

    def _tick(self) -> None:
        while not self._stop.wait(self.every):
            self._print()

    def _print(self) -> None:
        print(self.status(), file=sys.stderr, flush=True)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
