"""Budgets and rate limits a tenant sets for itself over the API, beside the operator's."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from billing.guard import policy_cache_clear
from billing.guard.policies import enforced_budgets
from billing.models import Budget, RateLimit
from billing.rollups import rollups_update
from finops.models import ApiKey
from tests.conftest import event, post_events
from tests.factories import FeatureFactory

pytestmark = pytest.mark.django_db

BUDGET = {"period": "day", "amount": "25"}
RATE = {"window": "minute", "requests": 60}


def prefix(client) -> str:
    """The public prefix of the key a test client holds (`fo_<prefix>_<secret>`)."""
    return client.key.split("_")[1]


@pytest.fixture
def acme_manager(make_client, acme):
    return make_client(acme, ["read", "manage"])


@pytest.fixture
def globex_manager(make_client, globex):
    return make_client(globex, ["read", "manage"])


@pytest.fixture
def operator_manager(make_client, db):
    return make_client(None, ["read", "manage"])


def test_a_tenant_key_sets_budgets_on_its_end_users_and_its_own_keys(acme_manager,
                                                                       acme) -> None:  # fmt: skip
    one_user = acme_manager.post("/api/v1/budgets", {**BUDGET, "user": "u-42"}, format="json")
    assert one_user.status_code == 201, one_user.json()
    body = one_user.json()
    assert body == {"id": body["id"], "name": "", "tenant": "acme", "feature": None,
                    "model": "", "prompt_template": None, "user": "u-42", "api_key": None,
                    "period": "day", "amount": "25", "thresholds": [50, 80, 100],
                    "action": "notify"}  # fmt: skip
    each_user = acme_manager.post("/api/v1/budgets", {**BUDGET, "user": "*", "action": "block"},
                                  format="json")  # fmt: skip
    assert each_user.status_code == 201 and each_user.json()["user"] == "*"
    own_key = acme_manager.post("/api/v1/budgets", {**BUDGET, "api_key": prefix(acme_manager)},
                                format="json")  # fmt: skip
    assert own_key.status_code == 201
    assert (own_key.json()["tenant"], own_key.json()["api_key"]) == ("acme", prefix(acme_manager))

    listed = acme_manager.get("/api/v1/budgets").json()["results"]
    assert {b["id"] for b in listed} == {body["id"], each_user.json()["id"], own_key.json()["id"]}
    url = f"/api/v1/budgets/{body['id']}"
    patched = acme_manager.patch(url, {"amount": "30", "user": "u-43"}, format="json")
    assert patched.status_code == 200 and patched.json()["user"] == "u-43"
    assert acme_manager.delete(url).status_code == 204
    assert Budget.objects.count() == 2


def test_a_tenant_key_sets_rate_limits_on_its_own_keys_and_end_users(acme_manager,
                                                                       acme) -> None:  # fmt: skip
    created = acme_manager.post("/api/v1/rate-limits", {
        "api_key": prefix(acme_manager), "window": "hour", "tokens": 1_000_000, "cost": "2.5",
    }, format="json")  # fmt: skip
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body == {"id": body["id"], "name": "", "tenant": "acme", "feature": None,
                    "model": "", "prompt_template": None, "user": "",
                    "api_key": prefix(acme_manager), "window": "hour", "requests": None,
                    "tokens": 1_000_000, "cost": "2.5"}  # fmt: skip
    per_user = acme_manager.post("/api/v1/rate-limits", {**RATE, "user": "*"}, format="json")
    assert per_user.status_code == 201
    assert per_user.json()["cost"] is None and per_user.json()["window"] == "minute"

    url = f"/api/v1/rate-limits/{body['id']}"
    patched = acme_manager.patch(url, {"cost": None, "requests": 10}, format="json")
    assert patched.status_code == 200, patched.json()
    assert (patched.json()["cost"], patched.json()["requests"]) == (None, 10)
    assert acme_manager.get(url).json()["tokens"] == 1_000_000
    assert acme_manager.delete(url).status_code == 204
    assert list(RateLimit.objects.values_list("user", flat=True)) == ["*"]


@pytest.mark.parametrize("path", ["/api/v1/budgets", "/api/v1/rate-limits"])
@pytest.mark.parametrize(
    "scope",
    [{}, {"model": "gpt-4o"}, {"tenant": "acme"}, {"user": ""}, {"api_key": None}],
)
def test_a_tenant_key_cannot_create_tenant_wide_or_global_limits(acme_manager, path,
                                                                 scope) -> None:  # fmt: skip
    payload = {**(BUDGET if "budgets" in path else RATE), **scope}
    response = acme_manager.post(path, payload, format="json")
    assert response.status_code == 403
    assert "end user" in response.json()["detail"]
    assert not Budget.objects.exists() and not RateLimit.objects.exists()


def test_a_tenant_key_reads_but_never_changes_its_tenant_wide_limits(
    acme_manager, acme, operator_manager
) -> None:
    wide = operator_manager.post("/api/v1/budgets", {**BUDGET, "tenant": "acme"}, format="json")
    url = f"/api/v1/budgets/{wide.json()['id']}"
    assert acme_manager.get(url).status_code == 200
    assert acme_manager.patch(url, {"amount": "1"}, format="json").status_code == 403
    # Naming a user now does not make the operator's budget the tenant's.
    assert acme_manager.patch(url, {"user": "u-1"}, format="json").status_code == 403
    assert acme_manager.delete(url).status_code == 403
    assert Budget.objects.get().amount == 25 and Budget.objects.get().user == ""

    # A limit on an operator key (for acme) stays the operator's, end user or not.
    operator_key = operator_manager.post("/api/v1/rate-limits", {
        **RATE, "tenant": "acme", "user": "u-1", "api_key": prefix(operator_manager),
    }, format="json").json()  # fmt: skip
    operator_url = f"/api/v1/rate-limits/{operator_key['id']}"
    assert acme_manager.get(operator_url).status_code == 200
    assert acme_manager.patch(operator_url, {"requests": 1}, format="json").status_code == 403
    assert acme_manager.patch(operator_url, {"api_key": None}, format="json").status_code == 403
    assert acme_manager.delete(operator_url).status_code == 403
    RateLimit.objects.filter(id=operator_key["id"]).delete()

    # Nor can it turn its own limit into a tenant-wide one.
    mine = acme_manager.post("/api/v1/rate-limits", {**RATE, "user": "u-1"}, format="json")
    mine_url = f"/api/v1/rate-limits/{mine.json()['id']}"
    assert acme_manager.patch(mine_url, {"user": ""}, format="json").status_code == 403
    assert RateLimit.objects.get().user == "u-1"


def test_a_tenant_key_never_sees_another_tenants_or_global_limits(
    acme_manager, globex_manager, operator_manager, acme, globex
) -> None:
    theirs = globex_manager.post("/api/v1/budgets", {**BUDGET, "user": "g-1"}, format="json")
    their_rate = globex_manager.post("/api/v1/rate-limits", {**RATE, "user": "g-1"},
                                     format="json")  # fmt: skip
    global_budget = operator_manager.post("/api/v1/budgets", BUDGET, format="json")
    global_rate = operator_manager.post("/api/v1/rate-limits", RATE, format="json")
    assert {r.status_code for r in (theirs, their_rate, global_budget, global_rate)} == {201}

    assert acme_manager.get("/api/v1/budgets").json()["results"] == []
    assert acme_manager.get("/api/v1/rate-limits").json()["results"] == []
    assert acme_manager.get("/api/v1/budgets?tenant=globex").status_code == 404
    assert acme_manager.get("/api/v1/rate-limits?tenant=nobody").status_code == 404
    for url in (f"/api/v1/budgets/{theirs.json()['id']}",
                f"/api/v1/budgets/{global_budget.json()['id']}",
                f"/api/v1/rate-limits/{their_rate.json()['id']}",
                f"/api/v1/rate-limits/{global_rate.json()['id']}"):  # fmt: skip
        assert acme_manager.get(url).status_code == 404
        assert acme_manager.patch(url, {"user": "u-1"}, format="json").status_code == 404
        assert acme_manager.delete(url).status_code == 404
    assert Budget.objects.count() == 2 and RateLimit.objects.count() == 2
    assert Budget.objects.get(id=theirs.json()["id"]).user == "g-1"

    # The operator sees every limit, and each tenant's alone on asking.
    assert len(operator_manager.get("/api/v1/budgets").json()["results"]) == 2
    only_globex = operator_manager.get("/api/v1/rate-limits?tenant=globex").json()["results"]
    assert [r["id"] for r in only_globex] == [their_rate.json()["id"]]


@pytest.mark.parametrize("path", ["/api/v1/budgets", "/api/v1/rate-limits"])
def test_another_tenants_key_or_slug_is_refused_as_if_unknown(acme_manager, globex_manager,
                                                             path) -> None:  # fmt: skip
    base = {**(BUDGET if "budgets" in path else RATE), "user": "u-1"}
    foreign = acme_manager.post(path, {**base, "api_key": prefix(globex_manager)}, format="json")
    unknown = acme_manager.post(path, {**base, "api_key": "0123456789ab"}, format="json")
    assert foreign.status_code == unknown.status_code == 400
    assert foreign.json() == unknown.json() == {"api_key": ["No such API key."]}

    foreign = acme_manager.post(path, {**base, "tenant": "globex"}, format="json")
    unknown = acme_manager.post(path, {**base, "tenant": "nobody"}, format="json")
    assert foreign.status_code == unknown.status_code == 400
    assert foreign.json() == unknown.json()
    assert set(foreign.json()) == {"tenant"}
    assert not Budget.objects.exists() and not RateLimit.objects.exists()


def test_a_read_key_writes_no_limits(acme_client, make_client, acme) -> None:
    operator_reader = make_client(None, ["read"])
    for client in (acme_client, operator_reader):
        assert client.get("/api/v1/rate-limits").status_code == 200
        assert client.post("/api/v1/budgets", {**BUDGET, "user": "u"},
                           format="json").status_code == 403  # fmt: skip
        assert client.post("/api/v1/rate-limits", {**RATE, "user": "u"},
                           format="json").status_code == 403  # fmt: skip
    limit = RateLimit.objects.create(tenant=acme, user="u", requests=5)
    assert acme_client.patch(f"/api/v1/rate-limits/{limit.id}", {"requests": 6},
                             format="json").status_code == 403  # fmt: skip
    assert acme_client.delete(f"/api/v1/rate-limits/{limit.id}").status_code == 403
    assert make_client(acme, ["ingest"]).get("/api/v1/rate-limits").status_code == 403
    assert RateLimit.objects.get().requests == 5


def test_an_operator_sets_limits_on_any_scope(operator_manager, acme_manager, acme, globex) -> None:
    FeatureFactory(key="chat_assistant")
    acme_key = prefix(acme_manager)
    global_rate = operator_manager.post("/api/v1/rate-limits", {
        "feature": "chat_assistant", "window": "day", "cost": "100.000001",
    }, format="json")  # fmt: skip
    assert global_rate.status_code == 201 and global_rate.json()["cost"] == "100.000001"
    # A tenant's key names its tenant too, so that the tenant's own keys see the limit.
    on_key = operator_manager.post("/api/v1/budgets", {**BUDGET, "api_key": acme_key},
                                   format="json")  # fmt: skip
    assert on_key.status_code == 201 and on_key.json()["tenant"] == "acme"
    assert [b["id"] for b in acme_manager.get("/api/v1/budgets").json()["results"]] == [
        on_key.json()["id"]
    ]
    # An operator key posts for every tenant: it may be paired with any of them.
    operator_key = prefix(operator_manager)
    paired = operator_manager.post("/api/v1/rate-limits", {
        **RATE, "tenant": "globex", "api_key": operator_key}, format="json")  # fmt: skip
    assert paired.status_code == 201 and paired.json()["api_key"] == operator_key
    wide = operator_manager.patch(f"/api/v1/budgets/{on_key.json()['id']}",
                                  {"api_key": None, "user": ""}, format="json")  # fmt: skip
    assert wide.status_code == 200 and wide.json()["api_key"] is None

    mismatched = operator_manager.post("/api/v1/budgets", {
        **BUDGET, "tenant": "globex", "api_key": acme_key}, format="json")  # fmt: skip
    assert mismatched.status_code == 400 and set(mismatched.json()) == {"api_key"}
    ApiKey.objects.filter(prefix=acme_key).update(revoked_at=timezone.now())
    revoked = operator_manager.post("/api/v1/rate-limits", {**RATE, "api_key": acme_key},
                                    format="json")  # fmt: skip
    assert revoked.json() == {"api_key": ["This API key has been revoked."]}


@pytest.mark.parametrize(
    ("payload", "fields"),
    [
        ({"window": "minute"}, {"requests", "tokens", "cost"}),
        ({"requests": None, "tokens": None, "cost": None}, {"requests", "tokens", "cost"}),
        ({"requests": 0}, {"requests"}),
        ({"requests": -1}, {"requests"}),
        ({"requests": 1.5}, {"requests"}),
        ({"requests": 2**31}, {"requests"}),
        ({"requests": True}, {"requests"}),
        ({"tokens": 0}, {"tokens"}),
        ({"tokens": 2**63}, {"tokens"}),
        ({"cost": "0"}, {"cost"}),
        ({"cost": "0.0000001"}, {"cost"}),
        ({"cost": "-1"}, {"cost"}),
        ({"cost": "NaN"}, {"cost"}),
        ({"cost": "1e30"}, {"cost"}),
        ({"requests": 1, "window": "week"}, {"window"}),
        ({"requests": 1, "user": "u" * 201}, {"user"}),
        ({"requests": 1, "user": "a\x00b"}, {"user"}),
        ({"requests": 1, "model": "m" * 201}, {"model"}),
        ({"requests": 1, "feature": "nothing"}, {"feature"}),
        ({"requests": 1, "prompt_template": "nothing"}, {"prompt_template"}),
        ({"requests": 1, "api_key": 5}, {"api_key"}),
        ({"requests": 1, "api_key": "x" * 40}, {"api_key"}),
        ({"requests": 1, "tenant": "nobody"}, {"tenant"}),
        ({"requests": 1, "reqests": 2}, {"reqests"}),
        ({"requests": 1, "id": 7}, {"id"}),
    ],
)
def test_bad_rate_limits_are_refused_field_by_field(operator_manager, payload, fields) -> None:
    response = operator_manager.post("/api/v1/rate-limits", payload, format="json")
    assert response.status_code == 400
    assert set(response.json()) == fields
    assert not RateLimit.objects.exists()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"user": "u" * 201}, "user"),
        ({"user": "\x00"}, "user"),
        ({"api_key": "0123456789ab"}, "api_key"),
        ({"api_key": ["x"]}, "api_key"),
        ({"user": "u", "usr": "v"}, "usr"),
    ],
)
def test_bad_budget_scopes_are_refused_field_by_field(acme_manager, payload, field) -> None:
    response = acme_manager.post("/api/v1/budgets", {**BUDGET, **payload}, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not Budget.objects.exists()


def test_a_patch_that_leaves_no_limit_is_refused(operator_manager) -> None:
    limit = operator_manager.post("/api/v1/rate-limits", {"tokens": 5}, format="json").json()
    answer = operator_manager.patch(f"/api/v1/rate-limits/{limit['id']}", {"tokens": None},
                                    format="json")  # fmt: skip
    assert answer.status_code == 400 and set(answer.json()) == {"requests", "tokens", "cost"}
    assert RateLimit.objects.get().tokens == 5


def test_rate_limits_are_listed_newest_first_page_by_page(operator_manager) -> None:
    ids = [operator_manager.post("/api/v1/rate-limits", {"requests": n + 1},
                                 format="json").json()["id"] for n in range(3)]  # fmt: skip
    first = operator_manager.get("/api/v1/rate-limits?limit=2").json()
    assert [r["id"] for r in first["results"]] == ids[:0:-1] and first["next"]
    second = operator_manager.get(first["next"]).json()
    assert [r["id"] for r in second["results"]] == ids[:1] and second["next"] is None
    assert set(operator_manager.get("/api/v1/rate-limits?tenat=acme").json()) == {"tenat"}


def test_a_change_reaches_this_workers_guard_at_once(
    acme_manager, settings, django_capture_on_commit_callbacks
) -> None:
    settings.FINOPS_GUARD_POLICY_TTL = 60
    policy_cache_clear()
    assert enforced_budgets() == []
    with django_capture_on_commit_callbacks(execute=True):
        created = acme_manager.post("/api/v1/budgets", {**BUDGET, "user": "*", "action": "block"},
                                    format="json")  # fmt: skip
    assert [b.id for b in enforced_budgets()] == [created.json()["id"]]
    with django_capture_on_commit_callbacks(execute=True):
        acme_manager.delete(f"/api/v1/budgets/{created.json()['id']}")
    assert enforced_budgets() == []
    policy_cache_clear()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_tenant_key_names_only_features_of_its_own_usage(make_client, acme, globex) -> None:
    acme_manager = make_client(acme, ["read", "manage"])
    globex_ingest = make_client(globex, ["ingest"])
    body = {"events": [event(tenant="globex", feature="secret_project",
                             prompt_template="secret-v1")]}  # fmt: skip
    assert post_events(globex_ingest, body).status_code == 202
    rollups_update()

    # Another tenant's feature reads as unknown to acme, and an unknown one alike.
    for name in ("secret_project", "nothing"):
        answer = acme_manager.post("/api/v1/budgets", {**BUDGET, "user": "*", "feature": name},
                                   format="json")  # fmt: skip
        assert answer.json() == {"feature": ["No such feature."]}
    answer = acme_manager.post("/api/v1/rate-limits", {**RATE, "user": "*",
                               "prompt_template": "secret-v1"}, format="json")  # fmt: skip
    assert answer.json() == {"prompt_template": ["No such prompt template."]}

    acme_ingest = make_client(acme, ["ingest"])
    body = {"events": [event(event_id="a-1", feature="secret_project",
                             prompt_template="secret-v1")]}  # fmt: skip
    assert post_events(acme_ingest, body).status_code == 202
    rollups_update()
    answer = acme_manager.post("/api/v1/rate-limits", {**RATE, "user": "*",
                               "feature": "secret_project", "prompt_template": "secret-v1"},
                               format="json")  # fmt: skip
    assert answer.status_code == 201, answer.json()


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
    | st.sampled_from(["1e400", "-0", "NaN", "", "\x00", "\ud800"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5),
                                                                      children, max_size=2),
    max_leaves=6,
)  # fmt: skip


def _either(*plausible: object) -> st.SearchStrategy:
    """Mostly a plausible value, now and then any JSON value."""
    return st.one_of(st.sampled_from(plausible), st.sampled_from(plausible), JSON_VALUES)


SCOPE_FIELDS = {
    "name": st.text(max_size=210), "tenant": _either("acme", "globex", "nobody", None),
    "feature": _either("chat_assistant", "nothing", None), "model": _either("", "gpt-4o"),
    "prompt_template": _either(None, "nothing"), "user": _either("u-1", "*", "", " u "),
    "api_key": _either(None, "0123456789ab"),
}  # fmt: skip
BUDGET_FIELDS = {
    "period": _either("day", "month"),
    "amount": _either("1", 2, "0.000001", "0", "12345678901234.5", 1.5),
    "thresholds": st.lists(st.integers(-5, 1200), max_size=11) | JSON_VALUES,
    "action": _either("notify", "block", "downgrade"),
}  # fmt: skip
RATE_FIELDS = {
    "window": _either("minute", "day"), "requests": st.integers(-1, 2**64) | JSON_VALUES,
    "tokens": st.integers(-1, 2**64) | JSON_VALUES,
    "cost": _either("1", "0.5", None, 3, "99999999999999.999999"),
}  # fmt: skip


def _bodies(base: dict, fields: dict) -> st.SearchStrategy:
    """A valid body with some of its fields set or replaced, now and then an unknown one."""
    optional = {**SCOPE_FIELDS, **fields, "x": JSON_VALUES}
    changes = st.fixed_dictionaries({}, optional=optional).filter(lambda d: len(d) <= 4)
    return changes.map(lambda change: {**base, **change})


@hypothesis_settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.one_of(
        st.tuples(
            st.just("/api/v1/budgets"),
            _bodies({"period": "day", "amount": "5", "user": "u-1"}, BUDGET_FIELDS),
        ),
        st.tuples(
            st.just("/api/v1/rate-limits"), _bodies({"requests": 5, "user": "u-1"}, RATE_FIELDS)
        ),
        st.tuples(st.sampled_from(["/api/v1/budgets", "/api/v1/rate-limits"]), JSON_VALUES),
    ),
    st.booleans(),
)
def test_no_body_makes_a_limit_endpoint_fail(acme_manager, operator_manager, case,
                                             tenant_key) -> None:  # fmt: skip
    FeatureFactory(key="chat_assistant")
    path, data = case
    client = acme_manager if tenant_key else operator_manager
    body = json.dumps(data, allow_nan=True)
    response = client.post(path, body, content_type="application/json")
    assert response.status_code in (201, 400, 403), (body, response.content)
    if response.status_code == 400 and isinstance(response.json(), dict):
        assert all(isinstance(v, list | dict) for v in response.json().values()), response.json()
    patched = client.patch(f"{path}/{_limit_id(path)}", body, content_type="application/json")
    assert patched.status_code in (200, 400, 403, 404), (body, patched.content)


def _limit_id(path: str) -> int:
    model = Budget if "budgets" in path else RateLimit
    last = model.objects.order_by("-id").first()
    return last.id if last is not None else 1


def test_the_schema_describes_rate_limits(client) -> None:
    schema = client.get("/api/schema/", {"format": "json"}).json()
    assert {"get", "post"} <= set(schema["paths"]["/api/v1/rate-limits"])
    assert {"get", "patch", "delete"} <= set(schema["paths"]["/api/v1/rate-limits/{rate_limit_id}"])
    fields = schema["components"]["schemas"]["RateLimit"]["properties"]
    assert {"user", "api_key", "window", "requests", "tokens", "cost"} <= set(fields)
    assert {"user", "api_key"} <= set(schema["components"]["schemas"]["Budget"]["properties"])
    assert "string" in fields["cost"]["type"]  # a decimal string, as money is everywhere


def test_staff_set_rate_limits_and_key_budgets_in_the_admin(admin_client, acme_manager,
                                                            acme) -> None:  # fmt: skip
    key = ApiKey.objects.get(prefix=prefix(acme_manager))
    added = admin_client.post("/admin/billing/ratelimit/add/", {
        "name": "", "model": "", "user": "", "api_key": key.id, "window": "hour",
        "requests": "", "tokens": "", "cost": "1.5",
    })  # fmt: skip
    assert added.status_code == 302, added.content.decode()[:2000]
    limit = RateLimit.objects.get()
    assert (limit.tenant, limit.cost, limit.requests) == (acme, Decimal("1.5"), None)
    # Nothing to limit: refused (the model's check constraint).
    refused = admin_client.post("/admin/billing/ratelimit/add/", {"window": "minute"})
    assert refused.status_code == 200 and RateLimit.objects.count() == 1
    listing = admin_client.get("/admin/billing/ratelimit/").content.decode()
    assert key.prefix in listing

    Budget.objects.create(tenant=acme, user="u-42", api_key=key, period="day", amount=5)
    budgets = admin_client.get("/admin/billing/budget/").content.decode()
    assert "u-42" in budgets and key.prefix in budgets
    assert admin_client.get("/admin/billing/budget/add/").status_code == 200
