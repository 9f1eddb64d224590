from __future__ import annotations

from decimal import Decimal

import pytest

from finops.fields import ExactSum
from finops.models import ModelPrice

pytestmark = pytest.mark.django_db


def test_sums_of_money_keep_every_digit_on_every_database() -> None:
    # 0.1 + 0.2 is not 0.3 in floating point, and 18-place prices lose digits in a float.
    for i, value in enumerate(["0.1", "0.2", "15.000020000000000002", "0.000000000000000001"]):
        ModelPrice.objects.create(model=f"m{i}", input_per_million=Decimal(value),
                                  output_per_million=Decimal(1), provider="sum-test")  # fmt: skip
    total = ModelPrice.objects.filter(provider="sum-test").aggregate(
        total=ExactSum("input_per_million")
    )["total"]
    assert total == Decimal("15.300020000000000003")
    grouped = dict(
        ModelPrice.objects.filter(provider="sum-test")
        .values_list("output_per_million")
        .annotate(total=ExactSum("input_per_million"))
    )
    assert grouped == {Decimal(1): Decimal("15.300020000000000003")}
    assert ModelPrice.objects.filter(provider="none").aggregate(
        t=ExactSum("input_per_million")
    ) == {"t": None}
