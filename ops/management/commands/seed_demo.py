from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from billing.rollups import rollups_update
from console.digest import digest_write
from console.reviews import reviews_open
from finops.management.commands.import_prices import parse_instant
from finops.models import Tenant
from ops.demo import TENANTS, demo_seed
from portal.models import TenantUser
from portal.services import tenant_user_create
from statements.services import statements_draft, statements_finalize


class Command(BaseCommand):
    help = (
        "Create demo tenants (one per tier), features and prompt templates, post 30 days "
        "of realistic traffic across several models, fold it, draft (and where due, "
        "finalize) the statements, and give each demo tenant a portal login "
        "(`<slug>-user`, its password kept in var/local-credentials.json). Safe to run again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, default=30)
        parser.add_argument(
            "--now", help="ISO 8601 instant the demo's traffic ends at (default: now)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        days = options["days"]
        if not 1 <= days <= 35:
            self.stderr.write("--days must be 1..35 (the backfill window).")
            raise SystemExit(2)
        now = parse_instant(options["now"], "--now") if options.get("now") else timezone.now()
        result = demo_seed(days=days, now=now)
        self.stdout.write(
            f"Demo data: {result.accepted} events stored, {result.duplicates} already there, "
            f"{result.rejected} rejected."
        )
        rollups_update()
        drafted = statements_draft(now=now)
        finalized = statements_finalize(now=now)
        self.stdout.write(
            f"Statements: {drafted.drafted} drafted, {finalized.finalized} finalized."
        )
        reviews = reviews_open(now=now)
        self.stdout.write(f"Retirement reviews: {reviews.opened} opened.")
        digest = digest_write(now=now)
        if digest is not None:
            self.stdout.write(f"Weekly digest:\n{digest.text}")
        logins = self._portal_users()
        for slug, login in logins.items():
            self.stdout.write(f"Portal login for {slug}: {login['username']}")

    def _portal_users(self) -> dict[str, dict[str, str]]:
        """One portal login per demo tenant; passwords kept beside the admin's."""
        path = Path(settings.VAR_DIR) / "local-credentials.json"
        saved: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
        logins: dict[str, dict[str, str]] = saved.get("portal_users", {})
        users = get_user_model()
        for slug, *_ in TENANTS:
            username = f"{slug}-user"
            login = logins.get(slug)
            user = users.objects.filter(username=username).first()
            if user is not None and login and user.check_password(login["password"]):
                continue
            password = secrets.token_urlsafe(9)
            tenant = Tenant.objects.get(slug=slug)
            if user is None:
                tenant_user_create(tenant=tenant, username=username, password=password)
            else:
                user.set_password(password)
                user.save()
                TenantUser.objects.get_or_create(user=user, defaults={"tenant": tenant})
            logins[slug] = {"username": username, "password": password}
        saved["portal_users"] = logins
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(saved, indent=1))
        os.chmod(path, 0o600)
        return logins
