"""Server-side SVG charts: the geometry of bar charts, for templates to draw.

The amounts a chart shows stay `Decimal`; only the drawing coordinates are floats. Names
(features, models, tiers) go to the templates as they are: Django escapes them there.
The templates are `charts/columns.html` (stacked columns) and `charts/bars.html`
(horizontal bars).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_CEILING, Decimal

from .money import money_format

PALETTE = ("#3b6ea5", "#e07b39", "#5aa469", "#c44e52", "#8172b3", "#937860", "#da8bc3",
           "#8c8c8c", "#ccb974", "#64b5cd")  # fmt: skip
# The bucket of the series past the top ones; in brackets, so no client's name (feature
# keys are free text) can be taken for it.
OTHER = "(other)"
OTHER_COLOR = "#b8bec6"
NO_NAME = "(none)"

WIDTH = 720
_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 8, 10, 26


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    color: str
    title: str

    def __post_init__(self) -> None:
        # Two places are plenty on screen and keep the SVG short.
        for name in ("x", "y", "width", "height"):
            object.__setattr__(self, name, round(getattr(self, name), 2))


@dataclass(frozen=True, slots=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True, slots=True)
class LegendItem:
    name: str
    color: str
    total: Decimal


@dataclass(frozen=True, slots=True)
class Chart:
    """Stacked columns over a y axis of amounts."""

    width: int
    height: int
    bars: list[Bar]
    legend: list[LegendItem]
    max_cost: Decimal  # the tallest column
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    plot_left: int
    plot_right: int
    plot_top: int
    plot_bottom: int
    unit: str
    first_day: str = ""
    last_day: str = ""


@dataclass(frozen=True, slots=True)
class BarRow:
    label: str
    y: float
    segments: list[Bar]
    value_label: str
    end_x: float  # where the bar ends, for its value label
    text_y: float  # the baseline of the row's texts


@dataclass(frozen=True, slots=True)
class BarChart:
    """Horizontal bars, one a row, each made of one or more segments."""

    width: int
    height: int
    rows: list[BarRow]
    legend: list[LegendItem]
    bar_left: int
    bar_height: float


def colors_for(names: Sequence[str]) -> dict[str, str]:
    return {name: OTHER_COLOR if name == OTHER else PALETTE[i % len(PALETTE)]
            for i, name in enumerate(names)}  # fmt: skip


def top_series(totals: Mapping[str, Decimal], top: int) -> tuple[list[str], dict[str, str]]:
    """The `top` largest series by total (the rest folded into OTHER), and where each
    series goes."""
    ranked = sorted(totals, key=lambda name: (-totals[name], name))
    kept = ranked if len(ranked) <= top else ranked[: top - 1]
    bucket = {name: name if name in kept else OTHER for name in ranked}
    return kept + ([OTHER] if len(kept) < len(ranked) else []), bucket


def axis_step(top: Decimal, ticks: int = 4) -> Decimal:
    """A round step (1, 2 or 5 times a power of ten) that covers `top` in about `ticks`."""
    if top <= 0:
        return Decimal(1)
    raw = top / ticks
    power = Decimal(1).scaleb(raw.adjusted())
    for multiple in (1, 2, 5, 10):
        if power * multiple >= raw:
            return power * multiple
    return power * 10  # pragma: no cover (10 times the power always covers it)


def amount_label(value: Decimal, step: Decimal) -> str:
    """An axis label: as many places as the step needs, at least two below one."""
    if step >= 1:
        return f"{value:,.0f}"
    places = max(2, -step.normalize().as_tuple().exponent)
    return f"{value:,.{places}f}"


def stacked_columns(
    *,
    columns: Sequence[tuple[str, str]],
    amounts: Mapping[tuple[int, str], Decimal],
    series: Sequence[str],
    colors: Mapping[str, str],
    unit: str,
    height: int = 240,
) -> Chart:
    """One column per (axis label, full label), stacked by `series` from the bottom up;
    `amounts` is keyed by (column index, series)."""
    count = max(len(columns), 1)
    plot_w, plot_h = WIDTH - _LEFT - _RIGHT, height - _TOP - _BOTTOM
    per_column = [sum((amounts.get((i, s), Decimal(0)) for s in series), Decimal(0))
                  for i in range(len(columns))]  # fmt: skip
    tallest = max(per_column, default=Decimal(0))
    step = axis_step(tallest)
    scale = step * (tallest / step).to_integral_value(rounding=ROUND_CEILING) or step
    slot = plot_w / count
    gap = min(2.0, slot * 0.15)
    bars = []
    for i, (_, full_label) in enumerate(columns):
        y = float(_TOP + plot_h)
        for name in series:
            amount = amounts.get((i, name), Decimal(0))
            if not amount:
                continue
            h = float(amount / scale) * plot_h
            y -= h
            bars.append(Bar(_LEFT + i * slot + gap, y, slot - 2 * gap, h, colors[name],
                            f"{full_label} {name}: {money_format(amount, unit)}"))  # fmt: skip
    y_ticks = []
    value = Decimal(0)
    while value <= scale:
        y = round(_TOP + plot_h - float(value / scale) * plot_h, 2)
        y_ticks.append(Tick(y, amount_label(value, step)))
        value += step
    every = -(-len(columns) // 10) or 1
    x_ticks = [Tick(round(_LEFT + (i + 0.5) * slot, 2), label)
               for i, (label, _) in enumerate(columns) if i % every == 0]  # fmt: skip
    totals = {s: sum((amounts.get((i, s), Decimal(0)) for i in range(len(columns))), Decimal(0))
              for s in series}  # fmt: skip
    legend = [LegendItem(s, colors[s], totals[s]) for s in series if totals[s]]
    return Chart(WIDTH, height, bars, legend, tallest, y_ticks, x_ticks, _LEFT, WIDTH - _RIGHT,
                 _TOP, _TOP + plot_h, unit,
                 columns[0][1] if columns else "", columns[-1][1] if columns else "")  # fmt: skip


def daily_stacked_chart(
    *, days: Sequence[date], amounts: Mapping[tuple[date, str], Decimal], unit: str, top: int = 7
) -> Chart:
    """Daily amounts stacked by series (features, usually): the largest `top` series by
    total over the days, the rest as OTHER; an empty name is shown as NO_NAME."""
    index = {day: i for i, day in enumerate(days)}
    totals: dict[str, Decimal] = {}
    for (day, name), amount in amounts.items():
        if day in index:
            totals[name or NO_NAME] = totals.get(name or NO_NAME, Decimal(0)) + amount
    series, bucket = top_series(totals, top)
    by_column: dict[tuple[int, str], Decimal] = {}
    for (day, name), amount in amounts.items():
        if day in index:
            key = (index[day], bucket[name or NO_NAME])
            by_column[key] = by_column.get(key, Decimal(0)) + amount
    columns = [(f"{d:%m-%d}", f"{d:%Y-%m-%d}") for d in days]
    return stacked_columns(columns=columns, amounts=by_column, series=series,
                           colors=colors_for(series), unit=unit)  # fmt: skip


def horizontal_bars(
    *,
    rows: Sequence[tuple[str, Sequence[tuple[str, Decimal, str]], str]],
    colors: Mapping[str, str],
    scale: Decimal | None = None,
    label_width: int = 210,
    row_height: int = 30,
) -> BarChart:
    """One bar per (label, segments, value label); a segment is (series, amount, title).
    Bars are scaled to `scale`, or to the longest bar."""
    longest = max((sum((a for _, a, _ in segs), Decimal(0)) for _, segs, _ in rows),
                  default=Decimal(0))  # fmt: skip
    scale = scale or longest or Decimal(1)
    bar_w = WIDTH - label_width - 150
    bar_h = row_height * 0.65
    out = []
    totals: dict[str, Decimal] = {}
    for r, (label, segments, value_label) in enumerate(rows):
        y = 6 + r * row_height
        x = float(label_width)
        bars = []
        for name, amount, title in segments:
            totals[name] = totals.get(name, Decimal(0)) + amount
            if not amount:
                continue
            w = float(amount / scale) * bar_w
            bars.append(Bar(x, y, w, bar_h, colors[name], title))
            x += w
        out.append(BarRow(label, y, bars, value_label, round(x, 2), round(y + bar_h * 0.72, 2)))
    legend = [LegendItem(name, colors[name], total) for name, total in totals.items()]
    return BarChart(WIDTH, 12 + len(rows) * row_height, out, legend, label_width, bar_h)
