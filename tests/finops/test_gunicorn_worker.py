"""finops.gunicorn_worker.SyncWorker: one idle worker woken per connection, and never
held by a client that has not closed yet."""

import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from finops.gunicorn_worker import SyncWorker

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 3
CONNECTIONS = 40


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        return _answered(sock)


def _answered(sock: socket.socket) -> bytes:
    """The whole answer to a GET sent on `sock`, read up to the server's FIN."""
    sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


@contextmanager
def _gunicorn(
    tmp_path: Path,
    *,
    exclusive: bool,
    workers: int,
    linger_s: float | None = None,
    cork: bool = True,
):
    """gunicorn with `workers` counting workers, the project's gunicorn.conf.py read;
    waiting with EPOLLEXCLUSIVE, or as gunicorn's own worker does. Yields the port and
    the master's pid."""
    port = _free_port()
    env = {**os.environ, "COUNT_DIR": str(tmp_path), "PYTHONPATH": str(ROOT / "tests" / "finops")}
    if not exclusive:
        env["NO_EXCLUSIVE"] = "1"
    if linger_s is not None:
        env["LINGER_S"] = str(linger_s)
    if not cork:
        env["NO_CORK"] = "1"
    env.pop("GUNICORN_CMD_ARGS", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "gunicorn_counting:app", "--bind",
         f"127.0.0.1:{port}", "--workers", str(workers), "--worker-class",
         "gunicorn_counting.CountingSyncWorker"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                _get(port)
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.1)
        yield port, process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            _, stderr = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise
    assert b"Traceback" not in stderr, stderr.decode()


def _skip_without_exclusive(exclusive: bool) -> None:
    if exclusive and not hasattr(select, "EPOLLEXCLUSIVE"):
        pytest.skip("EPOLLEXCLUSIVE is Linux 4.5 and later")


@pytest.fixture(params=[True, False], ids=["epoll", "select"])
def server(request, tmp_path):
    exclusive = request.param
    _skip_without_exclusive(exclusive)
    with _gunicorn(tmp_path, exclusive=exclusive, workers=WORKERS) as (port, pid):
        yield port, tmp_path, exclusive, pid


@pytest.fixture(params=[True, False], ids=["epoll", "select"])
def one_worker(request, tmp_path):
    """One worker whose closed connections linger up to 60 s (gunicorn's own: 2 s)."""
    exclusive = request.param
    _skip_without_exclusive(exclusive)
    with _gunicorn(tmp_path, exclusive=exclusive, workers=1, linger_s=60) as (port, pid):
        yield port, pid, exclusive


def _wakeups(count_dir: Path) -> dict[str, int]:
    return {f.name: len(f.read_text().splitlines()) for f in count_dir.iterdir()}


def _epoll_flags(pid: int, target_fd: int) -> list[int]:
    """The event masks with which process `pid`'s epolls watch its fd `target_fd`
    (/proc/<pid>/fdinfo lists each epoll's `tfd: <fd> events: <hex mask>`)."""
    flags = []
    for info in Path(f"/proc/{pid}/fdinfo").iterdir():
        try:
            lines = info.read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[:1] == ["tfd:"] and int(fields[1]) == target_fd:
                flags.append(int(fields[fields.index("events:") + 1], 16))
    return flags


