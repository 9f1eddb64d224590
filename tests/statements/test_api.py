"""Statements over the API: list, detail, PDF and CSV; each tenant sees only its own."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from pypdf import PdfReader

from statements.models import Statement
from statements.services import statements_draft, statements_finalize
from tests.statements.test_statements import CLOSING, LAST_MONTH, post

pytestmark = pytest.mark.django_db


@pytest.fixture
def statements(operator, acme, globex) -> dict[str, Statement]:
    post(operator, 3, prefix="a")
    post(operator, 2, tenant="globex", prefix="g", model="claude-3-5-sonnet-20241022")
    statements_draft(now=CLOSING)
    statements_finalize(now=CLOSING)
    return {
        slug: Statement.objects.get(tenant__slug=slug, period=LAST_MONTH.date())
        for slug in ("acme", "globex")
    }


def test_a_statement_in_json(acme_client, statements) -> None:
    statement = statements["acme"]
    body = acme_client.get(f"/api/v1/statements/{statement.id}").json()
    assert {k: body[k] for k in ("tenant", "period", "number", "status", "currency")} == {
        "tenant": "acme",
        "period": f"{LAST_MONTH:%Y-%m}",
        "number": f"ACME-{LAST_MONTH:%Y-%m}",
        "status": "finalized",
        "currency": "USD",
    }
    assert body["content_hash"] == statement.content_hash
    assert Decimal(body["total"]) == sum(Decimal(ln["amount"]) for ln in body["lines"])
    first = body["lines"][0]
    assert set(first) >= {"kind", "feature", "model", "token_kind", "quantity", "unit_price",
                          "amount", "period"}  # fmt: skip
    assert (first["kind"], first["period"]) == ("usage", f"{LAST_MONTH:%Y-%m}")


def test_lists_filter_and_each_tenant_sees_its_own(operator, acme_client, statements) -> None:
    own = acme_client.get("/api/v1/statements").json()["results"]
    assert {s["tenant"] for s in own} == {"acme"} and len(own) == 2  # last month and this
    period = f"{LAST_MONTH:%Y-%m}"
    everyone = operator.get(f"/api/v1/statements?period={period}&status=finalized").json()
    assert {s["tenant"] for s in everyone["results"]} == {"acme", "globex"}
    one = operator.get("/api/v1/statements?tenant=globex&status=draft").json()["results"]
    assert [s["tenant"] for s in one] == ["globex"] and one[0]["status"] == "draft"
    bad = operator.get("/api/v1/statements?period=2026-13&status=open")
    assert bad.status_code == 400 and set(bad.json()) == {"period", "status"}
    assert acme_client.get("/api/v1/statements?tenant=globex").status_code == 404


@pytest.mark.parametrize("suffix", ["", "/pdf", "/csv"])
def test_another_tenants_statement_is_404(acme_client, globex_client, statements, suffix) -> None:
    theirs = statements["globex"].id
    assert acme_client.get(f"/api/v1/statements/{theirs}{suffix}").status_code == 404
    assert globex_client.get(f"/api/v1/statements/{theirs}{suffix}").status_code == 200


def test_the_csv_adds_up_to_the_total(acme_client, statements) -> None:
    statement = statements["acme"]
    response = acme_client.get(f"/api/v1/statements/{statement.id}/csv")
    assert response["Content-Type"].startswith("text/csv")
    assert f'filename="{statement.number}.csv"' in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    lines, total = rows[:-1], rows[-1]
    assert total["kind"] == "total"
    assert Decimal(total["amount"]) == statement.total
    assert sum(Decimal(r["amount"]) for r in lines) == statement.total
    assert sum(Decimal(r["amount_exact"]) for r in lines) == statement.total_exact
    assert {r["token_kind"] for r in lines} - {""} == {"input", "cached_input", "output"}


def test_the_pdf_holds_the_lines_and_the_total(acme_client, statements) -> None:
    statement = statements["acme"]
    response = acme_client.get(f"/api/v1/statements/{statement.id}/pdf")
    assert response["Content-Type"] == "application/pdf"
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(response.content)).pages)
    assert statement.number in text and "FINAL" in text
    assert f"{statement.total:,.2f} USD" in text
    assert "document_summarization / gpt-4o-2024-08-06: input\n" in text
    assert "document_summarization / gpt-4o-2024-08-06: cached input\n" in text
    assert "Cost by feature" in text and statement.content_hash in text


def test_read_scope_is_needed(make_client, acme, statements) -> None:
    ingest_only = make_client(acme, ["ingest"])
    assert ingest_only.get("/api/v1/statements").status_code == 403


def test_a_draft_pdf_says_draft(acme_client, statements) -> None:
    statements_draft(now=CLOSING + timedelta(hours=1))
    draft = Statement.objects.get(tenant__slug="acme", status="draft")
    response = acme_client.get(f"/api/v1/statements/{draft.id}/pdf")
    text = PdfReader(io.BytesIO(response.content)).pages[0].extract_text()
    assert "DRAFT" in text and "No usage this month." in text


def test_names_from_events_cannot_break_the_pdf_or_run_in_a_spreadsheet(operator, acme) -> None:
    post(operator, 1, prefix="x", feature='=HYPERLINK("http://x")', model="gpt-4o-2024-08-06")
    post(operator, 1, prefix="y", feature="<b>&broken", model="gpt-4o-2024-08-06")
    statements_draft(now=CLOSING)
    statement = Statement.objects.get(tenant=acme, period=LAST_MONTH.date())
    pdf = operator.get(f"/api/v1/statements/{statement.id}/pdf")
    text = PdfReader(io.BytesIO(pdf.content)).pages[0].extract_text()
    assert "<b>&broken" in text
    rows = list(csv.DictReader(io.StringIO(operator.get(
        f"/api/v1/statements/{statement.id}/csv").content.decode())))  # fmt: skip
    features = {r["feature"] for r in rows[:-1] if r["token_kind"]}
    assert features == {"<b>&broken", '\'=HYPERLINK("http://x")'}
    focus = operator.get(f"/api/v1/exports/focus?period={LAST_MONTH:%Y-%m}").content.decode()
    assert not any(cell.startswith("=") for row in csv.reader(io.StringIO(focus)) for cell in row)


@pytest.mark.parametrize(
    "path", ["/api/v1/statements", "/api/v1/exports/focus", "/api/v1/reconciliation"]
)
@pytest.mark.parametrize("month", ["0000-01", "9999-12", "2026-00", "26-01", "2026-1"])
def test_a_month_the_calendar_cannot_hold_is_a_field_error(operator, path, month) -> None:
    answer = operator.get(f"{path}?period={month}")
    assert answer.status_code == 400
    assert set(answer.json()) == {"period"}
