from __future__ import annotations

import logging
import re
import threading
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.db import connection, connections, transaction
from django.db.migrations.loader import MigrationLoader
from django.db.models import TextField
from django.db.models.functions import Cast

from billing import rollups
from billing.models import DailyKey, FeatureRollup, RollupWatermark, UsageRollup
from billing.rollups import METRIC_SUMS, SUMS, keys, rollups_rebuild, rollups_update, sql
from billing.rollups.columns import FEATURE_KEY, SLICES, USAGE_KEY
from billing.rollups.tags import tag_value
from finops.models import ModelPrice, PriceRate
from finops.pricing import TOKEN_COLUMNS
from ingestion.models import UsageEvent
from ingestion.services import events_ingest, events_price_unpriced
from tests.conftest import event, run_at_once
from tests.conftest import post_events as _post_events
from tests.factories import ModelPriceFactory

# Rollups read what other transactions committed, so tests commit for real.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

postgres_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL")

BASE = (datetime.now(UTC) - timedelta(days=10)).replace(minute=0, second=0, microsecond=0)


@pytest.fixture(autouse=True)
def _reported_tag(settings) -> None:
    """The rollups keep the value of each event's `team` tag (`_traffic` posts some)."""
    settings.FINOPS_REPORT_TAG_KEY = "team"


def _traffic(prefix: str, count: int, *, start: datetime = BASE, **extra) -> list[dict]:
    return [
        event(
            event_id=f"{prefix}-{i}",
            tenant=("acme", "globex")[i % 2],
            timestamp=(start + timedelta(minutes=17 * i)).isoformat(),
            feature=("chat_assistant", "document_summarization", None)[i % 3],
            prompt_template=("p1", None)[i % 2],
            model=("gpt-4o-mini", "gpt-4o-2024-08-06", "claude-3-5-sonnet-20241022")[i % 3],
            input_tokens=1000 + i,
            cached_input_tokens=i % 200,
            cache_write_tokens=20 + i % 30,
            cache_write_1h_tokens=i % 20,
            output_tokens=100 + i % 50,
            reasoning_tokens=i % 10,
            **_metric_fields(prefix, i),
            **extra,
        )
        for i in range(count)
    ]


def _metric_fields(prefix: str, i: int) -> dict:
    """What the predictive metrics read, in every combination, with sessions and prompt
    hashes that repeat within a day and across prefixes (runs); and the slices: regions,
    service tiers (batch as a tier and as `batch: true`) and tags."""
    fields: dict = {"routing_tier": ("cheap", "standard", "")[i % 3],
                    "region": ("", "eu-west-1", "us-east-1", "")[i % 4],
                    "tags": ({}, {"team": "search"}, {"team": "chat", "env": "prod"},
                             {"env": "dev"}, {"team": "x" * 256})[i % 5]}  # fmt: skip
    if i % 7 == 1:
        fields["service_tier"] = "batch"
    elif i % 7 == 2:
        fields["batch"] = True
    elif i % 7 == 3:
        fields["service_tier"] = "priority"
    if i % 4:
        fields["retrieval"] = {"chunks_retrieved": 8 + i % 5, "chunks_used": i % 6}
    if i % 5:
        fields["reranker_changed_order"] = i % 2 == 0
    if i % 3:
        fields["outcome"] = ("correct", "incorrect")[i % 7 == 0]
    if i % 2:
        fields["session"] = f"s-{i % 11}"
    if i % 6:
        fields["prompt_hash"] = f"h-{i % 9}"
    return {**fields, **_flags(i)}


def _flags(i: int) -> dict:
    """`escalated` and `cache_hit`: true, false or not reported."""
    flags = {}
    if i % 4 != 1:
        flags["escalated"] = i % 8 == 0
    if i % 3 != 2:
        flags["cache_hit"] = i % 5 == 0
    return flags


def post_events(client, payload):
    response = _post_events(client, payload)
    assert response.status_code == 202, response.json()
    return response


