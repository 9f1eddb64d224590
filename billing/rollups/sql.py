"""The statements of the PostgreSQL fold, each spelled out whole, and how a step runs.

Their column lists are the rollups' keys (`columns.USAGE_KEY`, `columns.FEATURE_KEY`) and
sums (`columns.SUMS`) in order; a test (tests/billing/test_rollups.py) checks that each
statement names them all, once, and that every hash of a row hashes the same columns.
"""

from __future__ import annotations

import logging
import time
from typing import Any

logger = logging.getLogger(__name__)

# The run's first-of-day keys: a plain table rather than a temporary one, which parallel
# workers could not read; unlogged, created and dropped in the run's transaction. Runs
# take turns on the watermark's lock: the table is one run's alone.
FIRSTS = "rollup_firsts"
DELTA = "rollup_delta"
KEYS_LOADED = "rollup_keys_loaded"

# The sessions and prompt hashes of the new events, each (UTC day, key) once with the
# row its first event (the lowest id) is folded into, the key hashing the tenant, the
# kind and the text. A key is 64 bits of `hashtextextended`, seeded by tenant and kind.
# The row (hour, tenant, feature, model, prompt template, routing tier, tenant tier,
# provider, region, service tier, long-context threshold, off-peak, tag) is a 64-bit
# `hash_record_extended`, computed again on each group of the delta below, the same
# values giving the same hash. Each kind is grouped whole by one process (on a big run
# the two side by side, in parallel workers): split among workers, each would hash nearly
# every key, then the leader all of them again.
# The tag is the value in the event's tags of the key `FINOPS_REPORT_TAG_KEY` names
# (`tag_key`), to the column's 200 characters: '' for none, and for every event when no key
# is set (NULLIF: `->>` of NULL is NULL). `billing.rollups.tags` computes the same text.
FIRSTS_SQL = """
CREATE UNLOGGED TABLE rollup_firsts AS
-- (min(ARRAY[id, cell]))[2]: the row of the key's lowest id.
SELECT day, key, true AS session, (min(ARRAY[id, cell]))[2] AS cell FROM (
    SELECT e.timestamp::date AS day, hashtextextended(e.session, e.tenant_id * 2) AS key,
           e.id,
           hash_record_extended(ROW(date_trunc('hour', e.timestamp), e.tenant_id,
               e.feature_id, e.model, e.prompt_template_id, e.routing_tier, e.tenant_tier,
               e.provider, e.region, e.service_tier, e.above_tokens, e.off_peak,
               COALESCE(left(e.tags ->> NULLIF(%(tag_key)s, ''), 200), '')),
               0) AS cell
      FROM ingestion_usageevent e
     WHERE e.xact >= %(low_events)s AND e.xact < %(high)s AND e.session <> ''
) s GROUP BY day, key
UNION ALL
SELECT day, key, false, (min(ARRAY[id, cell]))[2] AS cell FROM (
    SELECT e.timestamp::date AS day, hashtextextended(e.prompt_hash, e.tenant_id * 2 + 1) AS key,
           e.id,
           hash_record_extended(ROW(date_trunc('hour', e.timestamp), e.tenant_id,
               e.feature_id, e.model, e.prompt_template_id, e.routing_tier, e.tenant_tier,
               e.provider, e.region, e.service_tier, e.above_tokens, e.off_peak,
               COALESCE(left(e.tags ->> NULLIF(%(tag_key)s, ''), 200), '')),
               0) AS cell
      FROM ingestion_usageevent e
     WHERE e.xact >= %(low_events)s AND e.xact < %(high)s AND e.prompt_hash <> ''
) p GROUP BY day, key
"""

