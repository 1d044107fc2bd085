"""gunicorn's settings file (read from the working folder): Prometheus multiprocess mode.

Each gunicorn worker is a process of its own; for /metrics to add up all of them, every
worker writes its values to files in PROMETHEUS_MULTIPROC_DIR, which must exist and be empty
when the server starts (a value file left by an earlier run would be counted again).
"""

import os
import shutil
import tempfile

if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # Set before prometheus_client is first imported (it picks its mode then) and before
    # the workers fork: they inherit both.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="modqueue-metrics-")

from prometheus_client import multiprocess  # noqa: E402 - after the variable, see above

# A request line up to gunicorn's maximum (its default is 4094): a long search pasted into the
# queue's URL reaches the app, which says what is wrong with it, instead of a bare 414.
limit_request_line = 8190


def on_starting(server):
    folder = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder, exist_ok=True)


def child_exit(server, worker):
    multiprocess.mark_process_dead(worker.pid)
