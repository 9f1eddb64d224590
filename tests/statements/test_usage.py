"""GET /api/v1/usage: from the rollups, exact, tenant-scoped; and it agrees with statements."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from urllib.parse import urlencode

import pytest

from billing.rollups import rollups_update
from finops.money import round_money
from statements.models import Statement
from statements.services import statements_draft, statements_finalize
from tests.statements.test_statements import CLOSING, IN_LAST_MONTH, LAST_MONTH, THIS_MONTH, post

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

MONTH_RANGE = {"from": LAST_MONTH.isoformat(), "to": THIS_MONTH.isoformat()}


@pytest.fixture
def usage(operator, acme, globex) -> None:
    post(operator, 3, prefix="a", user="alice")
    post(operator, 2, prefix="b", user="bob", feature="chat_assistant",
         model="claude-3-5-sonnet-20241022")  # fmt: skip
    post(operator, 4, tenant="globex", prefix="g", at=IN_LAST_MONTH - timedelta(days=1))
    rollups_update()


def get(client, **params):
    return client.get(f"/api/v1/usage?{urlencode(params)}")


def test_usage_by_feature_and_model_per_month(acme_client, usage) -> None:
    response = get(acme_client, **MONTH_RANGE, group_by="feature,model", granularity="month")
    assert response.status_code == 200
    rows = response.json()["results"]
    assert [(r["feature"], r["model"], r["calls"]) for r in rows] == [
        ("chat_assistant", "claude-3-5-sonnet-20241022", 2),
        ("document_summarization", "gpt-4o-2024-08-06", 3),
    ]
    gpt = rows[1]
    assert gpt["period_start"] == LAST_MONTH.isoformat()
    tokens = (gpt["input_tokens"], gpt["cached_input_tokens"], gpt["output_tokens"])
    assert tokens == (3600, 600, 900)
    assert gpt["cost"] == "0.01725"  # 3 x 0.00575, exact


def test_operators_see_every_tenant_and_tenants_only_their_own(operator, acme_client,
                                                               usage) -> None:  # fmt: skip
    rows = get(operator, **MONTH_RANGE, group_by="tenant", granularity="day").json()["results"]
    assert {r["tenant"] for r in rows} == {"acme", "globex"}
    assert len({r["period_start"] for r in rows}) == 2  # two days
    only = get(acme_client, **MONTH_RANGE, group_by="tenant", granularity="month").json()
    assert [r["tenant"] for r in only["results"]] == ["acme"]
    assert get(acme_client, **MONTH_RANGE, tenant="globex").status_code == 404
    assert get(operator, **MONTH_RANGE, tenant="globex").json()["results"][0]["calls"] == 4


def test_usage_by_user_comes_from_the_events(acme_client, usage) -> None:
    rows = get(acme_client, **MONTH_RANGE, group_by="user", granularity="month").json()
    assert {r["user"]: r["calls"] for r in rows["results"]} == {"alice": 3, "bob": 2}


def test_bad_queries_get_field_errors(acme_client, usage) -> None:
    response = get(acme_client, **{"from": (LAST_MONTH + timedelta(minutes=5)).isoformat(),
                                   "to": LAST_MONTH.isoformat()})  # fmt: skip
    assert response.status_code == 400
    assert set(response.json()) == {"from", "to"}
    assert "boundary" in response.json()["from"][0]
    response = get(acme_client, **MONTH_RANGE, group_by="tenant,colour")
    assert response.json() == {"group_by": [
        "Unknown: colour. Choose from tenant, feature, model, prompt_template, user."]}  # fmt: skip
    response = get(acme_client, **MONTH_RANGE, granularity="week")
    assert set(response.json()) == {"granularity"}
    assert set(get(acme_client, to=THIS_MONTH.isoformat()).json()) == {"from"}


def test_a_statement_agrees_with_the_usage_report_to_the_cent(acme_client, usage) -> None:
    statements_draft(now=CLOSING)
    statements_finalize(now=CLOSING)
    statement = Statement.objects.get(tenant__slug="acme", period=LAST_MONTH.date())
    rows = get(acme_client, **MONTH_RANGE, granularity="month").json()["results"]
    usage_total = Decimal(rows[0]["cost"])
    assert statement.total_exact == usage_total
    # Lines round once each; a rounding line keeps the usage subtotal on the exact total.
    assert statement.subtotal == round_money(usage_total, "USD")
    assert statement.total == sum(ln.amount for ln in statement.lines.all())
