"""Worker threads in the test process: what N Celery worker threads plus beat do, without a
broker, so tests can race real label_fetch calls against each other and against the sweep."""

from __future__ import annotations

import queue
import threading
import time

from django.db import connection

from labelers import dispatch, fetch
from labelers.models import Label


def drain_with_threads(*, threads: int, timeout: float = 60.0, sweep_every: float = 0.1) -> None:
    """Run label_fetch on `threads` threads until no label is open, while a sweep thread
    enqueues what is due every `sweep_every` seconds (new labels, and running labels whose
    lease ran out) as beat does. A retry_in is honoured with a timer, as a countdown would be.
    Needs a transactional test database (the threads have their own connections)."""
    work: queue.Queue[int] = queue.Queue()
    stop = threading.Event()
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            while not stop.is_set():
                try:
                    label_id = work.get(timeout=0.05)
                except queue.Empty:
                    continue
                outcome = fetch.label_fetch(label_id=label_id)
                if outcome.retry_in is not None:
                    timer = threading.Timer(outcome.retry_in, work.put, (label_id,))
                    timer.daemon = True
                    timer.start()
        except BaseException as exc:  # surfaced in the test, not lost in a thread
            errors.append(exc)
        finally:
            connection.close()

    def sweeper() -> None:
        try:
            while not stop.is_set():
                for label_id in dispatch.dispatch_sweep():
                    work.put(label_id)
                time.sleep(sweep_every)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    running = [threading.Thread(target=worker) for _ in range(threads)]
    running.append(threading.Thread(target=sweeper))
    for thread in running:
        thread.start()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not errors:
            if not Label.objects.exclude(status=Label.Status.DONE).exists():
                break
            time.sleep(0.1)
        else:
            if not errors:
                raise AssertionError(f"labels still open after {timeout}s")
    finally:
        stop.set()
        for thread in running:
            thread.join()
    if errors:
        raise errors[0]