def test_each_connection_wakes_one_idle_worker(server):
    """With EPOLLEXCLUSIVE every worker watches the listener with that flag and one idle
    worker wakes per connection. The control, gunicorn's own wait (`select`), registers
    no flag; how many of its idle workers are seen to wake depends on how soon the
    losers of each race run (40 to 80 here), so that count is not asserted."""
    port, count_dir, exclusive, master_pid = server
    time.sleep(1)  # every worker booted and waiting
    workers = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    listener_fd = 3  # the arbiter's listening socket, inherited by every worker
    assert os.readlink(f"/proc/{workers[0]}/fd/{listener_fd}").startswith("socket:")
    for worker in workers:
        flags = _epoll_flags(int(worker), listener_fd)
        if exclusive:
            assert flags and all(f & select.EPOLLEXCLUSIVE for f in flags), flags
        else:
            assert flags == []  # no epoll at all: gunicorn's select
    before = sum(_wakeups(count_dir).values())
    for _ in range(CONNECTIONS):
        assert _get(port).startswith(b"HTTP/1.1 200 OK")
        time.sleep(0.02)  # every worker idle again when the next one comes
    woken = sum(_wakeups(count_dir).values()) - before
    if exclusive:
        assert abs(woken - CONNECTIONS) <= 2  # 40 in every run seen
    else:
        assert woken >= CONNECTIONS


def test_answers_and_stops_cleanly(server):
    """Every connection answered; the fixture checks that SIGTERM stops every worker
    without a traceback."""
    port, _, _, _ = server
    assert all(_get(port).endswith(b"\r\n\r\nok") for _ in range(20))


def test_threads_still_select_gthread(monkeypatch):
    from gunicorn.app.wsgiapp import WSGIApplication

    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("GUNICORN_CMD_ARGS", raising=False)
    monkeypatch.setattr("sys.argv", ["gunicorn", "config.wsgi:application", "--threads", "4"])
    cfg = WSGIApplication().cfg
    assert cfg.worker_class_str == "gthread"
    monkeypatch.setattr("sys.argv", ["gunicorn", "config.wsgi:application"])
    cfg = WSGIApplication().cfg
    assert cfg.worker_class is SyncWorker


@pytest.mark.skipif(not hasattr(select, "EPOLLEXCLUSIVE"), reason="Linux only")
def test_kernel_refusing_the_flag_falls_back_to_select(monkeypatch):
    """Where epoll_ctl refuses the flags (EINVAL, as kernels before 4.5 answer
    EPOLLEXCLUSIVE), the worker waits with gunicorn's select instead of crashing."""
    from finops import gunicorn_worker

    monkeypatch.setattr(
        gunicorn_worker, "EXCLUSIVE", select.EPOLLEXCLUSIVE | select.EPOLLONESHOT
    )  # a combination every kernel refuses
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    pipe = os.pipe()
    worker = SyncWorker.__new__(SyncWorker)
    worker.sockets, worker.PIPE = [listener], pipe
    try:
        assert worker._exclusive_poller() is None
        monkeypatch.setattr(gunicorn_worker, "EXCLUSIVE", select.EPOLLEXCLUSIVE)
        poller = worker._exclusive_poller()
        assert poller is not None
        poller.close()
        worker._linger_poller.close()
    finally:
        listener.close()
        for fd in pipe:
            os.close(fd)


# --- Closing: the lingering close off the worker's path ---------------------------------


def _settled(master_pid: int, sockets: int, message: str) -> None:
    """Wait (up to 10 s) until the worker holds `sockets` sockets."""
    deadline = time.monotonic() + 10
    while _worker_sockets(master_pid) != sockets:
        assert time.monotonic() < deadline, message
        time.sleep(0.05)


def _worker_sockets(master_pid: int) -> int:
    """Sockets open in the one worker of `master_pid`."""
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    (worker,) = children
    fds = Path(f"/proc/{worker}/fd")
    count = 0
    for fd in fds.iterdir():
        try:
            count += os.readlink(fd).startswith("socket:")
        except FileNotFoundError:  # closed while listed
            pass
    return count


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads /proc")
def test_a_client_that_has_not_closed_does_not_hold_the_worker(one_worker):
    """Client A has its answer and the server's FIN but keeps its socket open. With
    gunicorn's blocking lingering close the only worker waits for A (2 s) before it takes
    B; ours answers B at once, and closes A's connection when A closes."""
    port, master_pid, exclusive = one_worker
    idle = 1  # the listener
    _settled(master_pid, idle, "the fixture's own connection was not closed")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as a:
        assert _answered(a).endswith(b"\r\n\r\nok")  # the FIN came with the answer
        with socket.create_connection(("127.0.0.1", port), timeout=10) as b:
            started = time.monotonic()
            assert _answered(b).endswith(b"\r\n\r\nok")
            waited = time.monotonic() - started
        if not exclusive:
            assert waited >= 1.5  # gunicorn's worker sat out its 2 s on A
            return
        assert waited < 1.0  # with a 60 s linger: B did not wait for A
        _settled(master_pid, idle + 1, "A's connection does not linger")  # once B's closed
        a.sendall(b"bytes sent after the answer are read and dropped")
    _settled(master_pid, idle, "A's connection was not closed after A closed")


