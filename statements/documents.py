"""A statement as JSON, CSV and PDF."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import Any
from xml.sax.saxutils import escape

from django.conf import settings
from django.http import HttpResponse
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from finops.money import decimal_string, money_format, round_money

from .models import Statement, StatementLine
from .services import rate_label


def statement_download(statement: Statement, kind: str) -> HttpResponse:
    """The statement's PDF or CSV as an attachment named by its number."""
    if kind == "pdf":
        response = HttpResponse(statement_pdf(statement), content_type="application/pdf")
    else:
        response = HttpResponse(statement_csv(statement), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{statement.number}.{kind}"'
    return response


def csv_text(value: str) -> str:
    """Text a spreadsheet will not run as a formula (feature and model names come from
    events, which tenants post)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def line_rate(line: StatementLine) -> str | None:
    """What a line charges for, readably ("batch output", "input, above 200k"); None for
    the lines of no token kind (markup, rounding)."""
    if not line.token_kind:
        return None
    return rate_label(line.token_kind, line.service_tier, line.above_tokens, line.off_peak)


def csv_amount(amount: Decimal, currency: str) -> str:
    """A rounded amount with every place of the currency's minor unit: `17.00`, JPY
    `1700`, KWD `1.250` (a spreadsheet reads `17` as a count, not money)."""
    rounded = round_money(amount, currency)
    return format(rounded.copy_abs() if not rounded else rounded, "f")  # never "-0.00"


def line_json(line: StatementLine) -> dict[str, Any]:
    return {
        "kind": line.kind,
        "feature": line.feature or None,
        "model": line.model or None,
        "token_kind": line.token_kind or None,
        "rate": line_rate(line),
        "service_tier": line.service_tier,
        "above_tokens": line.above_tokens,
        "off_peak": line.off_peak,
        "batch": line.batch,
        "quantity": line.quantity,
        "unit_price": decimal_string(line.unit_price),
        "amount": decimal_string(line.amount),
        "amount_exact": decimal_string(line.amount_exact),
        "period": f"{line.period:%Y-%m}",
        "description": line.description,
    }


def statement_json(statement: Statement, *, lines: bool = True) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": statement.id,
        "tenant": statement.tenant.slug,
        "period": statement.period_label,
        "number": statement.number,
        "status": statement.status,
        "currency": statement.currency,
        "subtotal": decimal_string(statement.subtotal),
        "markup": decimal_string(statement.markup),
        "adjustments": decimal_string(statement.adjustments),
        "total": decimal_string(statement.total),
        "total_exact": decimal_string(statement.total_exact),
        "content_hash": statement.content_hash or None,
        "finalized_at": statement.finalized_at.isoformat() if statement.finalized_at else None,
    }
    if lines:
        data["lines"] = [line_json(line) for line in statement.lines.order_by("position")]
    return data


CSV_COLUMNS = ("number", "tenant", "statement_period", "position", "kind", "period", "feature",
               "model", "token_kind", "batch", "service_tier", "above_tokens", "off_peak",
               "rate", "quantity", "unit_price_per_million", "amount", "amount_exact",
               "currency", "description")  # fmt: skip


def _flag(value: bool) -> str:
    return "true" if value else "false"


def statement_csv(statement: Statement) -> str:
    """One row per line, then one `total` row: the amounts above it add up to it.

    `amount` is rounded to the currency's minor unit and written with all its places;
    `unit_price_per_million` (per 1M queries on a query line) and `amount_exact` stay
    exact."""
    currency = statement.currency
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, restval="", lineterminator="\r\n")
    writer.writeheader()
    head = {"number": statement.number, "tenant": statement.tenant.slug,
            "statement_period": statement.period_label, "currency": currency}  # fmt: skip
    for line in statement.lines.order_by("position"):
        writer.writerow(
            {**head, "position": line.position, "kind": line.kind,
             "period": f"{line.period:%Y-%m}", "feature": csv_text(line.feature),
             "model": csv_text(line.model), "token_kind": line.token_kind,
             "batch": _flag(line.batch), "service_tier": line.service_tier,
             "above_tokens": line.above_tokens, "off_peak": _flag(line.off_peak),
             "rate": line_rate(line) or "",
             "quantity": "" if line.quantity is None else line.quantity,
             "unit_price_per_million": decimal_string(line.unit_price) or "",
             "amount": csv_amount(line.amount, currency),
             "amount_exact": decimal_string(line.amount_exact),
             "description": csv_text(line.description)}
        )  # fmt: skip
    writer.writerow(
        {**head, "kind": "total", "period": statement.period_label,
         "amount": csv_amount(statement.total, currency),
         "amount_exact": decimal_string(statement.total_exact),
         "description": f"Total ({statement.status})"}
    )  # fmt: skip
    return out.getvalue()


def statement_pdf(statement: Statement) -> bytes:
    """A printable statement: who bills whom for what, every line, the totals, and the
    cost by feature."""
    currency = statement.currency
    lines = list(statement.lines.order_by("position"))
    styles = getSampleStyleSheet()
    small = ParagraphStyle("small", parent=styles["Normal"], fontSize=7.5, leading=9)
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=15 * mm,
        bottomMargin=15 * mm,
        title=f"Statement {statement.number}",
        author=settings.FINOPS_OPERATOR_NAME,
    )
    status = "FINAL" if statement.status == Statement.Status.FINALIZED else "DRAFT"
    story: list[Any] = [
        Paragraph(
            f"{escape(settings.FINOPS_OPERATOR_NAME)}: chargeback statement", styles["Title"]
        ),
        Paragraph(
            f"<b>{statement.number}</b> ({status})<br/>"
            f"Tenant: {escape(statement.tenant.name or statement.tenant.slug)} "
            f"({escape(statement.tenant.slug)})<br/>"
            f"Period: {statement.period_label} (UTC)<br/>Currency: {currency}",
            styles["Normal"],
        ),
        Spacer(1, 6 * mm),
    ]
    rows: list[list[Any]] = [["#", "Description", "Quantity", "Unit price / 1M", "Amount"]]
    for line in lines:
        rows.append(
            [
                str(line.position),
                Paragraph(escape(line.description), small),
                "" if line.quantity is None else f"{line.quantity:,}",
                "" if line.unit_price is None else decimal_string(line.unit_price),
                money_format(line.amount, currency),
            ]
        )
    if len(rows) == 1:
        no_usage = Paragraph("No usage this month.", small)
        rows.append(["", no_usage, "", "", money_format(Decimal(0), currency)])
    table = Table(rows, colWidths=[10 * mm, 95 * mm, 25 * mm, 25 * mm, 25 * mm], repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("FONTSIZE", (0, 0), (-1, -1), 7.5),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8ecf1")),
                ("ALIGN", (2, 0), (-1, -1), "RIGHT"),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LINEBELOW", (0, 0), (-1, 0), 0.5, colors.grey),
                ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#f7f8fa")]),
            ]
        )
    )
    story.append(table)
    if any(line.token_kind == "query" for line in lines):
        story.append(Paragraph("Unit prices are per 1M tokens; queries, per 1M queries.", small))
    story.append(Spacer(1, 5 * mm))
    totals = [
        ["Usage", money_format(statement.subtotal, currency)],
        ["Adjustments (earlier months)", money_format(statement.adjustments, currency)],
        ["Markup", money_format(statement.markup, currency)],
        ["Total", money_format(statement.total, currency)],
    ]
    totals_table = Table(totals, colWidths=[60 * mm, 35 * mm], hAlign="RIGHT")
    totals_table.setStyle(
        TableStyle(
            [
                ("ALIGN", (1, 0), (1, -1), "RIGHT"),
                ("FONTNAME", (0, -1), (-1, -1), "Helvetica-Bold"),
                ("LINEABOVE", (0, -1), (-1, -1), 0.75, colors.black),
            ]
        )
    )
    story += [totals_table, Spacer(1, 6 * mm), Paragraph("Cost by feature", styles["Heading3"])]
    # Exact amounts: a rounding line (no token kind, exactly 0) belongs to no feature.
    by_feature: dict[str, Decimal] = {}
    for line in lines:
        if line.kind != StatementLine.Kind.MARKUP and line.token_kind:
            name = line.feature or "(no feature)"
            by_feature[name] = by_feature.get(name, Decimal(0)) + line.amount_exact
    feature_rows = [["Feature", "Amount", "Share"]]
    billable = sum(by_feature.values(), Decimal(0))
    for name, amount in sorted(by_feature.items(), key=lambda kv: -kv[1]):
        share = f"{amount * 100 / billable:.1f}%" if billable else ""
        feature_rows.append([Paragraph(escape(name), small), money_format(amount, currency), share])
    feature_table = Table(feature_rows, colWidths=[95 * mm, 35 * mm, 20 * mm], hAlign="LEFT")
    feature_table.setStyle(
        TableStyle(
            [
                ("FONTSIZE", (0, 0), (-1, -1), 8),
                ("ALIGN", (1, 0), (-1, -1), "RIGHT"),
                ("LINEBELOW", (0, 0), (-1, 0), 0.5, colors.grey),
            ]
        )
    )
    story.append(feature_table)
    if statement.content_hash:
        story += [
            Spacer(1, 6 * mm),
            Paragraph(
                f"Finalized {statement.finalized_at:%Y-%m-%d %H:%M} UTC. "
                f"Content hash (SHA-256): {statement.content_hash}",
                small,
            ),
        ]
    doc.build(story)
    return buffer.getvalue()
