from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone
from django.utils.module_loading import import_string

from finops.management.commands.import_prices import parse_instant


class Command(BaseCommand):
    help = (
        "Run every periodic job once, in process, in the order of CELERY_BEAT_SCHEDULE, "
        "as if the clock read --now."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--now", help="ISO 8601 instant (default: now).")

    def handle(self, *args: Any, **options: Any) -> None:
        now = parse_instant(options["now"], "--now") if options["now"] else timezone.now()
        for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
            task = import_string(entry["task"])
            self.stdout.write(f"{name}: {task(now=now.isoformat())}")
