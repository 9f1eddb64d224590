"""Production defaults: with DEBUG off and nothing else said, finops passes Django's
deployment check, redirects plain HTTP and marks its cookies Secure; the environment
turns each part off (FINOPS_HTTPS=0 all at once, as `make run` and the suite do)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model

ROOT = Path(__file__).resolve().parents[1]
SECURITY_SETTINGS = (
    "FINOPS_HTTPS", "SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE",
    "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD",
    "SECURE_PROXY_SSL_HEADER", "SECURE_REDIRECT_EXEMPT",
)  # fmt: skip
PRINT_SETTINGS = f"""
import json, django
django.setup()
from django.conf import settings
print(json.dumps({{name: getattr(settings, name) for name in {SECURITY_SETTINGS!r}}}))
"""


def _production_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """Only what a deployment must say, in an otherwise clean environment."""
    return {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "FINOPS_VAR_DIR": str(tmp_path / "var"),
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "finops.example.com",
        "DEBUG": "False",
        **extra,
    }


def _security_settings(tmp_path: Path, **extra: str) -> dict[str, Any]:
    env = {**_production_env(tmp_path, **extra), "DJANGO_SETTINGS_MODULE": "config.settings"}
    done = subprocess.run([sys.executable, "-c", PRINT_SETTINGS], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_deployment_check_reports_no_issues_with_only_the_required_settings(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "DEBUG"],
        cwd=ROOT, env=_production_env(tmp_path), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout, done.stdout + done.stderr


def test_the_deployment_check_names_a_missing_secret_key(tmp_path: Path) -> None:
    env = _production_env(tmp_path)
    del env["SECRET_KEY"]
    done = subprocess.run([sys.executable, "manage.py", "check", "--deploy"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert "security.W009" in done.stdout + done.stderr


def test_with_debug_off_https_is_on_by_default(tmp_path: Path) -> None:
    values = _security_settings(tmp_path)
    assert values["FINOPS_HTTPS"] and values["SECURE_SSL_REDIRECT"]
    assert values["SESSION_COOKIE_SECURE"] and values["CSRF_COOKIE_SECURE"]
    assert values["SECURE_HSTS_SECONDS"] == 365 * 24 * 3600
    assert values["SECURE_HSTS_INCLUDE_SUBDOMAINS"] and values["SECURE_HSTS_PRELOAD"]
    assert values["SECURE_PROXY_SSL_HEADER"] is None
    assert values["SECURE_REDIRECT_EXEMPT"] == [r"^api/v1/health$", r"^metrics$"]


def test_https_off_at_once_with_finops_https_0_or_with_debug_on(tmp_path: Path) -> None:
    for extra in ({"FINOPS_HTTPS": "0"}, {"DEBUG": "True"}):
        values = _security_settings(tmp_path, **extra)
        assert not values["SECURE_SSL_REDIRECT"], extra
        assert not values["SESSION_COOKIE_SECURE"] and not values["CSRF_COOKIE_SECURE"], extra
        assert values["SECURE_HSTS_SECONDS"] == 0, extra


def test_each_security_setting_is_overridden_by_the_environment(tmp_path: Path) -> None:
    values = _security_settings(
        tmp_path,
        SECURE_SSL_REDIRECT="false",
        SESSION_COOKIE_SECURE="false",
        SECURE_HSTS_SECONDS="3600",
        SECURE_HSTS_INCLUDE_SUBDOMAINS="false",
        SECURE_HSTS_PRELOAD="false",
        SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO,https",
        SECURE_REDIRECT_EXEMPT=r"^api/v1/health$",
    )
    assert not values["SECURE_SSL_REDIRECT"] and not values["SESSION_COOKIE_SECURE"]
    assert values["CSRF_COOKIE_SECURE"]  # not named: still the default
    assert values["SECURE_HSTS_SECONDS"] == 3600
    assert not values["SECURE_HSTS_INCLUDE_SUBDOMAINS"] and not values["SECURE_HSTS_PRELOAD"]
    assert values["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert values["SECURE_REDIRECT_EXEMPT"] == [r"^api/v1/health$"]


def test_a_malformed_proxy_ssl_header_is_refused_at_start(tmp_path: Path) -> None:
    env = {**_production_env(tmp_path, SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO"),
           "DJANGO_SETTINGS_MODULE": "config.settings"}  # fmt: skip
    done = subprocess.run([sys.executable, "-c", PRINT_SETTINGS], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode != 0 and "SECURE_PROXY_SSL_HEADER" in done.stderr


@pytest.fixture
def production_https(settings, tmp_path: Path) -> dict[str, Any]:
    """This process's settings as a deployment with DEBUG off gets them, behind a proxy
    that sets X-Forwarded-Proto."""
    values = _security_settings(tmp_path, SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO,https")
    values["SECURE_PROXY_SSL_HEADER"] = tuple(values["SECURE_PROXY_SSL_HEADER"])
    for name, value in values.items():
        setattr(settings, name, value)
    return values


def test_with_debug_off_plain_http_is_redirected_to_https(client, production_https) -> None:
    response = client.get("/admin/login/")
    assert response.status_code == 301
    assert response["Location"] == "https://testserver/admin/login/"


def test_the_health_check_and_metrics_answer_over_plain_http(client, db, production_https):
    assert client.get("/api/v1/health").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200


def test_over_https_cookies_are_secure_and_hsts_is_sent(client, db, production_https) -> None:
    page = client.get("/admin/login/", secure=True)
    assert page.status_code == 200
    assert page.cookies["csrftoken"]["secure"]
    assert page["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    get_user_model().objects.create_superuser("ops", "ops@example.com", "a-long-passphrase-1")
    login = client.post(
        "/admin/login/?next=/admin/",
        {"username": "ops", "password": "a-long-passphrase-1",
         "csrfmiddlewaretoken": page.cookies["csrftoken"].value},
        secure=True,
    )  # fmt: skip
    assert login.status_code == 302
    assert login.cookies["sessionid"]["secure"] and login.cookies["sessionid"]["httponly"]


def test_the_proxys_forwarded_proto_counts_as_https(client, db, production_https) -> None:
    response = client.get("/admin/login/", HTTP_X_FORWARDED_PROTO="https")
    assert response.status_code == 200
    assert response.cookies["csrftoken"]["secure"]
    assert "Strict-Transport-Security" in response