# The same keys without their rows: to record again those of the events already folded.
KEYS_RESTORE_SQL = """
CREATE UNLOGGED TABLE rollup_firsts AS
SELECT day, key, true AS session FROM (
    SELECT e.timestamp::date AS day, hashtextextended(e.session, e.tenant_id * 2) AS key
      FROM ingestion_usageevent e
     WHERE e.xact >= %(low_events)s AND e.xact < %(high)s AND e.session <> ''
) s GROUP BY day, key
UNION ALL
SELECT day, key, false FROM (
    SELECT e.timestamp::date AS day, hashtextextended(e.prompt_hash, e.tenant_id * 2 + 1) AS key
      FROM ingestion_usageevent e
     WHERE e.xact >= %(low_events)s AND e.xact < %(high)s AND e.prompt_hash <> ''
) p GROUP BY day, key
"""

# Keys already recorded are not firsts. A key left is the first of its session, or of its
# prompt, for its tenant that day; the delta counts it on that row, with no join back to
# the events.
FIRSTS_SEEN_SQL = """
DELETE FROM rollup_firsts f USING billing_dailykey d WHERE d.day = f.day AND d.key = f.key
"""

# The keys to record: only days that can still receive events (older ones are pruned
# anyway). Into the index in its order, so that each key lands next to the last.
FIRSTS_RECORD_SQL = """
INSERT INTO billing_dailykey (day, key)
SELECT day, key FROM rollup_firsts WHERE day >= %(keep_from)s ORDER BY day, key
"""

# A bulk load writes the keys kept and the new ones into a new table, which then takes the
# old one's place: CREATE TABLE AS takes the bulk-insert path, which INSERT ... SELECT does
# not.
KEYS_LOAD_SQL = """
CREATE UNLOGGED TABLE rollup_keys_loaded AS
SELECT day, key FROM billing_dailykey
UNION ALL
SELECT day, key FROM rollup_firsts WHERE day >= %(keep_from)s
"""

# The loaded table in the old one's place, under the old one's name, then its primary
# key, which makes both columns NOT NULL again: the table as migrations made it, unlogged
# (tests/billing/test_rollups.py compares the two).
KEYS_LOCK_SQL = "LOCK TABLE billing_dailykey IN ACCESS EXCLUSIVE MODE"
KEYS_SWAP_SQL = (
    "DROP TABLE billing_dailykey",
    "ALTER TABLE rollup_keys_loaded RENAME TO billing_dailykey",
)
KEYS_INDEX_SQL = (
    "ALTER TABLE billing_dailykey ADD CONSTRAINT billing_dailykey_pkey PRIMARY KEY (day, key)"
)

