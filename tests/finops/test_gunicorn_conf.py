"""gunicorn.conf.py, as gunicorn itself reads it from the project's directory."""

import os
from pathlib import Path

import pytest
from gunicorn.app.wsgiapp import WSGIApplication
from gunicorn.workers.sync import SyncWorker

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


def test_nothing_else_differs_from_gunicorn_alone(monkeypatch, tmp_path):
    """The documented serving (sync workers, `--workers` and `--bind` from the command
    line) is what gunicorn does without the file: the heartbeat directory and the sync
    worker's class (finops's, which waits differently) aside."""
    empty = tmp_path / "empty.conf.py"
    empty.write_text("")
    args = ("--workers", "3", "--bind", "127.0.0.1:8123")
    app = _loaded(monkeypatch, *args)
    with_file = _settings(app)
    without = _settings(_loaded(monkeypatch, *args, "--config", str(empty)))
    differing = {k for k in with_file if with_file[k] != without[k]}
    assert differing <= {"worker_tmp_dir", "worker_class", "config"}
    assert with_file["workers"] == 3
    assert with_file["bind"] == ["127.0.0.1:8123"]
    assert app.cfg.worker_class_str == "finops.gunicorn_worker.SyncWorker"
    assert issubclass(app.cfg.worker_class, SyncWorker)
