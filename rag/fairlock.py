"""A lock granted in the order it was asked for, for the one model many questions share.

`threading.Lock` wakes an arbitrary waiter: with twenty chat users waiting for the model, one
could wait through many answers while later arrivals went first. Like `threading.Lock` (and
unlike `RLock`), any thread may release it: a streamed answer may be resumed, and its lock
released, by another thread than the one that started it (Gradio's workers).
"""
from __future__ import annotations

import threading
from collections import deque


class FairLock:
    """First come, first served; `with lock:` or `acquire()`/`release()`."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._locked = False
        self._queue: deque[object] = deque()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        with self._cond:
            if not self._locked and not self._queue:
                self._locked = True
                return True
            if not blocking:
                return False
            me = object()
            self._queue.append(me)
            ok = self._cond.wait_for(lambda: not self._locked and self._queue[0] is me,
                                     None if timeout < 0 else timeout)
            if not ok:  # gave up: the next in line may be free to go now
                self._queue.remove(me)
                self._cond.notify_all()
                return False
            self._queue.popleft()
            self._locked = True
            return True

    def release(self) -> None:
        with self._cond:
            if not self._locked:
                raise RuntimeError("release of an unlocked FairLock")
            self._locked = False
            self._cond.notify_all()

    def locked(self) -> bool:
        return self._locked

    @property
    def waiting(self) -> int:
        """How many are waiting for it now."""
        return len(self._queue)

    def __enter__(self) -> "FairLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
