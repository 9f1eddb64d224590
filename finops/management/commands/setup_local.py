from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser

from finops.models import ApiKey
from finops.services import apikey_create


class Command(BaseCommand):
    help = (
        "For a local install: make sure an admin user and an operator API key exist, keep "
        "their secrets in the var/ directory (readable by you alone) and print them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="admin")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(settings.VAR_DIR) / "local-credentials.json"
        saved: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
        users = get_user_model()
        username = options["username"]
        user = users.objects.filter(username=username).first()
        if (
            user is None
            or "admin_password" not in saved
            or not user.check_password(saved["admin_password"])
        ):
            saved["admin_password"] = secrets.token_urlsafe(12)
            user = user or users(username=username, email=f"{username}@localhost")
            user.is_staff = user.is_superuser = True
            user.set_password(saved["admin_password"])
            user.save()
        key_prefix = saved.get("operator_key", "fo__").split("_")[1]
        if not ApiKey.objects.filter(prefix=key_prefix, revoked_at__isnull=True).exists():
            _, saved["operator_key"] = apikey_create(
                tenant=None, scopes=["ingest", "read", "manage"], name="local operator"
            )
        saved["admin_username"] = username
        path.write_text(json.dumps(saved, indent=1))
        os.chmod(path, 0o600)
        self.stdout.write(json.dumps(saved))