def _slices(e: UsageEvent) -> tuple:
    """An event's provider, region, rate class and reported tag, to the column's 200
    characters: a string by hand; other JSON values (the API takes none) as the portable
    fold reads the tags' text, which `test_the_reported_tag_is_the_text_of_one_key_...`
    checks by hand on both databases."""
    key = settings.FINOPS_REPORT_TAG_KEY
    value = e.tags.get(key) if key and isinstance(e.tags, dict) else None
    tag = value[:200] if isinstance(value, str) else tag_value(e.tags_text, key)
    return (e.provider, e.region, e.service_tier, e.above_tokens, e.off_peak, tag)


def _ledger_oracle() -> dict[tuple, dict]:
    """The aggregates computed straight from the events, independently of the job."""
    expected: dict[tuple, dict] = defaultdict(lambda: defaultdict(Decimal))
    seen: set[tuple] = set()
    events = UsageEvent.objects.select_related("feature", "prompt_template")
    for e in events.annotate(tags_text=Cast("tags", TextField())).order_by("id"):
        hour = e.timestamp.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        first_session = bool(e.session) and ("s", e.tenant_id, hour.date(), e.session) not in seen
        first_prompt = bool(e.prompt_hash) and ("p", e.tenant_id, hour.date(),
                                                 e.prompt_hash) not in seen  # fmt: skip
        seen |= {("s", e.tenant_id, hour.date(), e.session),
                 ("p", e.tenant_id, hour.date(), e.prompt_hash)}  # fmt: skip
        cost = e.cost or 0
        feature = e.feature.key if e.feature else ""
        for grain, start in (("hour", hour), ("day", hour.replace(hour=0))):
            usage_key = ("usage", grain, start, e.tenant_id, feature, e.model,
                         e.prompt_template.key if e.prompt_template else "",
                         e.routing_tier, *_slices(e))  # fmt: skip
            feature_key = ("feature", grain, start, feature, e.model, e.routing_tier,
                           e.tenant_tier, *_slices(e))  # fmt: skip
            for key in (usage_key, feature_key):
                sums = expected[key]
                sums["calls"] += 1
                sums["priced_calls"] += e.price_id is not None
                for kind in TOKEN_COLUMNS:
                    sums[kind] += getattr(e, kind)
                sums["cost"] += cost
                sums["chunks_retrieved"] += e.chunks_retrieved or 0
                sums["chunks_used"] += e.chunks_used or 0
                sums["reranked_calls"] += e.reranker_changed_order is not None
                sums["reranker_changed"] += e.reranker_changed_order is True
                sums["outcome_calls"] += bool(e.outcome)
                sums["correct_calls"] += e.outcome == "correct"
                sums["outcome_cost"] += cost if e.outcome else 0
                sums["session_cost"] += cost if e.session else 0
                sums["sessions"] += first_session
                sums["hashed_calls"] += bool(e.prompt_hash)
                sums["repeat_calls"] += bool(e.prompt_hash) and not first_prompt
                sums["escalated_calls"] += e.escalated is True
                sums["cache_known_calls"] += e.cache_hit is not None
                sums["cache_hit_calls"] += e.cache_hit is True
                sums["cache_hit_cost"] += cost if e.cache_hit else 0
    return {k: dict(v) for k, v in expected.items()}


def _rollups() -> dict[tuple, dict]:
    """Both aggregates: per tenant (`usage`) and across tenants (`feature`)."""
    rows = {}
    sums = ("calls", "priced_calls", *TOKEN_COLUMNS, "cost", *METRIC_SUMS)
    for r in UsageRollup.objects.all():
        key = ("usage", r.grain, r.period_start, r.tenant_id, r.feature, r.model,
               r.prompt_template, r.routing_tier, *_row_slices(r))  # fmt: skip
        rows[key] = {name: getattr(r, name) for name in sums}
    for r in FeatureRollup.objects.all():
        key = ("feature", r.grain, r.period_start, r.feature, r.model, r.routing_tier,
               r.tenant_tier, *_row_slices(r))  # fmt: skip
        rows[key] = {name: getattr(r, name) for name in sums}
    return rows


def _row_slices(r: UsageRollup | FeatureRollup) -> tuple:
    return (r.provider, r.region, r.service_tier, r.above_tokens, r.off_peak, r.tag)


