"""Model fields of the core."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Aggregate, Func
from django.db.models.functions import Cast
from django.db.models.lookups import GreaterThanOrEqual, LessThanOrEqual

from .money import EXACT


class ExactDecimalField(models.DecimalField):
    """A `DecimalField` that stays exact on every database.

    PostgreSQL stores it as `numeric(max_digits, decimal_places)`, as Django would.
    Django's SQLite backend keeps only 15 significant digits of a decimal (it goes
    through a float), which would round prices like `15.000020000000002` and long
    costs; here SQLite stores the exact decimal text instead. Sums of such columns must
    then be done in Python or on PostgreSQL, never by SQLite's floating-point `SUM`.
    """

    def get_internal_type(self) -> str:
        # Not "DecimalField": that name makes the SQLite backend add its float converter.
        return "ExactDecimalField"

    def db_type(self, connection: BaseDatabaseWrapper) -> str:
        if connection.vendor == "sqlite":
            return "text"
        return f"numeric({self.max_digits}, {self.decimal_places})"

    def rel_db_type(self, connection: BaseDatabaseWrapper) -> str:
        return self.db_type(connection)

    def get_db_prep_value(
        self, value: Any, connection: BaseDatabaseWrapper, prepared: bool = False
    ) -> Any:
        if not prepared:
            value = self.get_prep_value(value)
        if value is None:
            return None
        value = self.to_python(value)
        if connection.vendor == "sqlite":
            return format(value, "f")
        return value

    def from_db_value(self, value: Any, expression: Any, connection: BaseDatabaseWrapper) -> Any:
        if value is None or isinstance(value, Decimal):
            return value
        # Text from SQLite; a float only from SQLite arithmetic such as SUM().
        return Decimal(value if isinstance(value, str) else repr(value))


def as_number(field_name: str) -> Cast:
    """A column of `ExactDecimalField` as a number, for CHECK constraints: on SQLite the
    column is text, which compares as text unless cast."""
    return Cast(field_name, models.DecimalField(max_digits=48, decimal_places=30))


def at_least(field_name: str, bound: int) -> GreaterThanOrEqual:
    return GreaterThanOrEqual(as_number(field_name), bound)


def at_most(field_name: str, bound: int) -> LessThanOrEqual:
    return LessThanOrEqual(as_number(field_name), bound)


class TransactionId(Func):
    """The id of the inserting transaction, as a column default.

    On PostgreSQL, `pg_current_xact_id()` (64 bits, never wraps). Consumers read rows
    whose id lies below the snapshot's xmin, where every transaction has finished, so a
    slow transaction can never commit rows behind a consumer's watermark. SQLite runs one
    writer at a time, so there row ids are already in commit order and this is 0.
    """

    output_field = models.BigIntegerField()
    template = "0"

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list]:
        return "(pg_current_xact_id()::text::bigint)", []


class ExactSum(Aggregate):
    """SUM of an `ExactDecimalField`, exact on every database.

    PostgreSQL sums numeric exactly. On SQLite the column is decimal text and SQLite's
    SUM would go through floats, so it calls `decimal_sum`, registered on each SQLite
    connection by `register_sqlite_functions`.
    """

    function = "SUM"
    name = "ExactSum"

    def __init__(self, expression: Any, **extra: Any) -> None:
        extra.setdefault("output_field", ExactDecimalField(max_digits=48, decimal_places=30))
        super().__init__(expression, **extra)

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list]:
        return super().as_sql(compiler, connection, function="decimal_sum", **extra)


class _DecimalSum:
    def __init__(self) -> None:
        self.total: Decimal | None = None

    def step(self, value: Any) -> None:
        if value is not None:
            self.total = EXACT.add(self.total or Decimal(0), Decimal(str(value)))

    def finalize(self) -> str | None:
        return None if self.total is None else format(self.total, "f")


def register_sqlite_functions(sender: Any, connection: Any, **kwargs: Any) -> None:
    if connection.vendor == "sqlite":
        connection.connection.create_aggregate("decimal_sum", 1, _DecimalSum)