# The hours touched since the watermark, grouped by ids (no joins per event), then named.
# CREATE TABLE AS may run in parallel, which an INSERT with a CTE may not.
DELTA_SQL = """
CREATE TEMP TABLE rollup_delta ON COMMIT DROP AS
WITH events AS (
    SELECT e.*, COALESCE(left(e.tags ->> NULLIF(%(tag_key)s, ''), 200), '') AS tag,
           ch.priced AS changed_priced, ch.cost AS changed_cost
      FROM ingestion_usageevent e
      -- The changes of these events only (by the changes' index on their event): summing
      -- every change ever written would make each run as slow as the history is long.
      LEFT JOIN (
          SELECT c.event_id, sum(c.priced_delta) AS priced, sum(c.cost_delta) AS cost
            FROM ingestion_costchange c
            JOIN ingestion_usageevent ce ON ce.id = c.event_id
           WHERE ce.xact >= %(low_events)s AND ce.xact < %(high)s
           GROUP BY c.event_id
      ) ch ON ch.event_id = e.id
     WHERE e.xact >= %(low_events)s AND e.xact < %(high)s
),
-- An event counts as it was inserted: its later cost changes (committed with the event's
-- update, so this snapshot sees both or neither) are taken off here and folded on their
-- own below. Sums of what is there rather than sums of per-event differences: most events
-- have no change, and adding nothing costs nothing.
event_groups AS (
    SELECT date_trunc('hour', e.timestamp) AS period_start, e.tenant_id, e.feature_id, e.model,
           e.prompt_template_id, e.routing_tier, e.tenant_tier,
           e.provider, e.region, e.service_tier, e.above_tokens, e.off_peak, e.tag,
           count(*) AS calls,
           (count(e.price_id) - COALESCE(sum(e.changed_priced), 0))::bigint AS priced_calls,
           sum(e.input_tokens)::bigint AS input_tokens,
           sum(e.cached_input_tokens)::bigint AS cached_input_tokens,
           sum(e.cache_write_tokens)::bigint AS cache_write_tokens,
           sum(e.cache_write_1h_tokens)::bigint AS cache_write_1h_tokens,
           sum(e.output_tokens)::bigint AS output_tokens,
           sum(e.reasoning_tokens)::bigint AS reasoning_tokens,
           sum(e.grounding_tokens)::bigint AS grounding_tokens,
           sum(e.wasted_tokens)::bigint AS wasted_tokens,
           sum(e.queries)::bigint AS queries,
           COALESCE(sum(e.cost), 0) - COALESCE(sum(e.changed_cost), 0) AS cost,
           COALESCE(sum(e.chunks_retrieved), 0)::bigint AS chunks_retrieved,
           COALESCE(sum(e.chunks_used), 0)::bigint AS chunks_used,
           count(e.reranker_changed_order) AS reranked_calls,
           count(*) FILTER (WHERE e.reranker_changed_order) AS reranker_changed,
           count(*) FILTER (WHERE e.outcome <> '') AS outcome_calls,
           count(*) FILTER (WHERE e.outcome = 'correct') AS correct_calls,
           COALESCE(sum(e.cost) FILTER (WHERE e.outcome <> ''), 0)
               - COALESCE(sum(e.changed_cost) FILTER (WHERE e.outcome <> ''), 0)
               AS outcome_cost,
           COALESCE(sum(e.cost) FILTER (WHERE e.session <> ''), 0)
               - COALESCE(sum(e.changed_cost) FILTER (WHERE e.session <> ''), 0)
               AS session_cost,
           count(*) FILTER (WHERE e.prompt_hash <> '') AS hashed_calls,
           count(*) FILTER (WHERE e.escalated) AS escalated_calls,
           count(e.cache_hit) AS cache_known_calls,
           count(*) FILTER (WHERE e.cache_hit) AS cache_hit_calls,
           COALESCE(sum(e.cost) FILTER (WHERE e.cache_hit), 0)
               - COALESCE(sum(e.changed_cost) FILTER (WHERE e.cache_hit), 0)
               AS cache_hit_cost,
           hash_record_extended(ROW(date_trunc('hour', e.timestamp), e.tenant_id,
               e.feature_id, e.model, e.prompt_template_id, e.routing_tier, e.tenant_tier,
               e.provider, e.region, e.service_tier, e.above_tokens, e.off_peak,
               e.tag),
               0) AS cell
      FROM events e GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13
),
-- The first-of-day keys counted on the rows of their first events: sessions, and the
-- prompt hashes' first calls (the others are repeats).
first_cells AS (
    SELECT cell, count(*) FILTER (WHERE session) AS sessions,
           count(*) FILTER (WHERE NOT session) AS first_prompts
      FROM rollup_firsts GROUP BY cell
),
event_hours AS (
    SELECT g.period_start, g.tenant_id, g.feature_id, g.model, g.prompt_template_id,
           g.routing_tier, g.tenant_tier,
           g.provider, g.region, g.service_tier, g.above_tokens, g.off_peak, g.tag,
           g.calls, g.priced_calls,
           g.input_tokens, g.cached_input_tokens, g.cache_write_tokens,
           g.cache_write_1h_tokens, g.output_tokens, g.reasoning_tokens, g.grounding_tokens,
           g.wasted_tokens, g.queries,
           g.cost,
           g.chunks_retrieved, g.chunks_used, g.reranked_calls, g.reranker_changed,
           g.outcome_calls, g.correct_calls, g.outcome_cost, g.session_cost,
           COALESCE(f.sessions, 0) AS sessions,
           g.hashed_calls,
           g.hashed_calls - COALESCE(f.first_prompts, 0) AS repeat_calls,
           g.escalated_calls, g.cache_known_calls, g.cache_hit_calls, g.cache_hit_cost
      FROM event_groups g LEFT JOIN first_cells f ON f.cell = g.cell
),
change_rows AS (
    SELECT e.timestamp AS ts, e.tenant_id, e.feature_id, e.model, e.prompt_template_id,
           e.routing_tier, e.tenant_tier,
           e.provider, e.region, e.service_tier, e.above_tokens, e.off_peak,
           COALESCE(left(e.tags ->> NULLIF(%(tag_key)s, ''), 200), '') AS tag,
           0 AS calls, c.priced_delta AS priced_calls,
           0 AS input_tokens, 0 AS cached_input_tokens, 0 AS cache_write_tokens,
           0 AS cache_write_1h_tokens, 0 AS output_tokens, 0 AS reasoning_tokens,
           0 AS grounding_tokens, 0 AS wasted_tokens, 0 AS queries,
           c.cost_delta AS cost,
           0 AS chunks_retrieved, 0 AS chunks_used, 0 AS reranked_calls,
           0 AS reranker_changed, 0 AS outcome_calls, 0 AS correct_calls,
           CASE WHEN e.outcome <> '' THEN c.cost_delta ELSE 0 END AS outcome_cost,
           CASE WHEN e.session <> '' THEN c.cost_delta ELSE 0 END AS session_cost,
           0 AS sessions, 0 AS hashed_calls, 0 AS repeat_calls,
           0 AS escalated_calls, 0 AS cache_known_calls, 0 AS cache_hit_calls,
           CASE WHEN e.cache_hit THEN c.cost_delta ELSE 0 END AS cache_hit_cost
      FROM ingestion_costchange c
      JOIN ingestion_usageevent e ON e.id = c.event_id
     WHERE c.xact >= %(low_changes)s AND c.xact < %(high)s
),
-- Each part grouped on its own (the events' part by parallel workers on a big run); the
-- upserts add them up, as they group the delta anyway. Counts are summed as bigint
-- (PostgreSQL's sum of bigint is numeric): the next sum of them then adds 128-bit
-- integers rather than numerics.
parts AS (
    SELECT * FROM event_hours
    UNION ALL
    SELECT date_trunc('hour', ts), tenant_id, feature_id, model, prompt_template_id,
           routing_tier, tenant_tier, provider, region, service_tier, above_tokens, off_peak,
           tag,
           sum(calls)::bigint, sum(priced_calls)::bigint,
           sum(input_tokens)::bigint, sum(cached_input_tokens)::bigint,
           sum(cache_write_tokens)::bigint, sum(cache_write_1h_tokens)::bigint,
           sum(output_tokens)::bigint, sum(reasoning_tokens)::bigint,
           sum(grounding_tokens)::bigint, sum(wasted_tokens)::bigint, sum(queries)::bigint,
           sum(cost),
           sum(chunks_retrieved)::bigint, sum(chunks_used)::bigint,
           sum(reranked_calls)::bigint, sum(reranker_changed)::bigint,
           sum(outcome_calls)::bigint, sum(correct_calls)::bigint,
           sum(outcome_cost), sum(session_cost),
           sum(sessions)::bigint, sum(hashed_calls)::bigint, sum(repeat_calls)::bigint,
       sum(escalated_calls)::bigint, sum(cache_known_calls)::bigint,
       sum(cache_hit_calls)::bigint, sum(cache_hit_cost)
      FROM change_rows GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13
)
SELECT h.period_start, h.tenant_id, COALESCE(f.key, '') AS feature, h.model,
       COALESCE(p.key, '') AS prompt_template, h.routing_tier, h.tenant_tier,
       h.provider, h.region, h.service_tier, h.above_tokens, h.off_peak, h.tag,
       h.calls, h.priced_calls,
       h.input_tokens, h.cached_input_tokens, h.cache_write_tokens, h.cache_write_1h_tokens,
       h.output_tokens, h.reasoning_tokens, h.grounding_tokens, h.wasted_tokens, h.queries,
       h.cost,
       h.chunks_retrieved, h.chunks_used, h.reranked_calls, h.reranker_changed,
       h.outcome_calls, h.correct_calls, h.outcome_cost, h.session_cost,
       h.sessions, h.hashed_calls, h.repeat_calls,
       h.escalated_calls, h.cache_known_calls, h.cache_hit_calls, h.cache_hit_cost
  FROM parts h
  LEFT JOIN ingestion_feature f ON f.id = h.feature_id
  LEFT JOIN ingestion_prompttemplate p ON p.id = h.prompt_template_id
"""