def test_rollups_match_the_ledger_hour_by_hour_and_day_by_day(operator, acme, globex) -> None:
    post_events(operator, {"events": _traffic("a", 300)})

    result = rollups_update()

    assert result.events == 300
    assert _rollups() == _ledger_oracle()
    assert UsageRollup.objects.filter(grain="day").count() < UsageRollup.objects.filter(
        grain="hour").count()  # fmt: skip


def test_rerank_queries_and_one_hour_writes_reach_the_rollups_and_the_usage_report(
    operator, acme
) -> None:
    ModelPrice.objects.create(model="rerank-1", provider="cohere", mode="rerank",
                              input_per_million=0, output_per_million=0,
                              per_query=Decimal("0.002"))  # fmt: skip
    at = BASE.isoformat()
    post_events(operator, {"events": [
        event(event_id="q1", timestamp=at, model="rerank-1", input_tokens=0,
              cached_input_tokens=0, output_tokens=0, queries=3),
        event(event_id="q2", timestamp=at, model="rerank-1", input_tokens=0,
              cached_input_tokens=0, output_tokens=0, queries=4),
        event(event_id="w", timestamp=at, model="claude-sonnet-4-5", cache_write_tokens=500,
              cache_write_1h_tokens=300),
    ]})  # fmt: skip

    rollups_update()

    assert _rollups() == _ledger_oracle()
    (rerank,) = UsageRollup.objects.filter(grain="day", model="rerank-1")
    assert (rerank.queries, rerank.cost) == (7, Decimal("0.014"))  # 7 x 0.002
    day = BASE.replace(hour=0)
    response = operator.get("/api/v1/usage", {
        "from": day.isoformat(), "to": (day + timedelta(days=1)).isoformat(),
        "group_by": "model", "granularity": "day", "tenant": "acme",
    })  # fmt: skip
    rows = {r["model"]: r for r in response.json()["results"]}
    assert (rows["rerank-1"]["queries"], rows["rerank-1"]["cost"]) == (7, "0.014")
    assert rows["claude-sonnet-4-5"]["cache_write_1h_tokens"] == 300


def test_a_rerun_counts_nothing_twice(operator, acme, globex) -> None:
    post_events(operator, {"events": _traffic("a", 50)})
    rollups_update()
    again = rollups_update()
    assert again.events == 0
    assert _rollups() == _ledger_oracle()


def test_incremental_runs_equal_a_full_rebuild(operator, acme, globex) -> None:
    post_events(operator, {"events": _traffic("a", 120)})
    rollups_update()
    # More traffic: new hours, retries of old events, and late events for old hours.
    post_events(operator, {"events": _traffic("b", 80, start=BASE + timedelta(hours=30))})
    post_events(operator, {"events": _traffic("a", 40)})
    post_events(operator, {"events": _traffic("late", 10, start=BASE - timedelta(hours=5))})
    rollups_update()
    incremental = _rollups()

    rebuilt = rollups_rebuild()

    assert rebuilt.events == 210
    assert _rollups() == incremental == _ledger_oracle()


def test_a_late_price_reaches_the_aggregates_once(operator, acme) -> None:
    post_events(operator, {"events": [
        event(event_id=f"u-{i}", model="frontier-x", input_tokens=1_000_000,
              cached_input_tokens=0, output_tokens=0, timestamp=BASE.isoformat())
        for i in range(3)
    ]})  # fmt: skip
    rollups_update()
    (hour,) = UsageRollup.objects.filter(grain="hour", model="frontier-x")
    assert (hour.calls, hour.priced_calls, hour.cost) == (3, 0, 0)

    ModelPrice.objects.create(model="frontier-x", input_per_million=Decimal("2.5"),
                              output_per_million=Decimal("10"))  # fmt: skip
    events_price_unpriced()
    rollups_update()
    rollups_update()

    hour.refresh_from_db()
    assert (hour.calls, hour.priced_calls, hour.cost) == (3, 3, Decimal("7.5"))
    assert _rollups() == _ledger_oracle()


