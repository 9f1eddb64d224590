from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from rest_framework.test import APIClient

from finops.models import ApiKey
from finops.services import apikey_revoke
from tests.conftest import event, post_events

pytestmark = pytest.mark.django_db


def test_no_plaintext_key_is_stored(acme) -> None:
    out = StringIO()
    call_command("createapikey", "--tenant", "acme", "--name", "ci", stdout=out)
    plaintext = out.getvalue().strip().splitlines()[-1]
    assert plaintext.startswith("fo_")
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM finops_apikey")
        rows = cursor.fetchall()
    assert rows and all(plaintext not in str(value) for row in rows for value in row)
    secret = plaintext.split("_", 2)[2]
    assert all(secret not in str(value) for row in rows for value in row)


def test_createapikey_prints_the_key_alone_on_the_last_line(acme) -> None:
    out = StringIO()
    call_command("createapikey", "--tenant", "acme", "--scopes", "read", stdout=out)
    key = out.getvalue().splitlines()[-1]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert client.get("/api/v1/events").status_code == 200
    assert ApiKey.objects.get().scopes == ["read"]


def test_createapikey_without_tenant_makes_an_operator_key() -> None:
    out = StringIO()
    call_command("createapikey", stdout=out)
    assert ApiKey.objects.get().is_operator
    assert "operator" in out.getvalue()


def test_createapikey_refuses_bad_input(acme) -> None:
    with pytest.raises(CommandError, match="No tenant"):
        call_command("createapikey", "--tenant", "nobody")
    with pytest.raises(CommandError, match="scopes"):
        call_command("createapikey", "--scopes", "admin")


def test_a_revoked_key_gets_401(acme_client, acme) -> None:
    assert post_events(acme_client, event(event_id="before")).status_code == 202
    apikey_revoke(key=ApiKey.objects.get(tenant=acme))
    response = post_events(acme_client, event(event_id="after"))
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


@pytest.mark.parametrize(
    "header",
    ["", "Bearer", "Bearer fo_nothing", "Token abc", "Bearer fo_000000000000_wrongsecret"],
)
def test_missing_or_wrong_keys_get_401(acme, header) -> None:
    client = APIClient()
    if header:
        client.credentials(HTTP_AUTHORIZATION=header)
    assert post_events(client, event()).status_code == 401
    assert client.get("/api/v1/events").status_code == 401


def test_a_key_with_a_right_prefix_and_wrong_secret_is_refused(acme_client) -> None:
    prefix = acme_client.key.split("_")[1]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer fo_{prefix}_forged")
    assert client.get("/api/v1/events").status_code == 401


def test_keys_are_kept_briefly_and_a_revocation_reaches_every_worker_in_time(
    settings, acme_client, acme
) -> None:
    import time

    from finops.authentication import key_cache_clear
    from finops.models import ApiKey

    settings.FINOPS_API_KEY_CACHE_SECONDS = 0.5
    key_cache_clear()
    assert acme_client.get("/api/v1/events").status_code == 200
    # Another worker revoked it: this one still holds the key for at most the TTL.
    ApiKey.objects.filter(tenant=acme).update(revoked_at="2026-01-01T00:00:00Z")
    assert acme_client.get("/api/v1/events").status_code == 200
    time.sleep(0.6)
    assert acme_client.get("/api/v1/events").status_code == 401


def test_a_revocation_in_this_worker_takes_effect_at_once(settings, acme_client, acme) -> None:
    from django.utils import timezone

    from finops.authentication import key_cache_clear
    from finops.models import ApiKey

    settings.FINOPS_API_KEY_CACHE_SECONDS = 60
    key_cache_clear()
    assert acme_client.get("/api/v1/events").status_code == 200
    key = ApiKey.objects.get(tenant=acme)
    key.revoked_at = timezone.now()
    key.save()
    assert acme_client.get("/api/v1/events").status_code == 401
