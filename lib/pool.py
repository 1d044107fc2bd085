"""Whether this worker process's pool has had threads waiting for work for a while.

A batch of labels claims its labels together and works them one after another; at the end of
a backlog its last labels would wait behind the one running while threads beside it sit idle
(the last round took up to batch size × the API's latency). A batch asks here before each
label, and hands the rest back as single messages when threads have waited for a while.

While the broker holds work, a thread that finishes a task waits only for its next message
(milliseconds, the consumer's prefetch refilling); a wait that lasts means there is none. The
wait starts when a task ends with no request left for its thread (config/celery.py calls
task_ended), and ends at the first look that finds every thread with a request.

Only a threads pool answers: it runs tasks in this process, where Celery's consumer keeps its
requests (celery.worker.state). Under prefork a task runs in a child, whose copy of that state
says nothing; the other pools run one task at a time or are not used here."""

from __future__ import annotations

import os
import time

from celery.worker import state as worker_state

# (pid, threads) of this process's threads pool, once its consumer is ready; a forked child
# inherits the value but not the pool, hence the pid.
_threads_pool: tuple[int, int] | None = None
# Since when threads of the pool have waited for a request (time.monotonic), or None.
_waiting_since: float | None = None


def threads_pool_ready(threads: int) -> None:
    """The pool starts, every thread waiting."""
    global _threads_pool, _waiting_since
    _threads_pool, _waiting_since = (os.getpid(), threads), time.monotonic()


def _unrequested() -> int:
    """The pool's threads less the requests it received (running, or waiting for a thread):
    above 0, that many threads wait for work; below, requests wait for threads; -1 outside
    a threads pool."""
    if _threads_pool is None or _threads_pool[0] != os.getpid():
        return -1
    return _threads_pool[1] - len(worker_state.reserved_requests)


def task_ended() -> None:
    """A task's thread is done with it, its request still counted: unless another received
    request waits for a thread, this one starts to wait."""
    global _waiting_since
    if _waiting_since is None and _unrequested() >= 0:
        _waiting_since = time.monotonic()


def threads_idle(seconds: float) -> bool:
    """Threads of this pool have waited for work for at least `seconds`."""
    global _waiting_since
    if _unrequested() <= 0:
        _waiting_since = None
        return False
    since = _waiting_since
    return since is not None and time.monotonic() - since >= seconds
