from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction

from finops.models import Tenant

from .models import TenantUser


@transaction.atomic
def tenant_user_create(
    *, tenant: Tenant, username: str, password: str, email: str = ""
) -> TenantUser:
    """A portal login for `tenant`: never staff, never superuser."""
    user = get_user_model().objects.create_user(username=username, email=email, password=password)
    return TenantUser.objects.create(user=user, tenant=tenant)
