"""The quarterly FinOps report as a PDF: the KPIs, two charts (cost per feature, savings
by lever) and the tables of the admin page."""

from __future__ import annotations

import io
from decimal import Decimal
from typing import Any
from xml.sax.saxutils import escape

from django.conf import settings
from django.http import HttpResponse
from reportlab.graphics.charts.barcharts import HorizontalBarChart
from reportlab.graphics.shapes import Drawing
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from finops.money import money_format

from .quarterly import SHORT_LABELS, QuarterlyReport, decision_json

HEADER = colors.HexColor("#e8ecf1")
STRIPE = colors.HexColor("#f7f8fa")
BLUE, GREEN = colors.HexColor("#4e79a7"), colors.HexColor("#59a14f")


def quarterly_download(report: QuarterlyReport) -> HttpResponse:
    response = HttpResponse(quarterly_pdf(report), content_type="application/pdf")
    response["Content-Disposition"] = (
        f'attachment; filename="finops-quarterly-{report.quarter.label}.pdf"'
    )
    return response


def _usd(value: Any) -> str:
    return "-" if value is None else money_format(Decimal(value), "USD") or "-"


def _pct(value: Any) -> str:
    return "-" if value is None else f"{Decimal(value) * 100:.1f}%"


def _table(rows: list[list[Any]], widths: list[float], numeric_from: int = 1) -> Table:
    table = Table(rows, colWidths=[w * mm for w in widths], repeatRows=1, hAlign="LEFT")
    table.setStyle(
        TableStyle(
            [
                ("FONTSIZE", (0, 0), (-1, -1), 7.5),
                ("BACKGROUND", (0, 0), (-1, 0), HEADER),
                ("ALIGN", (numeric_from, 0), (-1, -1), "RIGHT"),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LINEBELOW", (0, 0), (-1, 0), 0.5, colors.grey),
                ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, STRIPE]),
            ]
        )
    )
    return table


def _bars(labels: list[str], series: list[list[float]], fills: list[Any]) -> Drawing | Spacer:
    """A horizontal bar chart (ReportLab's own) of one or two series; nothing to draw,
    no chart."""
    if not labels:
        return Spacer(1, 2 * mm)
    height = 24 + 16 * max(len(labels), 1)
    drawing = Drawing(180 * mm, height)
    chart = HorizontalBarChart()
    chart.x, chart.y = 60 * mm, 12
    chart.width, chart.height = 110 * mm, height - 20
    # ReportLab draws with floats: the chart is a picture, the tables carry the amounts.
    chart.data = series
    chart.categoryAxis.categoryNames = [label[:40] for label in labels]
    chart.categoryAxis.labels.fontSize = 7
    chart.valueAxis.labels.fontSize = 7
    chart.valueAxis.valueMin = 0
    for index, fill in enumerate(fills):
        chart.bars[index].fillColor = fill
    drawing.add(chart)
    return drawing


def _kpi_table(report: QuarterlyReport) -> Table:
    k = report.kpis()
    rows = [
        ["Figure", "Value"],
        ["Total spend", _usd(k["total_spend"])],
        ["Previous quarter (same days)", _usd(k["previous_quarter_spend"])],
        ["Change", _pct(k["change"])],
        ["Cost per user", _usd(k["cost_per_user"])],
        ["Provider cache hit rate (cached input share)", _pct(k["provider_cache_hit_rate"])],
        ["Application cache hit rate", _pct(k["app_cache_hit_rate"])],
        ["Routing saved", _usd(k["routing_saved"])],
        ["Batch saved", _usd(k["batch_saved"])],
        ["Off-peak saved", _usd(k["off_peak_saved"])],
        ["Features retired", str(k["retired_features"])],
        ["Monthly spend retirement removed", _usd(k["retirement_monthly_saving"])],
    ]
    return _table(rows, [90, 40])


def _feature_part(report: QuarterlyReport) -> list[Any]:
    features = report.features[:15]
    labels = [f["feature"] or "(no feature)" for f in features]
    chart = _bars(labels[::-1], [[float(f["cost"]) for f in features][::-1]], [BLUE])
    rows = [["Feature", "Cost", "Share", "Users", "Cost per user"]] + [
        [label, _usd(f["cost"]), _pct(f["share"]), f["users"] or "-", _usd(f["cost_per_user"])]
        for label, f in zip(labels, features, strict=True)
    ]
    return [chart, _table(rows, [60, 30, 20, 20, 30])]