TCP_INFO_DATA_SEGS_IN = 152  # offset of tcpi_data_segs_in in struct tcp_info (Linux 4.6+)


@pytest.mark.skipif(not hasattr(socket, "TCP_CORK"), reason="Linux only")
@pytest.mark.parametrize("cork", [True, False], ids=["cork", "control"])
def test_an_answer_goes_out_as_one_segment(tmp_path, cork):
    """Status line, headers and body reach the client in one TCP segment; sent as
    written (the control) they take two: headers, then body."""
    with _gunicorn(tmp_path, exclusive=hasattr(select, "EPOLLEXCLUSIVE"), workers=1,
                   cork=cork) as (port, _):  # fmt: skip
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            assert _answered(sock).endswith(b"\r\n\r\nok")
            info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    if len(info) < TCP_INFO_DATA_SEGS_IN + 4:
        pytest.skip("this kernel's tcp_info has no data_segs_in")
    (segments,) = struct.unpack_from("I", info, TCP_INFO_DATA_SEGS_IN)
    assert segments == 1 if cork else segments >= 2


@pytest.fixture
def bare_worker(monkeypatch):
    """A SyncWorker's epoll and lingering, outside gunicorn (no listener is used)."""
    if not hasattr(select, "EPOLLEXCLUSIVE"):
        pytest.skip("EPOLLEXCLUSIVE is Linux 4.5 and later")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    pipe = os.pipe()
    worker = SyncWorker.__new__(SyncWorker)
    worker.sockets, worker.PIPE, worker._lingering = [listener], pipe, {}
    monkeypatch.setattr(worker, "notify", lambda: None)  # gunicorn's heartbeat file
    worker._poller = worker._exclusive_poller()
    pairs = []

    def connection() -> tuple[socket.socket, socket.socket]:
        pair = socket.socketpair()
        pairs.append(pair)
        return pair

    yield worker, connection
    worker._poller.close()
    worker._linger_poller.close()
    listener.close()
    for fd in pipe:
        os.close(fd)
    for pair in pairs:
        for end in pair:
            end.close()


def test_a_lingering_connection_is_closed_at_its_deadline(bare_worker, monkeypatch):
    from finops import gunicorn_worker

    worker, connection = bare_worker
    monkeypatch.setattr(gunicorn_worker, "LINGER_S", 0.2)
    server_end, client_end = connection()
    worker._linger(server_end)
    assert client_end.recv(10) == b""  # the FIN was sent at once
    assert server_end.fileno() >= 0 and len(worker._lingering) == 1
    started = time.monotonic()
    assert worker.wait(30) is None  # the wait ends for the deadline, not the heartbeat's
    assert time.monotonic() - started < 10
    assert server_end.fileno() == -1 and worker._lingering == {}


def test_a_client_that_closed_first_is_closed_at_once(bare_worker):
    worker, connection = bare_worker
    server_end, client_end = connection()
    client_end.sendall(b"unread request bytes")
    client_end.close()
    worker._linger(server_end)
    assert server_end.fileno() == -1 and worker._lingering == {}


