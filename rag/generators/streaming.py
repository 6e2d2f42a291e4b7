"""The loop every generator's `stream` shares, whatever the pieces come from (llama.cpp's
completion chunks, a server's events, a script): pass each piece of text on as it arrives, time
the first one, ask `stop_when` after each, and sum the generation up as a `Generation`.

A backend turns its own chunks into `(text, finish_reason)` pairs and keeps what only it knows
(token counts, the cached share of the prompt) to hand to `Decoding.result`.
"""
from __future__ import annotations

import time
from typing import Callable, Iterator

from ..types import Generation

Chunks = Iterator[tuple[str, "str | None"]]  # (text, finish_reason or None), closed when done


class Decoding:
    """One generation as it streams. `run` yields its pieces; afterwards `kept` is the text the
    answer keeps and `result` the `Generation`.

    `started` is when the call began (the prompt's evaluation counts towards the time to the
    first piece); `finish` the finish reason until a chunk gives one."""

    def __init__(self, stop_when: Callable | None = None, *, started: float | None = None,
                 finish: str = "") -> None:
        self.stop_when = stop_when
        self.started = time.perf_counter() if started is None else started
        self.finish = finish
        self.text = ""
        self.n_chunks = 0  # every chunk, empty ones (a closing chunk) included
        self.n_pieces = 0  # chunks that carried text
        self.ttft: float | None = None
        self.stopped = None  # the `stopping.Stop` that ended it, if one did

    def run(self, chunks: Chunks) -> Iterator[str]:
        """Yield the text of `chunks` until they end or `stop_when` fires; `chunks` is closed
        either way, so decoding ends here, not when the generator is collected."""
        try:
            for piece, finish in chunks:
                self.n_chunks += 1
                if piece:
                    if self.ttft is None:
                        self.ttft = time.perf_counter() - self.started
                    self.n_pieces += 1
                    yield piece
                    self.text += piece
                    if self.stop_when is not None:
                        self.stopped = self.stop_when(self.text)
                        if self.stopped is not None:
                            break  # the finish reason of this chunk no longer matters
                if finish:
                    self.finish = finish
        finally:
            chunks.close()

    @property
    def kept(self) -> str:
        """The text generated, up to where `stop_when` said the answer ends."""
        return self.text[:self.stopped.at] if self.stopped is not None else self.text

    def result(self, *, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> Generation:
        """The `Generation`: a stopped answer is complete ("stop"), not cut off by the limit."""
        total = time.perf_counter() - self.started
        stopped = self.stopped
        return Generation(text=self.kept, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                          cached_tokens=cached_tokens, ttft=self.ttft if self.ttft is not None else total,
                          total=total, finish_reason="stop" if stopped is not None else self.finish,
                          stopped_by=stopped.condition if stopped is not None else "")