def test_an_event_priced_before_its_first_fold_counts_once(operator, acme) -> None:
    post_events(operator, {"events": [
        event(event_id=f"u-{i}", model="frontier-y", input_tokens=1_000_000,
              cached_input_tokens=0, output_tokens=0, timestamp=BASE.isoformat())
        for i in range(3)
    ]})  # fmt: skip
    ModelPrice.objects.create(model="frontier-y", input_per_million=Decimal("2.5"),
                              output_per_million=Decimal("10"))  # fmt: skip
    events_price_unpriced()

    rollups_update()

    (hour,) = UsageRollup.objects.filter(grain="hour", model="frontier-y")
    assert (hour.calls, hour.priced_calls, hour.cost) == (3, 3, Decimal("7.5"))
    assert _rollups() == _ledger_oracle()
    rollups_rebuild()
    assert _rollups() == _ledger_oracle()


def test_a_run_killed_midway_leaves_nothing_and_the_next_run_catches_up(
    operator, acme, globex, monkeypatch
) -> None:
    post_events(operator, {"events": _traffic("a", 60)})
    rollups_update()
    before = _rollups()
    post_events(operator, {"events": _traffic("b", 60, start=BASE + timedelta(hours=20))})

    def killed(self, *args, **kwargs):
        raise SystemExit("worker killed")

    with monkeypatch.context() as patch:
        patch.setattr(RollupWatermark, "save", killed)
        with pytest.raises(SystemExit):
            rollups_update()
    assert _rollups() == before

    assert rollups_update().events == 60
    assert _rollups() == _ledger_oracle()


@postgres_only
def test_the_same_job_run_at_once_counts_each_event_once(operator, acme, globex) -> None:
    post_events(operator, {"events": _traffic("a", 200)})
    results = run_at_once(4, lambda _: rollups_update())

    assert sum(r.events for r in results) == 200
    assert _rollups() == _ledger_oracle()


@postgres_only
def test_a_transaction_committing_after_a_younger_one_is_not_lost(acme) -> None:
    """T1 inserts first (lower id) but commits after T2; a rollup runs in between.
    An id watermark would skip T1's event forever."""
    inserted, release = threading.Event(), threading.Event()

    def slow_writer() -> None:
        try:
            with transaction.atomic():
                events_ingest(key_tenant=acme, items=[_raw("slow")])
                inserted.set()
                release.wait(10)
        finally:
            connections.close_all()

    writer = threading.Thread(target=slow_writer)
    writer.start()
    assert inserted.wait(10)
    events_ingest(key_tenant=acme, items=[_raw("fast")])
    first = rollups_update()
    release.set()
    writer.join()
    second = rollups_update()

    slow, fast = (UsageEvent.objects.get(event_id=i) for i in ("slow", "fast"))
    assert slow.id < fast.id
    assert first.events == 0  # the fast one waits behind the open transaction
    assert second.events == 2
    assert _rollups() == _ledger_oracle()


def _raw(event_id: str) -> bytes:
    import json

    # No feature or prompt: a new one inserted by the open transaction would make the
    # other writer wait for its commit, and the scenario would not happen.
    return json.dumps(
        event(event_id=event_id, tenant=None, feature=None, prompt_template=None)
    ).encode()


def test_session_and_prompt_keys_are_kept_while_events_can_still_arrive(acme) -> None:
    today = datetime.now(UTC).date()
    old = today - timedelta(days=38)
    last_open = today - timedelta(days=37)
    DailyKey.objects.bulk_create([DailyKey(day=day, key=1) for day in (old, last_open, today)])

    rollups_update()

    kept = DailyKey.objects.exclude(day=rollups.KEYS_WHOLE).values_list("day", flat=True)
    assert sorted(kept) == [last_open, today]


def _dailykey_table() -> dict:
    """`billing_dailykey` as the database has it: columns, constraints and indexes,
    persistence, options and grants."""
    with connection.cursor() as cursor:
        columns = [
            (c.name, c.type_code, c.null_ok, c.default)
            for c in connection.introspection.get_table_description(cursor, "billing_dailykey")
        ]
        constraints = connection.introspection.get_constraints(cursor, "billing_dailykey")
        cursor.execute("SELECT relpersistence, reloptions, relacl::text[] FROM pg_class "
                       "WHERE relname = 'billing_dailykey'")  # fmt: skip
        persistence, options, grants = cursor.fetchone()
    return {"columns": columns, "constraints": constraints, "persistence": persistence,
            "options": options, "grants": grants}  # fmt: skip


