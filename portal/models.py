from __future__ import annotations

from django.conf import settings
from django.db import models

from finops.models import Tenant


class TenantUser(models.Model):
    """A login of the tenant portal: a Django user who sees one tenant's data only."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tenant_membership"
    )
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="portal_users")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["tenant", "user"]

    def __str__(self) -> str:
        return f"{self.user} ({self.tenant.slug})"
