"""gunicorn.conf.py, as gunicorn itself reads it from the project's directory."""

import os
from pathlib import Path

import pytest
from gunicorn.app.wsgiapp import WSGIApplication

ROOT = Path(__file__).resolve().parents[2]


def _loaded(monkeypatch: pytest.MonkeyPatch, *args: str) -> WSGIApplication:
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("GUNICORN_CMD_ARGS", raising=False)
    monkeypatch.setattr("sys.argv", ["gunicorn", "config.wsgi:application", *args])
    return WSGIApplication()


def _settings(app: WSGIApplication) -> dict[str, object]:
    return {name: setting.get() for name, setting in app.cfg.settings.items()}


def test_heartbeat_file_in_memory(monkeypatch):
    app = _loaded(monkeypatch, "--workers", "2")
    assert app.cfg.worker_tmp_dir == ("/dev/shm" if os.path.isdir("/dev/shm") else None)


def test_nothing_else_differs_from_stock_gunicorn(monkeypatch, tmp_path):
    """Stock gunicorn: its own sync worker, `--workers` and `--bind` from the command
    line; the file only moves the heartbeat directory, turns off the control socket (two
    pools on one host would share its path) and tells prometheus-client when a worker
    exits."""
    empty = tmp_path / "empty.conf.py"
    empty.write_text("")
    args = ("--workers", "3", "--bind", "127.0.0.1:8123")
    app = _loaded(monkeypatch, *args)
    with_file = _settings(app)
    without = _settings(_loaded(monkeypatch, *args, "--config", str(empty)))
    differing = {k for k in with_file if with_file[k] != without[k]}
    assert differing <= {"worker_tmp_dir", "config", "child_exit", "control_socket_disable"}
    assert with_file["workers"] == 3
    assert with_file["bind"] == ["127.0.0.1:8123"]
    assert app.cfg.worker_class_str == "sync"


def test_an_exiting_worker_leaves_the_metrics_of_live_processes(monkeypatch, tmp_path):
    """With PROMETHEUS_MULTIPROC_DIR set, a worker's exit marks its live gauges dead (a
    restarted pool never reports a dead worker's gauges); without it, nothing happens."""
    from prometheus_client import multiprocess

    app = _loaded(monkeypatch)
    dead: list[int] = []
    monkeypatch.setattr(multiprocess, "mark_process_dead", dead.append)
    worker = type("Worker", (), {"pid": 4242})()
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    app.cfg.child_exit(None, worker)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    app.cfg.child_exit(None, worker)
    assert dead == [4242]
