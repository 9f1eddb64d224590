"""gunicorn's sync worker, woken alone for each new connection (`gunicorn.conf.py`).

gunicorn's `SyncWorker` waits for a connection with `select()` on the listening socket
that all workers share, so every connection wakes every idle worker: one accepts it, the
others find nothing (`EAGAIN`), touch their heartbeat file and go back to sleep. With
the guard's many short requests, that is a wake-up of each idle worker for each call.
Where the kernel has `EPOLLEXCLUSIVE` (Linux 4.5 and later) this worker waits with
`epoll` instead and asks for that flag on the listening sockets, so the kernel wakes
one waiting worker per connection. Its own signal pipe is watched as before. Where
Python or the kernel lacks `EPOLLEXCLUSIVE` it waits as gunicorn's worker does.

The kernel offers each connection to the idle workers in the same order, so at light
load one worker takes most requests (`--max-requests` restarts fall on it first); under
load every worker is busy and takes its share.

The class name ends in `SyncWorker`, so `--threads` above 1 still selects gthread, as
it does for gunicorn's own.
"""

from __future__ import annotations

import os
import select
from typing import Any

from gunicorn.workers.sync import SyncWorker as GunicornSyncWorker

EXCLUSIVE = getattr(select, "EPOLLEXCLUSIVE", None)


class SyncWorker(GunicornSyncWorker):
    _poller: select.epoll | None = None
    _ready: dict[int, Any]

    def run(self) -> None:
        self._poller = self._exclusive_poller()
        try:
            super().run()
        finally:
            if self._poller is not None:
                self._poller.close()

    def _exclusive_poller(self) -> select.epoll | None:
        """An epoll on the listeners (exclusive) and the signal pipe; None where the
        kernel refuses EPOLLEXCLUSIVE (before Linux 4.5: EINVAL), to wait as gunicorn's
        own worker does."""
        if EXCLUSIVE is None:
            return None
        poller = select.epoll()
        self._ready = {self.PIPE[0]: self.PIPE[0]}
        try:
            for listener in self.sockets:
                poller.register(listener.fileno(), select.EPOLLIN | EXCLUSIVE)
                self._ready[listener.fileno()] = listener
            poller.register(self.PIPE[0], select.EPOLLIN)
        except OSError:
            poller.close()
            return None
        return poller

    def wait(self, timeout: float) -> list[Any] | None:
        """What `SyncWorker.wait` returns (the ready listeners, and the signal pipe
        drained of one byte), from `epoll`."""
        if self._poller is None:
            return super().wait(timeout)
        self.notify()
        events = self._poller.poll(timeout)  # EINTR: retried by Python (PEP 475)
        ready = [self._ready[fd] for fd, _ in events if fd in self._ready]
        if self.PIPE[0] in ready:
            os.read(self.PIPE[0], 1)
        return ready or None