def test_at_most_linger_max_connections_linger(bare_worker, monkeypatch):
    from finops import gunicorn_worker

    worker, connection = bare_worker
    monkeypatch.setattr(gunicorn_worker, "LINGER_MAX", 2)
    ends = [connection()[0] for _ in range(3)]
    for end in ends:
        worker._linger(end)
    assert [end.fileno() == -1 for end in ends] == [True, False, False]  # the oldest
    assert len(worker._lingering) == 2


def test_a_client_sending_without_end_is_closed_after_64_kib(bare_worker, monkeypatch):
    from finops import gunicorn_worker
    from finops.gunicorn_worker import LINGER_MAX_DRAIN

    worker, connection = bare_worker
    monkeypatch.setattr(gunicorn_worker, "LINGER_S", 60)  # the cap closes it, not the time
    server_end, client_end = connection()
    worker._linger(server_end)
    client_end.setblocking(False)
    sent = 0
    while server_end.fileno() >= 0:
        try:
            sent += client_end.send(b"x" * 4096)
        except BlockingIOError:
            pass
        worker.wait(0)
        assert sent <= LINGER_MAX_DRAIN + 4096 * 64, "still draining past the cap"
    assert worker._lingering == {}


def test_a_worker_on_its_way_out_lets_lingering_clients_finish(bare_worker):
    """The connection stays open (and drained) until its client closes, within the time
    given; then the worker closes what is left."""
    worker, connection = bare_worker
    server_end, client_end = connection()
    worker._linger(server_end)
    open_when_client_closed = []

    def client() -> None:
        time.sleep(0.2)
        open_when_client_closed.append(server_end.fileno() >= 0)
        client_end.sendall(b"late bytes")
        client_end.close()

    thread = threading.Thread(target=client)
    thread.start()
    worker._finish_lingering(30)
    thread.join()
    assert open_when_client_closed == [True]
    assert server_end.fileno() == -1 and worker._lingering == {}

    stuck, _client = connection()  # a client that never closes: closed at the limit
    worker._linger(stuck)
    started = time.monotonic()
    worker._finish_lingering(0.3)
    assert stuck.fileno() == -1 and worker._lingering == {}
    assert time.monotonic() - started < 10


def test_a_closed_lingering_socket_leaves_no_registration(bare_worker):
    """Closed explicitly out of the epoll: a copy of the socket elsewhere (an app that
    forked) must not keep reporting it, which would make every wait return at once."""
    worker, connection = bare_worker
    server_end, client_end = connection()
    copy = os.dup(server_end.fileno())
    try:
        worker._linger(server_end)
        client_end.close()
        worker._serve_lingering()
        assert server_end.fileno() == -1
        assert worker._linger_poller.poll(0) == []
    finally:
        os.close(copy)


_HAMMER = """
import socket, sys, time
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
        while s.recv(4096):
            pass
"""


@pytest.mark.skipif(
    not (Path("/proc/self/task").is_dir() and hasattr(select, "EPOLLEXCLUSIVE")),
    reason="reads /proc; lingers only with EPOLLEXCLUSIVE (Linux)",
)
def test_lingering_connections_are_finished_under_sustained_load(tmp_path):
    """Clients that close at once, from 3 processes, keep the one worker busy, so it
    seldom waits; their connections are still closed as they finish, not left to pile
    up to LINGER_MAX (256, seen when they were served only while waiting)."""
    with _gunicorn(tmp_path, exclusive=True, workers=1, linger_s=60) as (port, master_pid):
        command = [sys.executable, "-c", _HAMMER, str(port), "2"]
        clients = [subprocess.Popen(command) for _ in range(3)]
        most = 0
        try:
            while any(c.poll() is None for c in clients):
                most = max(most, _worker_sockets(master_pid))
                time.sleep(0.02)
        finally:
            for c in clients:
                c.kill()
                c.wait()
    assert all(c.returncode == 0 for c in clients)
    assert most < 64, most
