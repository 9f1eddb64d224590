"""gunicorn.conf.py, as gunicorn itself reads it from the project's directory."""

import os
from pathlib import Path

import pytest
from gunicorn.app.wsgiapp import WSGIApplication

ROOT = Path(__file__).resolve().parents[2]


def _loaded(monkeypatch: pytest.MonkeyPatch) -> WSGIApplication:
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("GUNICORN_CMD_ARGS", raising=False)
    monkeypatch.setattr("sys.argv", ["gunicorn", "finops.wsgi:application", "--workers", "3"])
    return WSGIApplication()


def test_heartbeat_file_in_memory(monkeypatch):
    app = _loaded(monkeypatch)
    assert app.cfg.worker_tmp_dir == ("/dev/shm" if os.path.isdir("/dev/shm") else None)


def test_command_line_takes_precedence(monkeypatch):
    app = _loaded(monkeypatch)
    assert app.cfg.workers == 3
    assert app.cfg.worker_class_str == "sync"
