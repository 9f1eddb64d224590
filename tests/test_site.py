from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_health_reports_the_database() -> None:
    response = Client().get("/api/v1/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


def test_openapi_describes_the_event_schema() -> None:
    response = Client().get("/api/schema/?format=json")
    assert response.status_code == 200
    schema = response.json()
    post = schema["paths"]["/api/v1/events"]["post"]
    body = post["requestBody"]["content"]["application/json"]["schema"]
    assert body["oneOf"][1] == {"$ref": "#/components/schemas/EventBatch"}
    event_schema = schema["components"]["schemas"]["EventIn"]
    assert {"event_id", "timestamp", "model", "input_tokens", "output_tokens"} <= set(
        event_schema["required"]
    )
    assert "get" in schema["paths"]["/api/v1/events"]


def test_api_docs_are_served_without_a_cdn() -> None:
    response = Client().get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    assert "cdn.jsdelivr" not in html and "unpkg" not in html


def test_an_unexpected_api_error_answers_json(monkeypatch) -> None:
    from django.test import RequestFactory

    from finops.apis import server_error

    response = server_error(RequestFactory().post("/api/v1/events"))
    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    html = server_error(RequestFactory().get("/admin/"))
    assert html.status_code == 500 and "json" not in html["Content-Type"]


def test_the_openapi_schema_is_valid_and_generates_without_warnings(tmp_path) -> None:
    from django.core.management import call_command

    out = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    text = out.read_text()
    for path in ("/api/v1/guard", "/api/v1/statements/{statement_id}/pdf", "/api/v1/usage",
                 "/api/v1/exports/focus", "/api/v1/reconciliation"):  # fmt: skip
        assert f"{path}:" in text


def test_the_container_image_copies_every_package_and_app() -> None:
    """The Dockerfile copies each package the project installs and each app Django loads
    (an app left out of the image would stop it from starting)."""
    import tomllib
    from pathlib import Path

    from django.conf import settings

    root = Path(__file__).resolve().parent.parent
    copied = {
        line.split()[1]
        for line in (root / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY ")
    }
    packages = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"
    ]["find"]["include"]
    local_apps = {
        app.split(".")[0] for app in settings.INSTALLED_APPS if (root / app.split(".")[0]).is_dir()
    }
    assert {p.rstrip("*") for p in packages} | local_apps <= copied
