"""gunicorn's sync worker, woken alone for each new connection, its answer sent in one
segment, and never held by a client's close (`gunicorn.conf.py`).

Waking. gunicorn's `SyncWorker` waits for a connection with `select()` on the listening
socket that all workers share, so every connection wakes every idle worker: one accepts
it, the others find nothing (`EAGAIN`), touch their heartbeat file and go back to sleep.
With the guard's many short requests, that is a wake-up of each idle worker for each
call. Where the kernel has `EPOLLEXCLUSIVE` (Linux 4.5 and later) this worker waits with
`epoll` instead and asks for that flag on the listening sockets, so the kernel wakes
one waiting worker per connection. Its own signal pipe is watched as before.

Closing. After each response gunicorn closes the connection as RFC 9112 (section 9.6)
asks: it sends its FIN, then reads and discards what the client still sends until the
client closes too (at most 2 s and 64 KiB), so that unread request bytes do not make the
kernel answer with a reset that could destroy the response before the client read it.
gunicorn's worker does that wait itself, in a blocking read: for every request the
worker sits idle until the client has been scheduled, read the answer and closed, while
the next requests queue. This worker sends its FIN at once as well, and drains what has
already arrived; if the client has not closed yet, the socket joins an `epoll` of
lingering connections, which drains it and closes it when the client closes, or after
the same 2 s or 64 KiB. That `epoll` is watched in the worker's own wait, so at light
load finishing them costs no extra call; a worker kept busy, which does not wait,
serves them after a request once `LINGER_SWEEP` linger or the oldest is due.
At most `LINGER_MAX` connections linger at once; beyond that the oldest is closed, as
gunicorn closes one whose time is up. A worker on its way out (SIGTERM, a reload,
`--max-requests`) first gives its lingering connections the rest of their time, at
most the graceful timeout. One case still closes the blocking way: an app that fails
after its headers went out, where gunicorn's `handle_request` closes the connection
itself.

Sending. gunicorn writes the status line and headers, then the body, each at once
(its sockets are `TCP_NODELAY`), and the FIN follows when the connection is shut down:
three transmissions, each waking the client. Where the system has `TCP_CORK` (Linux),
this worker corks the socket before the app runs (after gunicorn's `100 Continue`, if
any), so the answer leaves as full segments, the last with the FIN, when the connection
is shut down right after it. No finops response is streamed, so nothing waits on the
cork's 200 ms limit.

Where Python or the kernel lacks `EPOLLEXCLUSIVE`, the worker waits and closes as
gunicorn's own does; over TLS it also sends as gunicorn's does.

The kernel offers each connection to the idle workers in the same order, so at light
load one worker takes most requests (`--max-requests` restarts fall on it first); under
load every worker is busy and takes its share.

The class name ends in `SyncWorker`, so `--threads` above 1 still selects gthread, as
it does for gunicorn's own.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import time
from typing import Any

from gunicorn import http
from gunicorn.workers.sync import SyncWorker as GunicornSyncWorker

EXCLUSIVE = getattr(select, "EPOLLEXCLUSIVE", None)
LINGER_S = 2.0  # gunicorn's `util.close_graceful`
LINGER_MAX_DRAIN = 65536  # the same
LINGER_MAX = 256
LINGER_SWEEP = 16  # lingering connections that make a busy worker serve them
CORK = getattr(socket, "TCP_CORK", None)
_CHUNK = 4096
_QUIET_ERRNOS = (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN)


def _corked(app: Any) -> Any:
    """`app`, with its answer held back (`TCP_CORK`) until the connection is shut down,
    so that the status line, headers and body go out as one segment with the FIN."""

    def corked_app(environ: dict[str, Any], start_response: Any) -> Any:
        sock = environ.get("gunicorn.socket")
        if sock is not None and sock.family != socket.AF_UNIX:  # a Unix socket: as written
            try:
                sock.setsockopt(socket.IPPROTO_TCP, CORK, 1)
            except OSError:
                pass
        return app(environ, start_response)

    return corked_app


class _Lingering:
    __slots__ = ("sock", "deadline", "drained")

    def __init__(self, sock: socket.socket, deadline: float, drained: int) -> None:
        self.sock = sock
        self.deadline = deadline
        self.drained = drained


class SyncWorker(GunicornSyncWorker):
    _poller: select.epoll | None = None
    _ready: dict[int, Any]
    _lingering: dict[int, _Lingering]
    _linger_poller: select.epoll

    def run(self) -> None:
        self._lingering = {}
        self._poller = self._exclusive_poller()
        if CORK is not None and not self.cfg.is_ssl:
            self.wsgi = _corked(self.wsgi)
        try:
            super().run()
        finally:
            if self._poller is not None:
                self._finish_lingering(min(LINGER_S, self.cfg.graceful_timeout))
                self._linger_poller.close()
                self._poller.close()

    def _exclusive_poller(self) -> select.epoll | None:
        """An epoll on the listeners (exclusive), the signal pipe and the lingering
        connections' own epoll (`_linger_poller`); None where the kernel refuses
        EPOLLEXCLUSIVE (before Linux 4.5: EINVAL), to wait as gunicorn's own worker does."""
        if EXCLUSIVE is None:
            return None
        poller, linger_poller = select.epoll(), select.epoll()
        self._ready = {self.PIPE[0]: self.PIPE[0]}
        try:
            for listener in self.sockets:
                poller.register(listener.fileno(), select.EPOLLIN | EXCLUSIVE)
                self._ready[listener.fileno()] = listener
            poller.register(self.PIPE[0], select.EPOLLIN)
            poller.register(linger_poller.fileno(), select.EPOLLIN)
        except OSError:
            poller.close()
            linger_poller.close()
            return None
        self._linger_poller = linger_poller
        return poller

    def wait(self, timeout: float) -> list[Any] | None:
        """What `SyncWorker.wait` returns (the ready listeners, and the signal pipe
        drained of one byte), from `epoll`; lingering connections are served on the
        way, and the wait ends in time for the oldest one's deadline."""
        if self._poller is None:
            return super().wait(timeout)
        self.notify()
        if self._lingering:
            oldest = next(iter(self._lingering.values()))
            timeout = max(0.0, min(timeout, oldest.deadline - time.monotonic()))
        events = self._poller.poll(timeout)  # EINTR: retried by Python (PEP 475)
        ready = [self._ready[fd] for fd, _ in events if fd in self._ready]
        if self._lingering and (len(ready) < len(events) or self._linger_due()):
            self._serve_lingering()  # its epoll was among the events, or a deadline came
        if self.PIPE[0] in ready:
            os.read(self.PIPE[0], 1)
        return ready or None

    def _linger_due(self) -> bool:
        """Whether the oldest lingering connection's time is up."""
        return next(iter(self._lingering.values())).deadline <= time.monotonic()

    def _serve_lingering(self, timeout: float = 0.0) -> None:
        """Drain each lingering connection with something to read (closing it if its
        client closed), waiting up to `timeout` for one; then close the overdue ones."""
        for fd, _ in self._linger_poller.poll(timeout):
            if fd in self._lingering:
                self._drain(fd)
        now = time.monotonic()
        while self._lingering:
            fd, oldest = next(iter(self._lingering.items()))
            if oldest.deadline > now:
                break
            self._close_lingering(fd)

    def _finish_lingering(self, limit_s: float) -> None:
        """On the way out: the lingering connections get the rest of their time, at most
        `limit_s` more, then every one left is closed."""
        end = time.monotonic() + limit_s
        while self._lingering:
            oldest = next(iter(self._lingering.values()))
            timeout = min(end, oldest.deadline) - time.monotonic()
            if timeout <= 0:
                break
            self._serve_lingering(timeout)
        for fd in list(self._lingering):
            self._close_lingering(fd)

    # --- One connection -----------------------------------------------------------------

    def handle(self, listener: Any, client: socket.socket, addr: Any) -> None:
        """gunicorn's `SyncWorker.handle`, but the connection lingers in an `epoll`
        (`_linger`) rather than in a blocking read."""
        if self._poller is None or self.cfg.is_ssl:
            super().handle(listener, client, addr)
            return
        req = None
        try:
            parser = http.get_parser(self.cfg, client, addr)
            req = next(parser)
            self.handle_request(listener, req, client, addr)
        except http.errors.NoMoreData as exc:
            self.log.debug("Ignored premature client disconnection. %s", exc)
        except StopIteration as exc:
            self.log.debug("Closing connection. %s", exc)
        except OSError as exc:
            if exc.errno not in _QUIET_ERRNOS:
                self.log.exception("Socket error processing request.")
            else:
                self.log.debug("Ignoring socket error: %s", exc)
        except BaseException as exc:  # noqa: BLE001 - gunicorn answers 500 and logs it
            self.handle_error(req, client, addr, exc)
        finally:
            self._linger(client)
            # a worker kept busy does not wait, where they are otherwise served
            if len(self._lingering) >= LINGER_SWEEP or self._lingering and self._linger_due():
                self._serve_lingering()

    def _linger(self, client: socket.socket) -> None:
        """Send the FIN now; close now if the client has closed too, else wait for it
        in the lingering connections' `epoll`."""
        if client.fileno() < 0:  # closed already (a response that failed midway)
            return
        try:
            client.shutdown(socket.SHUT_WR)
            client.setblocking(False)
        except OSError:
            client.close()
            return
        fd = client.fileno()
        self._lingering[fd] = _Lingering(client, time.monotonic() + LINGER_S, 0)
        if not self._drain(fd):
            return
        try:
            self._linger_poller.register(fd, select.EPOLLIN | select.EPOLLRDHUP)
        except OSError:
            self._close_lingering(fd)
            return
        if len(self._lingering) > LINGER_MAX:
            oldest = next(iter(self._lingering))
            if self._drain(oldest):  # what it sent so far is read before the close
                self._close_lingering(oldest)

    def _drain(self, fd: int) -> bool:
        """Read what the client sent; True while it may send more (it has not closed,
        and the 64 KiB are not reached), else the connection is closed."""
        lingering = self._lingering[fd]
        while lingering.drained < LINGER_MAX_DRAIN:
            try:
                data = lingering.sock.recv(_CHUNK)
            except BlockingIOError:
                return True
            except OSError:
                break
            if not data:
                break
            lingering.drained += len(data)
        self._close_lingering(fd)
        return False

    def _close_lingering(self, fd: int) -> None:
        lingering = self._lingering.pop(fd)
        try:  # explicitly: a copy of the socket (an app's fork) would keep it there
            self._linger_poller.unregister(fd)
        except (FileNotFoundError, ValueError):  # not registered yet
            pass
        lingering.sock.close()
