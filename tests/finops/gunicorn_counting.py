"""A worker for tests/finops/test_gunicorn_worker.py: finops's sync worker that appends
a line to a file in $COUNT_DIR each time its wait ends with a listening socket ready,
and a WSGI app that answers 200. With $NO_EXCLUSIVE set, the worker waits and closes as
gunicorn's own does (`select`, a blocking lingering close), as it does where the kernel
lacks EPOLLEXCLUSIVE; $LINGER_S sets how long a closed connection lingers; with
$NO_CORK set, each answer is sent as written, as where the system lacks TCP_CORK."""

import os
from pathlib import Path

from finops import gunicorn_worker
from finops.gunicorn_worker import SyncWorker

if os.environ.get("NO_EXCLUSIVE"):
    gunicorn_worker.EXCLUSIVE = None
if os.environ.get("NO_CORK"):
    gunicorn_worker.CORK = None
if os.environ.get("LINGER_S"):
    gunicorn_worker.LINGER_S = float(os.environ["LINGER_S"])


class CountingSyncWorker(SyncWorker):
    def wait(self, timeout):
        ready = super().wait(timeout)
        if ready and any(fd in self.sockets for fd in ready):
            with open(Path(os.environ["COUNT_DIR"]) / str(os.getpid()), "a") as out:
                out.write("woken\n")
        return ready


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]