# The delta holds the events' part and the cost changes' part apart, and splits by the
# tenant's tier (which a tenant may change within an hour): each upsert groups it to its
# own key first, so no row is hit twice.
HOUR_UPSERT_SQL = """
INSERT INTO billing_usagerollup (
    grain, period_start, tenant_id, feature, model, prompt_template, routing_tier,
    provider, region, service_tier, above_tokens, off_peak, tag,
    calls, priced_calls,
    input_tokens, cached_input_tokens, cache_write_tokens, cache_write_1h_tokens,
    output_tokens, reasoning_tokens, grounding_tokens, wasted_tokens, queries,
    cost,
    chunks_retrieved, chunks_used, reranked_calls, reranker_changed,
    outcome_calls, correct_calls, outcome_cost, session_cost,
    sessions, hashed_calls, repeat_calls,
    escalated_calls, cache_known_calls, cache_hit_calls, cache_hit_cost
)
SELECT 'hour', period_start, tenant_id, feature, model, prompt_template, routing_tier,
       provider, region, service_tier, above_tokens, off_peak, tag,
       sum(calls)::bigint, sum(priced_calls)::bigint,
       sum(input_tokens)::bigint, sum(cached_input_tokens)::bigint,
       sum(cache_write_tokens)::bigint, sum(cache_write_1h_tokens)::bigint,
       sum(output_tokens)::bigint, sum(reasoning_tokens)::bigint,
       sum(grounding_tokens)::bigint, sum(wasted_tokens)::bigint, sum(queries)::bigint,
       sum(cost),
       sum(chunks_retrieved)::bigint, sum(chunks_used)::bigint,
       sum(reranked_calls)::bigint, sum(reranker_changed)::bigint,
       sum(outcome_calls)::bigint, sum(correct_calls)::bigint,
       sum(outcome_cost), sum(session_cost),
       sum(sessions)::bigint, sum(hashed_calls)::bigint, sum(repeat_calls)::bigint,
       sum(escalated_calls)::bigint, sum(cache_known_calls)::bigint,
       sum(cache_hit_calls)::bigint, sum(cache_hit_cost)
  FROM rollup_delta GROUP BY 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13
ON CONFLICT (grain, tenant_id, period_start, feature, model, prompt_template, routing_tier,
             provider, region, service_tier, above_tokens, off_peak, tag)
DO UPDATE SET
    calls = billing_usagerollup.calls + EXCLUDED.calls,
    priced_calls = billing_usagerollup.priced_calls + EXCLUDED.priced_calls,
    input_tokens = billing_usagerollup.input_tokens + EXCLUDED.input_tokens,
    cached_input_tokens = billing_usagerollup.cached_input_tokens + EXCLUDED.cached_input_tokens,
    cache_write_tokens = billing_usagerollup.cache_write_tokens + EXCLUDED.cache_write_tokens,
    cache_write_1h_tokens =
        billing_usagerollup.cache_write_1h_tokens + EXCLUDED.cache_write_1h_tokens,
    output_tokens = billing_usagerollup.output_tokens + EXCLUDED.output_tokens,
    reasoning_tokens = billing_usagerollup.reasoning_tokens + EXCLUDED.reasoning_tokens,
    grounding_tokens = billing_usagerollup.grounding_tokens + EXCLUDED.grounding_tokens,
    wasted_tokens = billing_usagerollup.wasted_tokens + EXCLUDED.wasted_tokens,
    queries = billing_usagerollup.queries + EXCLUDED.queries,
    cost = billing_usagerollup.cost + EXCLUDED.cost,
    chunks_retrieved = billing_usagerollup.chunks_retrieved + EXCLUDED.chunks_retrieved,
    chunks_used = billing_usagerollup.chunks_used + EXCLUDED.chunks_used,
    reranked_calls = billing_usagerollup.reranked_calls + EXCLUDED.reranked_calls,
    reranker_changed = billing_usagerollup.reranker_changed + EXCLUDED.reranker_changed,
    outcome_calls = billing_usagerollup.outcome_calls + EXCLUDED.outcome_calls,
    correct_calls = billing_usagerollup.correct_calls + EXCLUDED.correct_calls,
    outcome_cost = billing_usagerollup.outcome_cost + EXCLUDED.outcome_cost,
    session_cost = billing_usagerollup.session_cost + EXCLUDED.session_cost,
    sessions = billing_usagerollup.sessions + EXCLUDED.sessions,
    hashed_calls = billing_usagerollup.hashed_calls + EXCLUDED.hashed_calls,
    repeat_calls = billing_usagerollup.repeat_calls + EXCLUDED.repeat_calls,
    escalated_calls = billing_usagerollup.escalated_calls + EXCLUDED.escalated_calls,
    cache_known_calls = billing_usagerollup.cache_known_calls + EXCLUDED.cache_known_calls,
    cache_hit_calls = billing_usagerollup.cache_hit_calls + EXCLUDED.cache_hit_calls,
    cache_hit_cost = billing_usagerollup.cache_hit_cost + EXCLUDED.cache_hit_cost
"""

