from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from finops.money import decimal_string
from ingestion.selectors import event_model_list
from statements.services import reprice_open_periods


class Command(BaseCommand):
    help = (
        "Price again, at the price in force at each event's time, the events of every month "
        "whose statement is not final (after a price import or an upgrade of the pricing "
        "model). Final statements never change."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--model",
            action="append",
            dest="models",
            help="Only this model (repeatable). Default: every model with events.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        models = set(options["models"] or [])
        if not models:
            models = event_model_list()
        result = reprice_open_periods(models=models, now=timezone.now())
        self.stdout.write(
            f"{len(models)} model(s): {result.events} event(s) re-priced, cost "
            f"{decimal_string(result.before)} -> {decimal_string(result.after)} "
            f"(difference {decimal_string(result.delta)})."
        )
