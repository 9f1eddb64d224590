"""The production serving stack, for real: nginx (deploy/nginx.conf.template) in front of
two stock gunicorn pools serving `config.wsgi:application`, the guard on its own.

Needs Debian's `nginx` binary (skipped without it). The pools run on the embedded SQLite,
in a temporary FINOPS_VAR_DIR, whatever database the rest of the suite uses.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.core.handlers.wsgi import WSGIHandler

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "deploy" / "nginx.conf.template"
NGINX = shutil.which("nginx", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
MODEL = "gpt-4o-2024-08-06"
# What the template needs from the nginx image's main configuration, with every path
# nginx writes to inside the test's directory.
MAIN_CONF = """
events {{}}
http {{
    access_log {tmp}/nginx-access.log;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {tmp}/finops.conf;
}}
"""


def test_production_serves_the_stock_django_application() -> None:
    from config.wsgi import application

    assert type(application) is WSGIHandler


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def render(template: str, values: dict[str, str]) -> str:
    """As the nginx image's envsubst does: only the variables given are replaced (the
    template's own nginx variables, `$http_host` and the like, stay)."""
    for name, value in values.items():
        template = template.replace("${" + name + "}", value)
    assert "${" not in template
    return template


def until(condition: Callable[[], object], what: str, timeout: float = 30) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def request(url: str, body: dict | None = None, key: str = "") -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    req = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, object]]:
    if NGINX is None:
        pytest.skip("needs Debian's nginx binary")
    # The embedded default, whatever the suite runs on: no server is shared with it.
    shared = ("DATABASE_", "REDIS_", "CELERY_", "FINOPS_", "DJANGO_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(shared)}
    env.update(FINOPS_VAR_DIR=str(tmp_path / "var"), FINOPS_HTTPS="0", PYTHONUNBUFFERED="1",
               ALLOWED_HOSTS="127.0.0.1,localhost")  # fmt: skip
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--noinput", "-v0"], env=env, cwd=ROOT, check=True)
    subprocess.run([*manage, "createtenant", "acme"], env=env, cwd=ROOT, check=True,
                   capture_output=True)  # fmt: skip
    created = subprocess.run(
        [*manage, "createapikey", "--tenant", "acme", "--scopes", "ingest"],
        env=env, cwd=ROOT, check=True, capture_output=True, text=True,
    )  # fmt: skip
    key = created.stdout.strip().splitlines()[-1]

    ports = {"web": free_port(), "guard": free_port(), "nginx": free_port()}
    logs = {pool: tmp_path / f"{pool}-access.log" for pool in ("web", "guard")}
    (tmp_path / "finops.conf").write_text(
        render(TEMPLATE.read_text(), {
            "NGINX_PORT": f"127.0.0.1:{ports['nginx']}",
            "FINOPS_WEB": f"127.0.0.1:{ports['web']}",
            "FINOPS_GUARD": f"127.0.0.1:{ports['guard']}",
        })
    )  # fmt: skip
    (tmp_path / "nginx.conf").write_text(MAIN_CONF.format(tmp=tmp_path))

    processes: list[subprocess.Popen] = []
    try:
        for pool in ("web", "guard"):
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "config.wsgi:application",
                 "--bind", f"127.0.0.1:{ports[pool]}", "--workers", "1",
                 "--access-logfile", str(logs[pool])],
                env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                stderr=(tmp_path / f"{pool}-error.log").open("wb"),
            ))  # fmt: skip
        processes.append(subprocess.Popen(
            [NGINX, "-e", "stderr", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"),
             "-g", f"daemon off; pid {tmp_path}/nginx.pid; error_log stderr;"],
            cwd=tmp_path, stdout=subprocess.DEVNULL,
            stderr=(tmp_path / "nginx-error.log").open("wb"),
        ))  # fmt: skip
        base = f"http://127.0.0.1:{ports['nginx']}"
        for pool in ("web", "guard"):
            until(lambda pool=pool: request(f"http://127.0.0.1:{ports[pool]}/api/v1/health")[0]
                  == 200, f"the {pool} pool")  # fmt: skip
        until(lambda: request(f"{base}/api/v1/health")[0] == 200, "nginx")
        yield {"base": base, "key": key, "logs": logs}
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_nginx_sends_the_guard_to_its_own_pool_and_the_rest_to_the_web_pool(stack) -> None:
    base, key, logs = stack["base"], stack["key"], stack["logs"]
    status, body = request(f"{base}/api/v1/guard", {"feature": "chat", "model": MODEL}, key)
    assert status == 200, body
    assert json.loads(body) == {"decision": "allow", "model": MODEL,
                                "reason": "Within every cap, budget and policy.",
                                "error_type": None}  # fmt: skip
    status, body = request(f"{base}/api/v1/guard", {"model": MODEL}, "fo_nope_nope")
    assert (status, json.loads(body)) == (401, {"detail": "Invalid API key."})
    assert request(f"{base}/api/v1/alerts", key=key)[0] == 403  # an ingest key may not read

    def logged(pool: str) -> str:
        return logs[pool].read_text() if logs[pool].exists() else ""

    until(lambda: logged("guard").count("POST /api/v1/guard") == 2, "the guard pool's log")
    until(lambda: "GET /api/v1/alerts" in logged("web"), "the web pool's log")
    assert "/api/v1/alerts" not in logged("guard")
    assert "/api/v1/guard" not in logged("web")
