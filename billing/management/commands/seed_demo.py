from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from billing.demo import demo_seed


class Command(BaseCommand):
    help = (
        "Create demo tenants (one per tier), features and prompt templates, and post "
        "30 days of realistic traffic across several models. Safe to run again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, default=30)

    def handle(self, *args: Any, **options: Any) -> None:
        days = options["days"]
        if not 1 <= days <= 35:
            self.stderr.write("--days must be 1..35 (the backfill window).")
            raise SystemExit(2)
        result = demo_seed(days=days)
        self.stdout.write(
            f"Demo data: {result.accepted} events stored, {result.duplicates} already there, "
            f"{result.rejected} rejected."
        )
