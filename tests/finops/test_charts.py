"""The geometry of the server-side charts: round axis steps, the top series and the rest,
bars that stack to the column's amount."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from finops.charts import (
    OTHER,
    amount_label,
    axis_step,
    daily_stacked_chart,
    horizontal_bars,
    top_series,
)


@pytest.mark.parametrize(
    ("top", "step"),
    [("7.17", "2"), ("0.11", "0.05"), ("4", "1"), ("950", "500"), ("0.0004", "0.0001"),
     ("0", "1")],
)  # fmt: skip
def test_axis_steps_are_one_two_or_five_times_a_power_of_ten(top: str, step: str) -> None:
    assert axis_step(Decimal(top)) == Decimal(step)


def test_axis_labels_show_the_places_the_step_needs() -> None:
    assert amount_label(Decimal("1500"), Decimal("500")) == "1,500"
    assert amount_label(Decimal("0.1"), Decimal("0.05")) == "0.10"
    assert amount_label(Decimal("0.0002"), Decimal("0.0001")) == "0.0002"


def test_series_past_the_top_ones_are_folded_into_other() -> None:
    totals = {"a": Decimal(5), "b": Decimal(9), "c": Decimal(1), "d": Decimal(3)}
    assert top_series(totals, 4) == (["b", "a", "d", "c"], {k: k for k in "badc"})
    kept, bucket = top_series(totals, 3)
    assert kept == ["b", "a", OTHER]
    assert (bucket["d"], bucket["c"], bucket["b"]) == (OTHER, OTHER, "b")


def test_a_daily_chart_stacks_each_day_to_its_amount() -> None:
    days = [date(2026, 11, 1) + timedelta(days=i) for i in range(3)]
    amounts = {
        (days[0], "chat"): Decimal("1.50"),
        (days[0], ""): Decimal("0.50"),
        (days[2], "chat"): Decimal("4"),
        (date(2026, 10, 1), "chat"): Decimal(100),  # outside the days: not drawn
    }
    chart = daily_stacked_chart(days=days, amounts=amounts, unit="USD")
    assert chart.max_cost == Decimal(4)
    assert [(item.name, item.total) for item in chart.legend][:1] == [("chat", Decimal("5.50"))]
    assert [tick.label for tick in chart.y_ticks] == ["0", "1", "2", "3", "4"]
    first_day = [bar for bar in chart.bars if bar.title.startswith("2026-11-01")]
    assert len(first_day) == 2 and "(none): 0.50 USD" in first_day[1].title
    tallest = [bar for bar in chart.bars if bar.title.startswith("2026-11-03")][0]
    assert tallest.y == chart.plot_top and tallest.y + tallest.height == chart.plot_bottom
    assert sum(bar.height for bar in first_day) == pytest.approx(tallest.height / 2, abs=0.02)


def test_horizontal_bars_scale_to_the_longest_or_to_a_given_scale() -> None:
    colors = {"a": "#000", "b": "#111"}
    chart = horizontal_bars(
        rows=[("one", [("a", Decimal(2), "")], "2"), ("two", [("b", Decimal(1), "")], "1")],
        colors=colors,
    )
    first, second = (row.segments[0] for row in chart.rows)
    assert first.width == pytest.approx(2 * second.width, abs=0.02)
    half = horizontal_bars(rows=[("x", [("a", Decimal("0.5"), "")], "")], colors=colors,
                           scale=Decimal(1))  # fmt: skip
    assert half.rows[0].segments[0].width == pytest.approx(first.width / 2, abs=0.02)
