"""FairLock: the model's lock, granted in arrival order, releasable from any thread."""
import threading
import time

import pytest

from rag.fairlock import FairLock


def test_waiters_get_the_lock_in_the_order_they_asked():
    lock = FairLock()
    lock.acquire()
    order, threads = [], []
    for i in range(8):
        t = threading.Thread(target=lambda i=i: (lock.acquire(), order.append(i), lock.release()))
        t.start()
        threads.append(t)
        while lock.waiting < i + 1:  # each is queued before the next starts
            time.sleep(0.001)
    lock.release()
    for t in threads:
        t.join(5)
    assert order == list(range(8))
    assert not lock.locked() and lock.waiting == 0


def test_another_thread_may_release_it_and_timeouts_leave_the_queue():
    lock = FairLock()
    assert lock.acquire() and not lock.acquire(blocking=False)
    assert lock.acquire(timeout=0.01) is False and lock.waiting == 0
    t = threading.Thread(target=lock.release)
    t.start()
    t.join(5)
    assert not lock.locked()
    with lock:
        assert lock.locked()
    with pytest.raises(RuntimeError):
        lock.release()