DAY_UPSERT_SQL = """
INSERT INTO billing_usagerollup (
    grain, period_start, tenant_id, feature, model, prompt_template, routing_tier,
    provider, region, service_tier, above_tokens, off_peak, tag,
    calls, priced_calls,
    input_tokens, cached_input_tokens, cache_write_tokens, cache_write_1h_tokens,
    output_tokens, reasoning_tokens, grounding_tokens, wasted_tokens, queries,
    cost,
    chunks_retrieved, chunks_used, reranked_calls, reranker_changed,
    outcome_calls, correct_calls, outcome_cost, session_cost,
    sessions, hashed_calls, repeat_calls,
    escalated_calls, cache_known_calls, cache_hit_calls, cache_hit_cost
)
SELECT 'day', date_trunc('day', period_start), tenant_id, feature, model, prompt_template,
       routing_tier, provider, region, service_tier, above_tokens, off_peak, tag,
       sum(calls)::bigint, sum(priced_calls)::bigint,
       sum(input_tokens)::bigint, sum(cached_input_tokens)::bigint,
       sum(cache_write_tokens)::bigint, sum(cache_write_1h_tokens)::bigint,
       sum(output_tokens)::bigint, sum(reasoning_tokens)::bigint,
       sum(grounding_tokens)::bigint, sum(wasted_tokens)::bigint, sum(queries)::bigint,
       sum(cost),
       sum(chunks_retrieved)::bigint, sum(chunks_used)::bigint,
       sum(reranked_calls)::bigint, sum(reranker_changed)::bigint,
       sum(outcome_calls)::bigint, sum(correct_calls)::bigint,
       sum(outcome_cost), sum(session_cost),
       sum(sessions)::bigint, sum(hashed_calls)::bigint, sum(repeat_calls)::bigint,
       sum(escalated_calls)::bigint, sum(cache_known_calls)::bigint,
       sum(cache_hit_calls)::bigint, sum(cache_hit_cost)
  FROM rollup_delta GROUP BY 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13
ON CONFLICT (grain, tenant_id, period_start, feature, model, prompt_template, routing_tier,
             provider, region, service_tier, above_tokens, off_peak, tag)
DO UPDATE SET
    calls = billing_usagerollup.calls + EXCLUDED.calls,
    priced_calls = billing_usagerollup.priced_calls + EXCLUDED.priced_calls,
    input_tokens = billing_usagerollup.input_tokens + EXCLUDED.input_tokens,
    cached_input_tokens = billing_usagerollup.cached_input_tokens + EXCLUDED.cached_input_tokens,
    cache_write_tokens = billing_usagerollup.cache_write_tokens + EXCLUDED.cache_write_tokens,
    cache_write_1h_tokens =
        billing_usagerollup.cache_write_1h_tokens + EXCLUDED.cache_write_1h_tokens,
    output_tokens = billing_usagerollup.output_tokens + EXCLUDED.output_tokens,
    reasoning_tokens = billing_usagerollup.reasoning_tokens + EXCLUDED.reasoning_tokens,
    grounding_tokens = billing_usagerollup.grounding_tokens + EXCLUDED.grounding_tokens,
    wasted_tokens = billing_usagerollup.wasted_tokens + EXCLUDED.wasted_tokens,
    queries = billing_usagerollup.queries + EXCLUDED.queries,
    cost = billing_usagerollup.cost + EXCLUDED.cost,
    chunks_retrieved = billing_usagerollup.chunks_retrieved + EXCLUDED.chunks_retrieved,
    chunks_used = billing_usagerollup.chunks_used + EXCLUDED.chunks_used,
    reranked_calls = billing_usagerollup.reranked_calls + EXCLUDED.reranked_calls,
    reranker_changed = billing_usagerollup.reranker_changed + EXCLUDED.reranker_changed,
    outcome_calls = billing_usagerollup.outcome_calls + EXCLUDED.outcome_calls,
    correct_calls = billing_usagerollup.correct_calls + EXCLUDED.correct_calls,
    outcome_cost = billing_usagerollup.outcome_cost + EXCLUDED.outcome_cost,
    session_cost = billing_usagerollup.session_cost + EXCLUDED.session_cost,
    sessions = billing_usagerollup.sessions + EXCLUDED.sessions,
    hashed_calls = billing_usagerollup.hashed_calls + EXCLUDED.hashed_calls,
    repeat_calls = billing_usagerollup.repeat_calls + EXCLUDED.repeat_calls,
    escalated_calls = billing_usagerollup.escalated_calls + EXCLUDED.escalated_calls,
    cache_known_calls = billing_usagerollup.cache_known_calls + EXCLUDED.cache_known_calls,
    cache_hit_calls = billing_usagerollup.cache_hit_calls + EXCLUDED.cache_hit_calls,
    cache_hit_cost = billing_usagerollup.cache_hit_cost + EXCLUDED.cache_hit_cost
"""