def _dailykey_as_migrated() -> dict:
    """What the migrations declare of `DailyKey`: columns, NULLs, primary key."""
    state = MigrationLoader(connection).project_state()
    model = state.apps.get_model("billing", "DailyKey")
    fields = [f for f in model._meta.concrete_fields if f.column]
    return {"columns": [(f.column, f.null) for f in fields],
            "primary key": [f.column for f in model._meta.pk_fields]}  # fmt: skip


@postgres_only
def test_a_big_run_bulk_loads_its_keys(operator, acme, globex, monkeypatch, caplog) -> None:
    """The path of a first fold of millions of events, on a few: keys recorded as a bulk
    load (a new table in the old one's place, its primary key built after). The table it
    leaves is the one the migrations made, so that the next migration finds what it
    expects."""
    migrated = _dailykey_table()
    monkeypatch.setattr(keys, "BULK_KEYS", 1)
    caplog.set_level(logging.DEBUG, logger="billing.rollups")
    post_events(operator, {"events": _traffic("a", 200)})

    rollups_update()

    assert "rollup keys indexed" in caplog.text
    assert _rollups() == _ledger_oracle()
    loaded = _dailykey_table()
    assert loaded == migrated
    assert loaded["persistence"] == "u"  # unlogged, as migration 0009 made it
    declared = _dailykey_as_migrated()
    assert [(name, null) for name, _, null, _ in loaded["columns"]] == declared["columns"]
    (primary,) = [c for c in loaded["constraints"].values() if c["primary_key"]]
    assert primary["columns"] == declared["primary key"] == ["day", "key"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('rollup_keys_loaded')")
        assert cursor.fetchone() == (None,)
    # A later run, with fewer new keys than the table holds, inserts them one by one.
    caplog.clear()
    post_events(operator, {"events": _traffic("b", 30, start=BASE + timedelta(hours=2))})
    rollups_update()
    assert "rollup keys recorded" in caplog.text
    assert "rollup keys indexed" not in caplog.text
    assert _rollups() == _ledger_oracle()


UPSERT_KEYS = {"HOUR_UPSERT_SQL": USAGE_KEY, "DAY_UPSERT_SQL": USAGE_KEY,
               "FEATURE_UPSERT_SQL": FEATURE_KEY}  # fmt: skip


@pytest.mark.parametrize("statement", [*UPSERT_KEYS, "DELTA_SQL"])
def test_each_statement_lists_every_key_and_sum_once_in_order(statement: str) -> None:
    """The statements are spelled out: each must name the rollups' keys and sums, all of
    them, in the order of the model (inserted, selected, grouped by, in the conflict
    target and, for the sums of the upserts, added)."""
    text = getattr(sql, statement)
    if statement == "DELTA_SQL":
        (selected,) = re.findall(r"SELECT (h\.period_start,.*?)FROM parts", text, re.S)
        names = [h or alias for h, alias in re.findall(r"h\.(\w+)|AS (\w+)", selected)]
        keys = [k for k in USAGE_KEY if k != "grain"]
        keys.insert(keys.index("routing_tier") + 1, "tenant_tier")
        assert names == [*keys, *SUMS]
        return
    key = UPSERT_KEYS[statement]
    (inserted,) = re.findall(r"INSERT INTO \w+ \((.*?)\)", text, re.S)
    assert [c.strip() for c in inserted.split(",")] == [*key, *SUMS]
    (selected,) = re.findall(r"SELECT (.*?)FROM rollup_delta", text, re.S)
    grouped = re.sub(r"date_trunc\(.*?period_start\)", "period_start", selected.split("sum(")[0])
    assert [c.strip() for c in grouped.split(",")][1:-1] == list(key[1:])
    assert re.findall(r"sum\((\w+)\)", selected) == list(SUMS)
    (group_by,) = re.findall(r"FROM rollup_delta GROUP BY ([\d, ]+)\n", text)
    assert [int(n) for n in group_by.split(",")] == list(range(2, len(key) + 1))
    (target,) = re.findall(r"ON CONFLICT \((.*?)\)", text, re.S)
    assert sorted(c.strip() for c in target.split(",")) == sorted(key)
    added = re.findall(r"(\w+) =\s+billing_\w+\.(\w+) \+ EXCLUDED\.(\w+)", text)
    assert added == [(k, k, k) for k in SUMS]


def test_every_hash_of_a_rollup_row_hashes_the_same_columns() -> None:
    """A session or prompt hash counts on the row whose hash its first event's row has:
    the keys' statement and the delta must hash the same columns, the tag the same way,
    and they must be what the delta groups its events by."""
    (tag,) = re.findall(r"SELECT e\.\*, (.*?) AS tag,", sql.DELTA_SQL, re.S)

    def columns(text: str) -> list[str]:
        text = re.sub(r"\s+", " ", text.replace(tag, "e.tag")).strip()
        return text.replace("date_trunc('hour', e.timestamp)", "e.hour").split(", ")

    def hashed(text: str) -> list[list[str]]:
        rows = re.findall(r"hash_record_extended\(ROW\((.*?)\),\s*0\)", text, re.S)
        return [columns(r) for r in rows]

    firsts, delta = hashed(sql.FIRSTS_SQL), hashed(sql.DELTA_SQL)
    assert len(firsts) == 2 and len(delta) == 1
    assert firsts[0] == firsts[1] == delta[0] == [f"e.{c}" for c in (
        "hour", "tenant_id", "feature_id", "model", "prompt_template_id", "routing_tier",
        "tenant_tier", *SLICES)]  # fmt: skip
    (grouped,) = re.findall(r"event_groups AS \(\s+SELECT (.*?),\s+count\(\*\) AS calls",
                            sql.DELTA_SQL, re.S)  # fmt: skip
    assert columns(grouped.replace(" AS period_start", "")) == delta[0]
    # The cost changes' rows take the tag as the events' do.
    assert f"{tag} AS tag" in sql.DELTA_SQL.split("change_rows AS")[1]


def _events_past_the_first_range(operator) -> int:
    """Events posted until the table is longer than one range of the index; their count."""
    posted = 0
    while True:
        post_events(operator, {"events": _traffic(f"r{posted}", 500)})
        posted += 500
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_relation_size('ingestion_usageevent') / 8192")
            if cursor.fetchone()[0] > 128:
                return posted


def _unsummarized_ranges() -> int:
    """How many page ranges of the events' index on `xact` were not summarized. The call
    summarizes them (a summary is not undone by a rollback): once per test. A range is
    128 pages; the first is summarized when the table is created or emptied."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT brin_summarize_new_values('usage_event_xact_brin')")
        return cursor.fetchone()[0]


@postgres_only
def test_a_run_summarizes_the_new_events_index_ranges(operator) -> None:
    """A run finds its new events through the BRIN index on `xact`; a range it has not
    summarized would be read whole, every run, until autovacuum got to it."""
    _events_past_the_first_range(operator)

    rollups_update()

    assert _unsummarized_ranges() == 0
    post_events(operator, {"events": _traffic("b", 20, start=BASE + timedelta(hours=1))})
    rollups_update()
    assert _rollups() == _ledger_oracle()


@postgres_only
def test_a_run_does_not_wait_for_a_vacuum_of_the_events(operator, caplog) -> None:
    """A VACUUM holds the lock the summary needs; the run goes on without it, and counts
    all the same."""
    events = _events_past_the_first_range(operator)
    locked, release = threading.Event(), threading.Event()

    def vacuum_like() -> None:
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("LOCK TABLE ingestion_usageevent IN SHARE UPDATE EXCLUSIVE MODE")
                locked.set()
                release.wait(10)
        finally:
            connections.close_all()

    holder = threading.Thread(target=vacuum_like)
    holder.start()
    try:
        assert locked.wait(10)
        caplog.set_level(logging.INFO, logger="billing.rollups")
        result = rollups_update()
    finally:
        release.set()
        holder.join()

    assert result.events == events
    assert "stay unsummarized" in caplog.text
    assert _rollups() == _ledger_oracle()
    assert _unsummarized_ranges() > 0


@postgres_only
def test_keys_lost_in_a_crash_are_recorded_again_before_the_next_fold(operator, caplog) -> None:
    """The keys' table is unlogged: crash recovery empties it. The next run records the
    folded events' keys again, so a session already counted that day is not counted twice
    and a prompt already sent stays a repeat."""
    post_events(operator, {"events": _traffic("a", 120)})
    rollups_update()
    before = set(DailyKey.objects.values_list("day", "key"))
    with connection.cursor() as cursor:
        cursor.execute("SELECT relpersistence FROM pg_class WHERE relname = 'billing_dailykey'")
        assert cursor.fetchone() == ("u",)
        cursor.execute("TRUNCATE billing_dailykey")  # what crash recovery does to it

    # The same sessions and prompt hashes, the same days.
    post_events(operator, {"events": _traffic("b", 120, start=BASE + timedelta(minutes=5))})
    caplog.set_level(logging.WARNING, logger="billing.rollups")
    rollups_update()

    assert "recording those of the folded events again" in caplog.text
    assert before <= set(DailyKey.objects.values_list("day", "key"))
    assert _rollups() == _ledger_oracle()
    # Whole again: the next run does not record them again.
    caplog.clear()
    post_events(operator, {"events": _traffic("c", 10, start=BASE + timedelta(minutes=9))})
    rollups_update()
    assert "recording" not in caplog.text
    assert _rollups() == _ledger_oracle()


@postgres_only
def test_both_rollup_tables_keep_room_for_updates_in_place() -> None:
    """Every run adds to rows already there: with room on each page PostgreSQL updates
    them in place (HOT), without a new entry in each index per update."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, reloptions FROM pg_class "
            "WHERE relname IN ('billing_usagerollup', 'billing_featurerollup') ORDER BY 1"
        )
        assert cursor.fetchall() == [
            ("billing_featurerollup", ["fillfactor=70"]),
            ("billing_usagerollup", ["fillfactor=70"]),
        ]


