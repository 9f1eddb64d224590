"""Every page of the admin console answers, on the demo data: each model's list, its add
form and the change form of its first row, for a superuser. A page that fails (a
computed column on an odd row, a form that cannot render) is found here, not by staff."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from billing.rollups import rollups_update
from console.economics import feature_reach_count
from console.projection import projections_snapshot
from ops.demo import demo_seed

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_every_admin_page_answers_on_the_demo_data(client) -> None:
    now = timezone.now()
    demo_seed(now=now, days=3)
    rollups_update()
    feature_reach_count(now=now)
    projections_snapshot(now=now)
    user = get_user_model().objects.create_superuser("root", "r@example.com", "pw")
    client.force_login(user)
    failures, checked = [], 0
    for model, model_admin in admin.site._registry.items():
        name = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        pages = [reverse(f"{name}_changelist")]
        if model_admin.has_add_permission(_request(user)):
            pages.append(reverse(f"{name}_add"))
        first = model.objects.order_by("pk").first()
        if first is not None:
            pages.append(reverse(f"{name}_change", args=[first.pk]))
        for page in pages:
            checked += 1
            status = client.get(page).status_code
            if status != 200:
                failures.append((page, status))
    assert not failures, failures
    assert checked >= 3 * 20  # some twenty models, each with its pages
    assert client.get("/admin/reports/quarterly/").status_code == 200
    assert client.get("/admin/reports/quarterly/pdf/").status_code == 200
    assert client.get("/admin/dashboard/?by=tag").status_code == 200


def _request(user):
    from django.test import RequestFactory

    request = RequestFactory().get("/admin/")
    request.user = user
    return request
