"""Money in the admin: rounded for people by `money_format` in every list and read-only
display, the exact figure beside it on the change page."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.template import Context, Template
from django.test import Client
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from finops.models import ModelPrice
from finops.money import decimal_string, money_format
from ingestion.models import UsageEvent
from tests.conftest import event, post_events
from tests.factories import ModelPriceFactory, RetirementReviewFactory, TenantFactory

# A number with more than six decimals: an exact figure where people read.
LONG_DECIMAL = re.compile(r"\d\.\d{7,}")


@pytest.fixture
def staff(db: None) -> Client:
    user = get_user_model().objects.create_superuser("staff", "staff@example.com", "pw")
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        ("0.012866910000000000000000000000", "USD", "0.0129 USD"),
        ("0.5", "USD", "0.50 USD"),
        ("12.3456", "USD", "12.35 USD"),
        ("1234.5", "USD", "1,234.50 USD"),
        ("99.999", "USD", "100.00 USD"),
        ("2.500000000000000000", "USD", "2.50 USD"),
        ("0.075", "USD", "0.075 USD"),
        ("0.00999", "USD", "0.00999 USD"),
        ("0.0099999", "USD", "0.01 USD"),
        ("0.0000123456", "USD", "0.000012 USD"),
        ("0.0000005", "USD", "0.000001 USD"),
        ("0.00000049", "USD", "<0.000001 USD"),
        ("-0.00000049", "USD", ">-0.000001 USD"),
        ("-1.005", "USD", "-1.01 USD"),
        ("0", "USD", "0.00 USD"),
        ("0E-30", "USD", "0.00 USD"),
        ("15.000020000000002", "EUR", "15.00 EUR"),
        ("1234.5", "JPY", "1,235 JPY"),
        ("0.5", "JPY", "0.5 JPY"),
        ("1.0005", "KWD", "1.001 KWD"),
        ("1000000", "CHF", "1,000,000.00 CHF"),
    ],
)
def test_money_reads_rounded_to_the_minor_unit_or_three_significant_digits(
    amount: str, currency: str, shown: str
) -> None:
    assert money_format(Decimal(amount), currency) == shown


def test_no_amount_reads_as_nothing() -> None:
    assert money_format(None, "USD") is None


def test_templates_write_money_with_the_same_rule() -> None:
    template = Template("{% load money %}{{ amount|money:currency }}|{{ none|money:currency }}")
    context = Context({"amount": Decimal("0.00000049"), "none": None, "currency": "usd"})
    assert template.render(context) == "&lt;0.000001 USD|"
    assert Template("{% load money %}{{ 1234|money:'JPY' }}").render(Context()) == "1,234 JPY"


@given(st.decimals(min_value=Decimal("-1e9"), max_value=Decimal("1e9"), places=30,
                   allow_nan=False, allow_infinity=False))  # fmt: skip
def test_a_non_zero_amount_never_reads_zero_and_reads_close(amount: Decimal) -> None:
    shown = money_format(amount, "USD")
    assert len(shown.removesuffix(" USD").partition(".")[2]) <= 6
    if not amount:
        assert shown == "0.00 USD"
        return
    assert not re.fullmatch(r"-?0\.0+ USD", shown), (amount, shown)
    if not shown.startswith(("<", ">")):
        number = Decimal(shown.removesuffix(" USD").replace(",", ""))
        # Three significant digits, or the cent: off by at most half the last place.
        assert abs(number - amount) <= max(abs(amount) * Decimal("0.005"), Decimal("0.005"))


def _review_with_cost(cost: str):
    return RetirementReviewFactory(cost=Decimal(cost), opened_at=timezone.now())


def test_retirement_reviews_list_costs_rounded_and_a_review_shows_it_exactly(staff) -> None:
    review = _review_with_cost("0.012866910000000000000000000000")
    listing = staff.get("/admin/console/retirementreview/").content.decode()
    assert "0.0129 USD" in listing and "0.01286691" not in listing
    page = staff.get(f"/admin/console/retirementreview/{review.pk}/change/").content.decode()
    assert "0.0129 USD" in page and "(exact: 0.01286691)" in page
    assert "0.012866910000000000000000000000" not in page


def test_the_list_still_sorts_by_the_exact_cost(staff) -> None:
    for cost in ("0.02", "0.0105", "3"):
        _review_with_cost(cost)
    listing = staff.get("/admin/console/retirementreview/?o=5").content.decode()
    shown = re.findall(r'<td class="field-cost_rounded">(.*?)</td>', listing)
    assert shown == ["0.0105 USD", "0.02 USD", "3.00 USD"]


def test_events_list_costs_rounded_and_an_event_shows_the_exact_cost(staff, operator, acme) -> None:
    post_events(operator, event(input_tokens=1_234_567, output_tokens=1))
    usage = UsageEvent.objects.get()
    assert LONG_DECIMAL.search(decimal_string(usage.cost))  # not a round figure
    listing = staff.get("/admin/ingestion/usageevent/").content.decode()
    assert money_format(usage.cost, usage.currency) in listing
    assert not LONG_DECIMAL.search(listing)
    page = staff.get(f"/admin/ingestion/usageevent/{usage.pk}/change/").content.decode()
    assert f"{money_format(usage.cost, usage.currency)} " in page
    assert f"(exact: {decimal_string(usage.cost)})" in page


def test_prices_per_million_read_rounded_and_a_used_price_shows_them_exactly(
    staff, operator, acme
) -> None:
    ModelPrice.objects.filter(model="gpt-4o-2024-08-06").update(
        input_per_million=Decimal("2.500000000000000001")
    )
    post_events(operator, event())
    used = ModelPrice.objects.get(model="gpt-4o-2024-08-06")
    listing = staff.get("/admin/finops/modelprice/?q=gpt-4o-2024-08-06").content.decode()
    assert '<td class="field-input_per_million_rounded">2.50 USD</td>' in listing
    assert '<td class="field-output_per_million_rounded">10.00 USD</td>' in listing
    assert not LONG_DECIMAL.search(listing)
    page = staff.get(f"/admin/finops/modelprice/{used.pk}/change/").content.decode()
    assert "2.50 USD <span" in page and "(exact: 2.500000000000000001)" in page
    # A figure shown exactly has nothing beside it; the row's rates are shown read-only too.
    no_amount = r"(?:(?! USD)[\s\S])*?"  # nothing up to the field's own figure reads money
    assert re.search(
        rf'field-output_per_million_with_exact">{no_amount}"readonly">10\.00 USD</div>', page
    )
    assert re.search(rf'field-per_query_with_exact">{no_amount}"readonly">-</div>', page)
    assert re.search(r'<td class="field-per_million_with_exact">\s*<p>\d[\d,.]* USD', page)


def test_an_unused_price_keeps_its_exact_figures_in_its_inputs(staff) -> None:
    price = ModelPriceFactory(input_per_million=Decimal("0.0375"))
    page = staff.get(f"/admin/finops/modelprice/{price.pk}/change/").content.decode()
    assert re.search(r'name="input_per_million" value="0\.0375', page)


def test_tenant_caps_read_in_the_tenants_currency(staff) -> None:
    TenantFactory(slug="yen", billing_currency="JPY", monthly_cap=Decimal("150000.5"))
    listing = staff.get("/admin/finops/tenant/").content.decode()
    assert "150,001 JPY" in listing


def test_no_admin_list_shows_an_exact_figure(staff, operator, acme) -> None:
    from billing.models import Alert, Budget
    from billing.rollups import rollups_update
    from statements.models import Statement
    from statements.services import statements_draft

    before = timezone.now() - timedelta(days=40)
    post_events(operator, {"events": [
        event(event_id=f"e{i}", input_tokens=1000 + i, output_tokens=333 + i,
              timestamp=(before + timedelta(days=i)).isoformat())
        for i in range(0, 40, 7)
    ]})  # fmt: skip
    rollups_update()
    statements_draft(now=timezone.now())
    budget = Budget.objects.create(tenant=acme, period="month", amount=Decimal("0.1234567"))
    Alert.objects.create(kind="budget_threshold", tenant=acme, budget=budget, dedup_key="k",
                         value=Decimal("0.123456789"), message="m",
                         created_at=timezone.now())  # fmt: skip
    _review_with_cost("0.0123456789")
    lists = ("/admin/ingestion/usageevent/", "/admin/billing/usagerollup/",
             "/admin/billing/budget/", "/admin/statements/statement/",
             "/admin/console/retirementreview/", "/admin/finops/modelprice/",
             "/admin/finops/tenant/", "/admin/statements/vendorbill/reconciliation/")  # fmt: skip
    for path in lists:
        listing = staff.get(path).content.decode()
        assert not LONG_DECIMAL.search(listing), (path, LONG_DECIMAL.search(listing))
    alert = Alert.objects.get()
    page = staff.get(f"/admin/billing/alert/{alert.pk}/change/").content.decode()
    assert "0.123 USD <span" in page and "(exact: 0.123456789)" in page
    statement = Statement.objects.first()
    page = staff.get(f"/admin/statements/statement/{statement.pk}/change/").content.decode()
    assert "field-total_exact_with_exact" in page and "field-amount_with_exact" in page