def test_rollups_keep_provider_region_and_the_rate_class_that_priced_each_call(
    operator, acme
) -> None:
    """Each rollup row sums calls of one rate class: its token sums priced at that class's
    rates give its cost. `batch: true` is the batch tier, as `service_tier: "batch"`."""
    night = ModelPriceFactory(model="night-owl", input_per_million=2, output_per_million=8,
                              off_peak_windows=[{"hours_utc": ["00:00-00:00"]}])  # fmt: skip
    PriceRate.objects.create(price=night, service_tier="standard", token_kind="input",
                             off_peak=True, per_million=1)  # fmt: skip
    PriceRate.objects.create(price=night, service_tier="standard", token_kind="cached_input",
                             off_peak=True, per_million=Decimal("0.1"))  # fmt: skip
    at, gpt = BASE.isoformat(), {"input_tokens": 1_000_000, "cached_input_tokens": 0,
                                 "output_tokens": 100_000}  # fmt: skip
    post_events(operator, {"events": [
        event(event_id="std", timestamp=at, region="us", **gpt),
        event(event_id="batch-flag", timestamp=at, region="us", batch=True, **gpt),
        event(event_id="batch-tier", timestamp=at, region="us", service_tier="batch", **gpt),
        event(event_id="eu", timestamp=at, region="eu", provider="openai", **gpt),
        event(event_id="long", timestamp=at, model="gemini-2.5-pro", input_tokens=250_000,
              cached_input_tokens=0, output_tokens=10_000),
        event(event_id="night", timestamp=at, model="night-owl", input_tokens=1_000_000,
              cached_input_tokens=500_000, output_tokens=10_000),
    ]})  # fmt: skip

    rollups_update()

    assert _rollups() == _ledger_oracle()
    slices = ("model", "provider", "region", "service_tier", "above_tokens", "off_peak")
    for model in (UsageRollup, FeatureRollup):
        rows = model.objects.filter(grain="hour").values_list(
            *slices, "calls", "input_tokens", "output_tokens", "cost"
        )
        assert {r[:6]: r[6:] for r in rows} == {
            # 1M input at 2.50 and 100k output at 10 per 1M: 2.50 + 1.00.
            ("gpt-4o-2024-08-06", "", "us", "standard", 0, False):
                (1, 1_000_000, 100_000, Decimal("3.5")),
            # Batch: 2M input at 1.25 and 200k output at 5 per 1M: 2.50 + 1.00.
            ("gpt-4o-2024-08-06", "", "us", "batch", 0, False):
                (2, 2_000_000, 200_000, Decimal("3.5")),
            ("gpt-4o-2024-08-06", "openai", "eu", "standard", 0, False):
                (1, 1_000_000, 100_000, Decimal("3.5")),
            # Above 200k prompt tokens: 250k at 2.50 and 10k at 15 per 1M: 0.625 + 0.15.
            ("gemini-2.5-pro", "", "", "standard", 200_000, False):
                (1, 250_000, 10_000, Decimal("0.775")),
            # Off-peak: 500k uncached at 1, 500k cached at 0.1, 10k output at 8 per 1M.
            ("night-owl", "", "", "standard", 0, True): (1, 1_000_000, 10_000, Decimal("0.63")),
        }, model  # fmt: skip


