"""The app under gunicorn on 127.0.0.1, and concurrent HTTP clients that load it."""

from __future__ import annotations

import gc
import http.client
import itertools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import msgspec
from ledger import ROOT, BenchError, relative

HOST = "127.0.0.1"
HTTP_TIMEOUT_S = 120.0
HEALTH_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
HEALTH_PATH = "/api/v1/health"
EVENTS_PATH = "/api/v1/events"
MAX_FAILURES_KEPT = 10


# --- The app under gunicorn -----------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class Gunicorn:
    """gunicorn serving `config.wsgi:application` on 127.0.0.1; always stopped on exit."""

    def __init__(
        self,
        *,
        env: dict[str, str],
        workers: int,
        threads: int,
        log: Path,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.port = free_port()
        self.workers = workers
        self.threads = threads
        self._env = env
        self._extra_args = tuple(extra_args)
        self._log_path = log
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def __enter__(self) -> Gunicorn:
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi:application",
            "--bind",
            f"{HOST}:{self.port}",
            "--workers",
            str(self.workers),
            "--threads",
            str(self.threads),
            *self._extra_args,
        ]
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._log_path, "wb") as log:
            self._process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise BenchError(f"gunicorn exited at start; see {relative(self._log_path)}")
            conn = http.client.HTTPConnection(HOST, self.port, timeout=5)
            try:
                conn.request("GET", HEALTH_PATH)
                if conn.getresponse().status == 200:
                    return
            except (OSError, http.client.HTTPException):
                pass
            finally:
                conn.close()
            time.sleep(0.2)
        raise BenchError(f"no 200 from {HEALTH_PATH} in {HEALTH_TIMEOUT_S:.0f} s")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            # The session was started for gunicorn: its group is gunicorn and its workers.
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


# --- HTTP load ------------------------------------------------------------------------


class ItemOut(msgspec.Struct):
    status: str
    priced: bool = False


class BatchOut(msgspec.Struct):
    accepted: int
    duplicates: int
    rejected: int
    results: list[ItemOut]


class SingleOut(msgspec.Struct):
    status: str
    priced: bool


batch_decoder = msgspec.json.Decoder(BatchOut)
single_decoder = msgspec.json.Decoder(SingleOut)

# (request index, HTTP status, body) -> (error or None, events priced)
Checker = Callable[[int, int, bytes], tuple[str | None, int]]


@dataclass(slots=True)
class LoadResult:
    requests: int = 0
    events: int = 0
    priced: int = 0
    elapsed_s: float = 0.0
    latencies_s: list[float] = field(default_factory=list)
    # (seconds since the start, events) of each accepted request, in completion order
    completions: list[tuple[float, int]] = field(default_factory=list)
    failures: int = 0
    failure_samples: list[str] = field(default_factory=list)
    # paced loads only: how late each request was sent after its scheduled time, and
    # each request's (scheduled time, answer time) on `time.perf_counter()`'s clock
    send_lags_s: list[float] = field(default_factory=list)
    spans_s: list[tuple[float, float]] = field(default_factory=list)


def run_load(
    *,
    port: int,
    key: str,
    bodies: Sequence[bytes],
    sizes: Sequence[int],
    clients: int,
    check: Checker,
    path: str = EVENTS_PATH,
    pace_s: float | None = None,
    lean: bool = False,
) -> LoadResult:
    """`clients` threads, each on its own connection, post `bodies` to `path` until none
    is left.

    Closed loop by default: a client sends its next request as soon as it has the answer
    to the previous one, and a latency runs from the send. With `pace_s`, request `i` is
    scheduled at `i * pace_s` seconds after the start (a fixed offered rate): the next
    free client waits for that instant, and its latency runs from the scheduled instant,
    so a request that waited for a free client counts its wait (no coordinated omission).

    With `lean`, each request opens its own connection and speaks HTTP/1.1 over the bare
    socket (`LeanConnection`): what a client of sync workers, which close every
    connection, does anyway, at a fraction of `http.client`'s CPU, which the clients
    share with the server on a small machine.
    """
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    result = LoadResult()
    lock = threading.Lock()
    next_index = itertools.count()

    def fail(message: str) -> None:
        with lock:
            result.failures += 1
            if len(result.failure_samples) < MAX_FAILURES_KEPT:
                result.failure_samples.append(message[:500])

    def client() -> None:
        conn: http.client.HTTPConnection | LeanConnection
        if lean:
            conn = LeanConnection(port, key)
        else:
            conn = http.client.HTTPConnection(HOST, port, timeout=HTTP_TIMEOUT_S)
        latencies: list[float] = []
        completions: list[tuple[float, int]] = []
        send_lags: list[float] = []
        spans: list[tuple[float, float]] = []
        events = priced = 0
        try:
            while True:
                with lock:
                    index = next(next_index)
                if index >= len(bodies):
                    break
                if pace_s is None:
                    started = time.perf_counter()
                else:
                    started = load_started + index * pace_s
                    delay = started - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                    send_lags.append(time.perf_counter() - started)
                try:
                    conn.request("POST", path, body=bodies[index], headers=headers)
                    response = conn.getresponse()
                    data = response.read()
                except (OSError, http.client.HTTPException) as exc:
                    conn.close()
                    fail(f"request {index}: {exc.__class__.__name__}: {exc}")
                    continue
                done = time.perf_counter()
                latencies.append(done - started)
                if pace_s is not None:
                    spans.append((started, done))
                error, n_priced = check(index, response.status, data)
                if error:
                    fail(f"request {index}: {error}")
                else:
                    events += sizes[index]
                    priced += n_priced
                    completions.append((done - load_started, sizes[index]))
        finally:
            conn.close()
            with lock:
                result.latencies_s.extend(latencies)
                result.completions.extend(completions)
                result.send_lags_s.extend(send_lags)
                result.spans_s.extend(spans)
                result.requests += len(latencies)
                result.events += events
                result.priced += priced

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    # A collection of this process's many objects (bodies, latencies) holds every client
    # thread for tens of milliseconds: that is the client's pause, not the server's.
    gc.collect()
    gc.disable()
    load_started = time.perf_counter()
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        gc.enable()
    result.elapsed_s = time.perf_counter() - load_started
    result.completions.sort()
    return result


