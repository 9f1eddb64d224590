from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from billing.jobs import JOBS
from finops.management.commands.import_prices import parse_instant


class Command(BaseCommand):
    help = "Run every periodic job once, in process, as if the clock read --now."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--now", help="ISO 8601 instant (default: now).")

    def handle(self, *args: Any, **options: Any) -> None:
        now = parse_instant(options["now"], "--now") if options["now"] else timezone.now()
        for name, job in JOBS:
            outcome = job(now)
            self.stdout.write(f"{name}: {outcome}")
