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

from finops.money import decimal_string, round_money

from .models import Statement, StatementLine


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


def line_json(line: StatementLine) -> dict[str, Any]:
    return {
        "kind": line.kind,
        "feature": line.feature or None,
        "model": line.model or None,
        "token_kind": line.token_kind or None,
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
               "model", "token_kind", "batch", "quantity", "unit_price_per_million", "amount",
               "amount_exact", "currency", "description")  # fmt: skip


def statement_csv(statement: Statement) -> str:
    """One row per line, then one `total` row: the amounts above it add up to it."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    head = [statement.number, statement.tenant.slug, statement.period_label]
    for line in statement.lines.order_by("position"):
        writer.writerow(
            [*head, line.position, line.kind, f"{line.period:%Y-%m}", csv_text(line.feature),
             csv_text(line.model), line.token_kind, "true" if line.batch else "false",
             "" if line.quantity is None else line.quantity,
             decimal_string(line.unit_price) or "", decimal_string(line.amount),
             decimal_string(line.amount_exact), statement.currency,
             csv_text(line.description)]
        )  # fmt: skip
    writer.writerow(
        [*head, "", "total", statement.period_label, "", "", "", "", "", "",
         decimal_string(statement.total), decimal_string(statement.total_exact),
         statement.currency, f"Total ({statement.status})"]
    )  # fmt: skip
    return out.getvalue()


def _money(amount: Decimal, currency: str) -> str:
    return f"{round_money(amount, currency):,} {currency}"


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
                _money(line.amount, currency),
            ]
        )
    if len(rows) == 1:
        rows.append(
            ["", Paragraph("No usage this month.", small), "", "", _money(Decimal(0), currency)]
        )
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
    story += [table, Spacer(1, 5 * mm)]
    totals = [
        ["Usage", _money(statement.subtotal, currency)],
        ["Adjustments (earlier months)", _money(statement.adjustments, currency)],
        ["Markup", _money(statement.markup, currency)],
        ["Total", _money(statement.total, currency)],
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
    by_feature: dict[str, Decimal] = {}
    for line in lines:
        if line.kind != StatementLine.Kind.MARKUP:
            name = line.feature or "(no feature)"
            by_feature[name] = by_feature.get(name, Decimal(0)) + line.amount
    feature_rows = [["Feature", "Amount", "Share"]]
    billable = sum(by_feature.values(), Decimal(0))
    for name, amount in sorted(by_feature.items(), key=lambda kv: -kv[1]):
        share = f"{amount * 100 / billable:.1f}%" if billable else ""
        feature_rows.append([Paragraph(escape(name), small), _money(amount, currency), share])
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