class LeanConnection:
    """POST over a fresh socket per request, read to the answer's Content-Length; the
    subset of `http.client.HTTPConnection` that `run_load` uses."""

    def __init__(self, port: int, key: str) -> None:
        self._port = port
        self._head = (
            f"Host: {HOST}:{port}\r\nAuthorization: Bearer {key}\r\n"
            "Content-Type: application/json\r\nContent-Length: "
        ).encode()
        self._sock: socket.socket | None = None

    def request(self, method: str, path: str, body: bytes, headers: object = None) -> None:
        self.close()
        sock = socket.create_connection((HOST, self._port), timeout=HTTP_TIMEOUT_S)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        sock.sendall(
            f"{method} {path} HTTP/1.1\r\n".encode() + self._head
            + str(len(body)).encode() + b"\r\n\r\n" + body
        )  # fmt: skip

    def getresponse(self) -> LeanResponse:
        sock = self._sock
        if sock is None:
            raise http.client.HTTPException("no request sent")
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise http.client.RemoteDisconnected("closed before the headers ended")
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = next(
            (int(line.split(b":", 1)[1]) for line in lines[1:]
             if line[:15].lower() == b"content-length:"),
            None,
        )  # fmt: skip
        if length is None:
            raise http.client.HTTPException("answer without Content-Length")
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                raise http.client.IncompleteRead(body, length - len(body))
            body += chunk
        self.close()
        return LeanResponse(status, body)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


@dataclass(slots=True)
class LeanResponse:
    status: int
    body: bytes

    def read(self) -> bytes:
        return self.body


def rate_profile(completions: Sequence[tuple[float, int]], parts: int) -> list[float]:
    """Events/s over each successive `1/parts` of the events, in completion order: shows
    whether the rate drifts during a phase (e.g. full-page writes after a checkpoint)."""
    total = sum(n for _, n in completions)
    rates: list[float] = []
    if total == 0:
        return rates
    bound, events, part_events, part_start = total / parts, 0, 0, 0.0
    for at, n in completions:
        events += n
        part_events += n
        if events >= bound * (len(rates) + 1) - 1e-9 and at > part_start:
            rates.append(round(part_events / (at - part_start), 1))
            part_events, part_start = 0, at
    return rates


def batch_checker(sizes: Sequence[int]) -> Checker:
    def check(index: int, status: int, data: bytes) -> tuple[str | None, int]:
        if status != 202:
            return f"HTTP {status}: {data[:300]!r}", 0
        try:
            out = batch_decoder.decode(data)
        except msgspec.MsgspecError as exc:
            return f"unreadable answer: {exc}", 0
        if out.accepted != sizes[index] or out.duplicates or out.rejected:
            return (
                f"accepted {out.accepted} of {sizes[index]} "
                f"(duplicates {out.duplicates}, rejected {out.rejected})"
            ), 0
        return None, sum(1 for item in out.results if item.priced)

    return check


def single_check(index: int, status: int, data: bytes) -> tuple[str | None, int]:
    if status != 202:
        return f"HTTP {status}: {data[:300]!r}", 0
    try:
        out = single_decoder.decode(data)
    except msgspec.MsgspecError as exc:
        return f"unreadable answer: {exc}", 0
    if out.status != "accepted":
        return f"status {out.status!r}", 0
    return None, int(out.priced)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks; `q` in 0..100."""
    if not sorted_values:
        return float("nan")
    position = (len(sorted_values) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def latency_ms(latencies_s: Sequence[float]) -> dict[str, float]:
    values = sorted(latencies_s)
    if not values:
        return {}
    return {
        name: round(percentile(values, q) * 1000, 2)
        for name, q in (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100))
    }
