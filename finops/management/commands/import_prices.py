from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from finops.pricing import load_price_file, prices_import


def parse_instant(value: str, option: str) -> datetime:
    try:
        parsed = parse_datetime(value)
    except ValueError:
        parsed = None
    if parsed is None:
        raise CommandError(f"{option}: '{value}' is not an ISO 8601 date-time.")
    if timezone.is_naive(parsed):
        raise CommandError(f"{option}: '{value}' needs a UTC offset (e.g. Z or +00:00).")
    return parsed


class Command(BaseCommand):
    help = (
        "Import a LiteLLM model_prices_and_context_window.json file. A model's first price "
        "applies to all time; a changed price becomes a new row from --effective-from."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path")
        parser.add_argument(
            "--effective-from", help="ISO 8601 instant a changed price starts (default: now)."
        )
        parser.add_argument(
            "--show-skipped", action="store_true", help="List every skipped entry with its reason."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        effective_from = (
            parse_instant(options["effective_from"], "--effective-from")
            if options["effective_from"]
            else timezone.now()
        )
        try:
            data = load_price_file(options["path"])
        except OSError as exc:
            raise CommandError(f"Cannot read {options['path']}: {exc.strerror}") from None
        except ValueError as exc:
            raise CommandError(f"{options['path']} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise CommandError("Expected a JSON object of model name -> price entry.")
        result = prices_import(data=data, effective_from=effective_from)
        reasons: dict[str, int] = {}
        for reason in result.skipped.values():
            key = reason.split(" (")[0]
            reasons[key] = reasons.get(key, 0) + 1
        if options["show_skipped"]:
            for name, reason in sorted(result.skipped.items()):
                self.stdout.write(f"skipped {name}: {reason}")
        self.stdout.write(
            f"{len(data)} entries: {result.created} new models, {result.changed} changed prices "
            f"(from {effective_from.isoformat()}), {result.unchanged} unchanged, "
            f"{len(result.skipped)} skipped."
        )
        for reason, count in sorted(reasons.items(), key=lambda kv: -kv[1]):
            self.stdout.write(f"  skipped {count}: {reason}")