def _set_tags(event_id: str, tags_json: str) -> None:
    """Tags the API would not take (values other than strings): written as JSON text."""
    cast = "CAST(%s AS jsonb)" if connection.vendor == "postgresql" else "%s"
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE ingestion_usageevent SET tags = {cast} WHERE event_id = %s",
                       [tags_json, event_id])  # fmt: skip


# Tags as JSON text -> the rollups' tag: PostgreSQL's `tags ->> 'team'`, by hand.
TAGS = {
    '{"team": "search"}': "search",
    '{"team": true}': "true",
    '{"team": false}': "false",
    '{"team": 1}': "1",
    '{"team": 1.50}': "1.50",
    '{"team": 1e2}': "100",
    '{"team": -0.0}': "0.0",
    '{"team": null}': "",
    '{"other": "x"}': "",
    '{"team": ""}': "",
    '{"team": {"bb": [true, null, 2.50, "\\u00e9\\n\\"/"], "a": {}, "a": 1}}':
        '{"a": 1, "bb": [true, null, 2.50, "\u00e9\\n\\"/"]}',
    '{"team": "%s"}' % ("\u00e9" * 250): "\u00e9" * 200,
}  # fmt: skip


def test_the_reported_tag_is_the_text_of_one_key_whatever_its_json(operator, acme,
                                                                   settings) -> None:  # fmt: skip
    """The fold keeps the tag's value as PostgreSQL's `->>` writes it, on either database:
    strings as they are, JSON null and a missing key as '', other values as jsonb prints
    them (numbers as written, keys shorter first), to 200 characters."""
    post_events(operator, {"events": [
        event(event_id=f"t{i}", timestamp=BASE.isoformat()) for i in range(len(TAGS))
    ]})  # fmt: skip
    for i, tags in enumerate(TAGS):
        _set_tags(f"t{i}", tags)
    expected: dict[str, int] = defaultdict(int)
    for tag in TAGS.values():
        expected[tag] += 1

    rollups_update()

    for model in (UsageRollup, FeatureRollup):
        rows = model.objects.filter(grain="hour").values_list("tag", "calls")
        assert dict(rows) == expected
    # Without a key the tag is '' for every event; a rebuild takes the key set now.
    settings.FINOPS_REPORT_TAG_KEY = ""
    rollups_rebuild()
    assert list(UsageRollup.objects.filter(grain="hour").values_list("tag", "calls")) == [
        ("", len(TAGS))
    ]
    settings.FINOPS_REPORT_TAG_KEY = "team"
    rollups_rebuild()
    assert dict(FeatureRollup.objects.filter(grain="day").values_list("tag", "calls")) == expected