def _lever_part(report: QuarterlyReport) -> list[Any]:
    levers = [lever for lever in report.savings.levers if lever.saved or lever.potential_monthly]
    labels = [SHORT_LABELS.get(lever.lever, lever.label) for lever in levers][::-1]
    saved = [float(max(lever.saved, Decimal(0))) for lever in levers][::-1]
    potential = [float(lever.potential_monthly) for lever in levers][::-1]
    rows = [["Lever", "Saved in the quarter", "More per month"]] + [
        [lever.label, _usd(lever.saved), _usd(lever.potential_monthly)]
        for lever in report.savings.levers
    ]
    styles = getSampleStyleSheet()
    key = Paragraph("Green: saved in the quarter. Blue: more per month, if taken.",
                    ParagraphStyle("key", parent=styles["Normal"], fontSize=7.5))  # fmt: skip
    return [_bars(labels, [saved, potential], [GREEN, BLUE]), key, _table(rows, [90, 35, 35])]


def _recommendations(report: QuarterlyReport, small: ParagraphStyle) -> Table:
    rows: list[list[Any]] = [["Lever", "Action", "Monthly saving"]]
    rows += [
        [r.lever, Paragraph(escape(r.text), small), _usd(r.monthly_saving)]
        for r in report.savings.recommendations
    ] or [["", "None clears its break-even.", ""]]
    return _table(rows, [25, 120, 30], numeric_from=2)


def _economics(report: QuarterlyReport) -> list[Any]:
    data = report.economics.as_json()
    rows = [["Tier", "Tenants", "Revenue", "Cost", "Margin"]] + [
        [t["tier"], t["tenants"], _usd(t["revenue"]), _usd(t["cost"]), _usd(t["margin"])]
        for t in data["tiers"]
    ]
    pairs = data["cross_subsidy"]["pairs"]
    return [_table(rows, [35, 20, 35, 35, 35]),
            *[Paragraph(escape(pair["statement"]) + ".") for pair in pairs]]  # fmt: skip


def _log(report: QuarterlyReport) -> Table:
    rows: list[list[Any]] = [
        ["Decided", "Lever", "Feature", "Expected / month", "Realized / month"]
    ]
    for decision in report.decisions:
        j = decision_json(decision)
        rows.append([j["decided_on"], j["lever"], j["feature"], _usd(j["expected_monthly_saving"]),
                     _usd(j["realized_monthly_saving"])])  # fmt: skip
    if len(rows) == 1:
        rows.append(["", "", "No decision recorded.", "", ""])
    return _table(rows, [22, 28, 50, 35, 35], numeric_from=3)


def quarterly_pdf(report: QuarterlyReport) -> bytes:
    styles = getSampleStyleSheet()
    small = ParagraphStyle("small", parent=styles["Normal"], fontSize=7.5, leading=9)
    h2 = styles["Heading2"]
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer, pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm, topMargin=15 * mm,
        bottomMargin=15 * mm, title=f"Quarterly FinOps report {report.quarter.label}",
        author=settings.FINOPS_OPERATOR_NAME,
    )  # fmt: skip
    story: list[Any] = [
        Paragraph(f"{escape(settings.FINOPS_OPERATOR_NAME)}: quarterly FinOps report",
                  styles["Title"]),
        Paragraph(f"<b>{report.quarter.label}</b>: {report.start:%Y-%m-%d} to "
                  f"{report.end:%Y-%m-%d} (UTC, whole days). Amounts in USD, priced with "
                  "the bill's own price rows.", styles["Normal"]),
        *[Paragraph(escape(note), small) for note in report.notes],
        Spacer(1, 4 * mm), _kpi_table(report),
        Paragraph("Cost per feature", h2), *_feature_part(report),
        Paragraph("Savings by lever", h2), *_lever_part(report),
        Paragraph("Recommendations", h2), _recommendations(report, small),
        Paragraph("Margin by tier", h2), *_economics(report),
        Paragraph("Optimization log", h2), _log(report),
    ]  # fmt: skip
    doc.build(story)
    return buffer.getvalue()