# Across tenants, once per grain (`%(grain)s`: 'hour' or 'day').
FEATURE_UPSERT_SQL = """
INSERT INTO billing_featurerollup (
    grain, period_start, feature, model, routing_tier, tenant_tier,
    provider, region, service_tier, above_tokens, off_peak, tag,
    calls, priced_calls,
    input_tokens, cached_input_tokens, cache_write_tokens, cache_write_1h_tokens,
    output_tokens, reasoning_tokens, grounding_tokens, wasted_tokens, queries,
    cost,
    chunks_retrieved, chunks_used, reranked_calls, reranker_changed,
    outcome_calls, correct_calls, outcome_cost, session_cost,
    sessions, hashed_calls, repeat_calls,
    escalated_calls, cache_known_calls, cache_hit_calls, cache_hit_cost
)
SELECT %(grain)s, date_trunc(%(grain)s, period_start), feature, model, routing_tier,
       tenant_tier, provider, region, service_tier, above_tokens, off_peak, tag,
       sum(calls)::bigint, sum(priced_calls)::bigint,
       sum(input_tokens)::bigint, sum(cached_input_tokens)::bigint,
       sum(cache_write_tokens)::bigint, sum(cache_write_1h_tokens)::bigint,
       sum(output_tokens)::bigint, sum(reasoning_tokens)::bigint,
       sum(grounding_tokens)::bigint, sum(wasted_tokens)::bigint, sum(queries)::bigint,
       sum(cost),
       sum(chunks_retrieved)::bigint, sum(chunks_used)::bigint,
       sum(reranked_calls)::bigint, sum(reranker_changed)::bigint,
       sum(outcome_calls)::bigint, sum(correct_calls)::bigint,
       sum(outcome_cost), sum(session_cost),
       sum(sessions)::bigint, sum(hashed_calls)::bigint, sum(repeat_calls)::bigint,
       sum(escalated_calls)::bigint, sum(cache_known_calls)::bigint,
       sum(cache_hit_calls)::bigint, sum(cache_hit_cost)
  FROM rollup_delta GROUP BY 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12
ON CONFLICT (grain, period_start, feature, model, routing_tier, tenant_tier,
             provider, region, service_tier, above_tokens, off_peak, tag)
DO UPDATE SET
    calls = billing_featurerollup.calls + EXCLUDED.calls,
    priced_calls = billing_featurerollup.priced_calls + EXCLUDED.priced_calls,
    input_tokens = billing_featurerollup.input_tokens + EXCLUDED.input_tokens,
    cached_input_tokens =
        billing_featurerollup.cached_input_tokens + EXCLUDED.cached_input_tokens,
    cache_write_tokens = billing_featurerollup.cache_write_tokens + EXCLUDED.cache_write_tokens,
    cache_write_1h_tokens =
        billing_featurerollup.cache_write_1h_tokens + EXCLUDED.cache_write_1h_tokens,
    output_tokens = billing_featurerollup.output_tokens + EXCLUDED.output_tokens,
    reasoning_tokens = billing_featurerollup.reasoning_tokens + EXCLUDED.reasoning_tokens,
    grounding_tokens = billing_featurerollup.grounding_tokens + EXCLUDED.grounding_tokens,
    wasted_tokens = billing_featurerollup.wasted_tokens + EXCLUDED.wasted_tokens,
    queries = billing_featurerollup.queries + EXCLUDED.queries,
    cost = billing_featurerollup.cost + EXCLUDED.cost,
    chunks_retrieved = billing_featurerollup.chunks_retrieved + EXCLUDED.chunks_retrieved,
    chunks_used = billing_featurerollup.chunks_used + EXCLUDED.chunks_used,
    reranked_calls = billing_featurerollup.reranked_calls + EXCLUDED.reranked_calls,
    reranker_changed = billing_featurerollup.reranker_changed + EXCLUDED.reranker_changed,
    outcome_calls = billing_featurerollup.outcome_calls + EXCLUDED.outcome_calls,
    correct_calls = billing_featurerollup.correct_calls + EXCLUDED.correct_calls,
    outcome_cost = billing_featurerollup.outcome_cost + EXCLUDED.outcome_cost,
    session_cost = billing_featurerollup.session_cost + EXCLUDED.session_cost,
    sessions = billing_featurerollup.sessions + EXCLUDED.sessions,
    hashed_calls = billing_featurerollup.hashed_calls + EXCLUDED.hashed_calls,
    repeat_calls = billing_featurerollup.repeat_calls + EXCLUDED.repeat_calls,
    escalated_calls = billing_featurerollup.escalated_calls + EXCLUDED.escalated_calls,
    cache_known_calls = billing_featurerollup.cache_known_calls + EXCLUDED.cache_known_calls,
    cache_hit_calls = billing_featurerollup.cache_hit_calls + EXCLUDED.cache_hit_calls,
    cache_hit_cost = billing_featurerollup.cache_hit_cost + EXCLUDED.cache_hit_cost
"""

EVENTS_FOLDED_SQL = "SELECT COALESCE(sum(calls), 0) FROM rollup_delta"
CHANGES_FOLDED_SQL = """
SELECT count(*) FROM ingestion_costchange WHERE xact >= %(low_changes)s AND xact < %(high)s
"""


def step(cursor: Any, name: str, sql: str, params: Any = None) -> int:
    """Run one statement of a fold, its time in the debug log; returns its row count."""
    started = time.perf_counter()
    cursor.execute(sql, params)
    logger.debug("rollup %s: %d rows, %.3f s", name, cursor.rowcount,
                 time.perf_counter() - started)  # fmt: skip
    return cursor.rowcount
