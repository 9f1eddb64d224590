"""The tenant portal: a tenant user sees its own figures and statements, nothing else."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from billing.rollups import rollups_update
from portal.models import TenantUser
from portal.services import tenant_user_create
from statements.models import Statement
from statements.services import statements_draft, statements_finalize
from tests.statements.test_statements import CLOSING, LAST_MONTH, post

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def portal(operator, acme, globex) -> dict[str, Client]:
    post(operator, 3, prefix="a")
    post(operator, 2, tenant="globex", prefix="g")
    from datetime import UTC, datetime

    post(operator, 4, prefix="now", at=datetime.now(UTC), feature="chat_assistant")
    rollups_update()
    statements_draft(now=CLOSING)
    statements_finalize(now=CLOSING)
    clients = {}
    for tenant in (acme, globex):
        tenant_user_create(tenant=tenant, username=f"{tenant.slug}-user", password="s3cret-pw!")
        client = Client()
        assert client.login(username=f"{tenant.slug}-user", password="s3cret-pw!")
        clients[tenant.slug] = client
    return clients


def test_login_then_the_tenant_sees_its_figures_chart_and_statements(portal) -> None:
    anonymous = Client()
    assert anonymous.get("/portal/").url.startswith("/portal/login/")
    login = anonymous.post("/portal/login/", {"username": "acme-user", "password": "s3cret-pw!"})
    assert login.status_code == 302 and login.url == "/portal/"
    page = anonymous.get("/portal/").content.decode()
    assert "Acme" in page
    assert re.search(r'id="month-to-date">0\.023 USD<', page)  # 4 calls x 0.00575 = 0.023
    assert page.count("<rect ") >= 1 and "chat_assistant" in page
    statement = Statement.objects.get(tenant__slug="acme", period=LAST_MONTH.date())
    assert statement.number in page
    assert f"/portal/statements/{statement.id}/pdf" in page
    assert "GLOBEX" not in page


def test_downloads_of_own_statements_only(portal) -> None:
    own = Statement.objects.get(tenant__slug="acme", period=LAST_MONTH.date())
    theirs = Statement.objects.get(tenant__slug="globex", period=LAST_MONTH.date())
    pdf = portal["acme"].get(f"/portal/statements/{own.id}/pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert portal["acme"].get(f"/portal/statements/{own.id}/csv").status_code == 200
    for suffix in ("pdf", "csv"):
        assert portal["acme"].get(f"/portal/statements/{theirs.id}/{suffix}").status_code == 404
        assert portal["globex"].get(f"/portal/statements/{theirs.id}/{suffix}").status_code == 200


def test_staff_without_a_tenant_and_wrong_passwords_get_nothing(portal) -> None:
    staff = get_user_model().objects.create_superuser("staff", "s@example.com", "pw")
    client = Client()
    client.force_login(staff)
    assert client.get("/portal/").status_code == 404
    wrong = Client().post("/portal/login/", {"username": "acme-user", "password": "nope"})
    assert wrong.status_code == 200 and "Wrong username or password" in wrong.content.decode()


def test_staff_create_tenant_users_in_the_admin(acme) -> None:
    staff = get_user_model().objects.create_superuser("staff", "s@example.com", "pw")
    client = Client()
    client.force_login(staff)
    response = client.post("/admin/portal/tenantuser/add/", {
        "tenant": acme.id, "username": "new-user", "email": "", "password": "long-enough-pw-1",
    })  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:2000]
    membership = TenantUser.objects.get(user__username="new-user")
    assert membership.tenant == acme and not membership.user.is_staff
    assert Client().login(username="new-user", password="long-enough-pw-1")
