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
        "Unknown: colour. Choose from tenant, feature, model, prompt_template, user, region, "
        "provider, routing_tier, service_tier, tenant_tier, tag."]}  # fmt: skip
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


# --- The slices: region, provider, routing tier, service tier, tenant tier, tag ---------
# gpt-4o-2024-08-06 per 1M: input 2.50, cached 1.25, output 10; batch input 1.25, output 5.
STANDARD = Decimal("0.00575")  # 1000 input, 200 cached, 300 output: by hand
BATCH = Decimal("0.003")  # 1200 input at 1.25, 300 output at 5, batch


@pytest.fixture
def sliced(operator, acme, globex, settings) -> None:
    """acme (enterprise): 3 standard calls in us, 2 batch in eu, 1 in eu through openai's
    cheap route tagged team search; globex (pro): 4 in us tagged team search."""
    settings.FINOPS_REPORT_TAG_KEY = "team"
    post(operator, 3, prefix="us", region="us")
    post(operator, 2, prefix="batch", region="eu", batch=True, cached_input_tokens=0)
    post(operator, 1, prefix="cheap", region="eu", provider="openai", routing_tier="cheap",
         tags={"team": "search"})  # fmt: skip
    post(operator, 4, tenant="globex", prefix="g", region="us", tags={"team": "search"})
    rollups_update()


def sums(client, group_by: str, **params) -> list[tuple]:
    """(each group, calls, cost) per row of the month, in the report's order."""
    response = get(client, **MONTH_RANGE, group_by=group_by, granularity="month", **params)
    assert response.status_code == 200, response.json()
    groups = group_by.split(",")
    return [(*(r[g] for g in groups), r["calls"], Decimal(r["cost"]))
            for r in response.json()["results"]]  # fmt: skip


def test_usage_by_region_and_service_tier_counts_batch_calls_as_batch(acme_client,
                                                                      sliced) -> None:  # fmt: skip
    assert sums(acme_client, "region,service_tier") == [
        ("eu", "batch", 2, 2 * BATCH),
        ("eu", "standard", 1, STANDARD),
        ("us", "standard", 3, 3 * STANDARD),
    ]


def test_usage_by_provider_and_routing_tier_answers_null_for_none(operator, sliced) -> None:
    assert sums(operator, "provider,routing_tier") == [
        (None, None, 9, 7 * STANDARD + 2 * BATCH),
        ("openai", "cheap", 1, STANDARD),
    ]


def test_usage_by_tag_is_the_reported_tags_value(operator, acme_client, sliced) -> None:
    assert sums(operator, "tag") == [(None, 5, 3 * STANDARD + 2 * BATCH),
                                     ("search", 5, 5 * STANDARD)]  # fmt: skip
    assert sums(acme_client, "tag,region") == [
        (None, "eu", 2, 2 * BATCH),
        (None, "us", 3, 3 * STANDARD),
        ("search", "eu", 1, STANDARD),
    ]


def test_usage_by_tenant_tier_across_tenants_and_for_one_tenant(operator, acme_client,
                                                                sliced) -> None:  # fmt: skip
    # Across tenants from the rollups across tenants; for one tenant, or with the tenant,
    # from the events: the tier each call was made in.
    assert sums(operator, "tenant_tier") == [("enterprise", 6, 4 * STANDARD + 2 * BATCH),
                                             ("pro", 4, 4 * STANDARD)]  # fmt: skip
    assert sums(operator, "tenant_tier,tag") == [
        ("enterprise", None, 5, 3 * STANDARD + 2 * BATCH),
        ("enterprise", "search", 1, STANDARD),
        ("pro", "search", 4, 4 * STANDARD),
    ]
    assert sums(acme_client, "tenant_tier") == [("enterprise", 6, 4 * STANDARD + 2 * BATCH)]
    assert sums(operator, "tenant,tenant_tier") == [
        ("acme", "enterprise", 6, 4 * STANDARD + 2 * BATCH),
        ("globex", "pro", 4, 4 * STANDARD),
    ]
    assert sums(operator, "tenant_tier", tenant="globex") == [("pro", 4, 4 * STANDARD)]


def test_groups_no_source_holds_together_get_a_field_error(operator, acme_client,
                                                           sliced) -> None:  # fmt: skip
    for client, params in (
        (operator, {"group_by": "tag,user"}),
        (acme_client, {"group_by": "tag,tenant_tier"}),
        (operator, {"group_by": "tag,tenant_tier", "tenant": "acme"}),
        (operator, {"group_by": "tag,tenant_tier,prompt_template"}),
    ):
        response = get(client, **MONTH_RANGE, **params)
        assert response.status_code == 400
        assert set(response.json()) == {"group_by"}
    response = get(operator, **MONTH_RANGE, group_by="user,tag")
    assert "only the events the user" in response.json()["group_by"][0]


def test_a_tenant_sees_only_its_own_slices(operator, acme_client, globex_client,
                                           sliced) -> None:  # fmt: skip
    assert sums(globex_client, "region,tag,service_tier") == [
        ("us", "search", "standard", 4, 4 * STANDARD)
    ]
    assert sums(globex_client, "tenant_tier") == [("pro", 4, 4 * STANDARD)]
    assert sums(operator, "region") == [("eu", 3, STANDARD + 2 * BATCH),
                                        ("us", 7, 7 * STANDARD)]  # fmt: skip
    assert sums(operator, "region", tenant="globex") == [("us", 4, 4 * STANDARD)]
    assert get(acme_client, **MONTH_RANGE, group_by="region", tenant="globex").status_code == 404
    assert get(globex_client, **MONTH_RANGE, group_by="tenant_tier",
               tenant="acme").status_code == 404  # fmt: skip


def test_the_events_and_the_rollups_agree_on_every_slice(acme_client, sliced) -> None:
    """With `user` the report reads the events: the same slices, the same sums."""
    for group in ("region", "provider", "routing_tier", "service_tier"):
        from_events = [row[:1] + row[2:] for row in sums(acme_client, f"{group},user")]
        assert from_events == sums(acme_client, group), group
