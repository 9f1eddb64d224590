"""Settings for finops.

Every setting that differs between machines is read from the environment (or a `.env`
file beside `manage.py`). With nothing set, the service runs on its embedded default:
SQLite and a file-system Celery broker under `var/`, which need no server.
"""

from __future__ import annotations

import ipaddress
from decimal import Decimal
from pathlib import Path

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

VAR_DIR = Path(env.str("FINOPS_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

# The prefix makes `manage.py check --deploy` name a deployment that kept this key.
SECRET_KEY = env.str(
    "SECRET_KEY", default="django-insecure-embedded-default-change-me-for-any-real-deployment"
)
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# HTTPS (docs/operations.md, "Security settings"). With DEBUG off the service expects to
# be reached over HTTPS: plain HTTP is redirected, cookies are sent only over HTTPS, and
# browsers are told (HSTS) to use nothing else. FINOPS_HTTPS=0 turns all of that off at
# once for plain-HTTP serving (`make run`, the tests, the benchmarks); each setting can
# also be set on its own.
FINOPS_HTTPS = env.bool("FINOPS_HTTPS", default=not DEBUG)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=FINOPS_HTTPS)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=FINOPS_HTTPS)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=FINOPS_HTTPS)
# A year. Subdomains: the service's own host's (finops.example.com's), which it does not
# serve over HTTP. Preload only marks the header as eligible: nothing is preloaded until
# the registered domain is submitted to hstspreload.org, which a subdomain cannot be.
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000 if FINOPS_HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
# Behind a proxy that ends TLS, the header it sets and the value meaning HTTPS, e.g.
# HTTP_X_FORWARDED_PROTO,https for deploy/nginx.conf.template. Set it only when the proxy
# always sets (or strips) that header: a client could otherwise claim HTTPS.
_proxy_ssl_header = env.list("SECURE_PROXY_SSL_HEADER", default=[])
if _proxy_ssl_header and len(_proxy_ssl_header) != 2:
    raise ImproperlyConfigured("SECURE_PROXY_SSL_HEADER is 'HEADER,value', e.g. "
                               "HTTP_X_FORWARDED_PROTO,https")  # fmt: skip
SECURE_PROXY_SSL_HEADER = tuple(_proxy_ssl_header) or None
# Answered over plain HTTP too: a load balancer's or Docker's health check, and a
# Prometheus scrape on the private network (/metrics is guarded by its own settings).
SECURE_REDIRECT_EXEMPT = env.list(
    "SECURE_REDIRECT_EXEMPT", default=[r"^api/v1/health$", r"^metrics$"]
)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "finops",
    "ingestion",
    "billing",
    "statements",
    "portal",
    "console",
    "ops",
]

MIDDLEWARE = [
    # First: it times the whole answer, the other middleware's work included.
    "finops.metrics.RequestMetricsMiddleware",
    # A lost database answers 503 + Retry-After on every API view (finops/faults.py).
    "finops.faults.DatabaseFaultMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'finops.sqlite3'}")
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers run beside the single writer; IMMEDIATE takes the write lock at
    # BEGIN so two writers queue instead of failing on a lock upgrade.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            # FULL: an acknowledged event survives a power cut, not only a crash.
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;",
        }
    )
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# The ingestion endpoint enforces its own 5 MiB limit (413); Django's must not be lower.
FINOPS_MAX_BODY_BYTES = 5 * 1024 * 1024
# LiteLLM's payloads are large (its model map rides along): 512 of them pass 5 MiB.
FINOPS_LITELLM_MAX_BODY_BYTES = 32 * 1024 * 1024
# Which LiteLLM metadata field names the tenant when no `tenant:` request tag does.
FINOPS_LITELLM_TENANT_FIELD = env.str("FINOPS_LITELLM_TENANT_FIELD", default="user_api_key_team_id")
# Each endpoint enforces its own limit; Django's is the largest of them.
DATA_UPLOAD_MAX_MEMORY_SIZE = max(FINOPS_MAX_BODY_BYTES, FINOPS_LITELLM_MAX_BODY_BYTES)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["finops.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["finops.parsers.DecimalJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    "COERCE_DECIMAL_TO_STRING": True,
}

SPECTACULAR_SETTINGS = {
    # 3.1: the event schema comes from JSON Schema (msgspec), which writes null types.
    "OAS_VERSION": "3.1.0",
    "TITLE": "finops API",
    "DESCRIPTION": "Per-tenant chargeback of LLM usage: priced usage events in, reports out.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    # Swagger UI is served by the project itself: the docs work offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "ingestion.openapi.add_event_schema",
        "billing.guard.openapi.add_guard_path",
    ],
}

# Celery. The embedded default is kombu's file-system transport: no server needed.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("out", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "out"),
        "data_folder_out": str(_broker_dir / "out"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"
# The one list of periodic jobs, in the order one pass of the clock runs them:
# `manage.py run_jobs` walks it in this order, in process. django-celery-beat copies it
# into the database on start, where staff can edit the intervals in the admin. Every
# task takes `now` (ISO 8601; the clock's when beat calls it).
CELERY_BEAT_SCHEDULE = {
    "price-unpriced-events": {
        "task": "ingestion.tasks.events_price_unpriced_task",
        "schedule": 300.0,
    },
    "rollup-usage": {"task": "billing.tasks.rollups_update_task", "schedule": 60.0},
    "evaluate-budgets": {"task": "billing.tasks.budgets_evaluate_task", "schedule": 60.0},
    "detect-spikes": {"task": "billing.tasks.spikes_detect_task", "schedule": 300.0},
    "check-caps": {"task": "billing.tasks.caps_check_task", "schedule": 60.0},
    "check-free-tier-ltv": {"task": "billing.tasks.ltv_check_task", "schedule": 60.0},
    "prune-guard-reservations": {
        "task": "billing.tasks.guard_reservations_prune_task",
        "schedule": 600.0,
    },
    "draft-statements": {"task": "statements.tasks.statements_draft_task", "schedule": 900.0},
    "finalize-statements": {
        "task": "statements.tasks.statements_finalize_task",
        "schedule": 3600.0,
    },
    "open-retirement-reviews": {"task": "console.tasks.reviews_open_task", "schedule": 604800.0},
    "advance-feature-lifecycles": {
        "task": "console.tasks.lifecycles_advance_task",
        "schedule": 3600.0,
    },
    # Mondays 07:00 UTC: last week's review (written once; a missed run writes it later).
    "weekly-digest": {
        "task": "console.tasks.digest_write_task",
        "schedule": crontab(minute="0", hour="7", day_of_week="mon"),
    },
    # Daily 06:00 UTC: last week's metrics and cost against its projection (metric alarms).
    "check-metric-alarms": {
        "task": "console.tasks.alarms_check_task",
        "schedule": crontab(minute="0", hour="6"),
    },
    # Daily 00:30 UTC: on a month's first day (or the next run, if missed) keeps the
    # projection of it and the five months after; sets the actual of ended months.
    "snapshot-projections": {
        "task": "console.tasks.projections_snapshot_task",
        "schedule": crontab(minute="30", hour="0"),
    },
    # Daily 01:30 UTC: distinct end users and sessions per feature, this and last month
    # and quarter (distinct counts do not add up from the rollups).
    "count-feature-reach": {
        "task": "console.tasks.feature_reach_task",
        "schedule": crontab(minute="30", hour="1"),
    },
    "deliver-alerts": {"task": "billing.tasks.alerts_deliver_task", "schedule": 60.0},
    "deliver-digests": {"task": "console.tasks.digests_deliver_task", "schedule": 60.0},
}

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES["default"] = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
    }

# Product rules (SPEC: Ingestion).
FINOPS_OPERATOR_NAME = env.str("FINOPS_OPERATOR_NAME", default="finops")
# How long a worker keeps an API key (and its tenant) in memory: a revoked key, or a
# suspended tenant, takes effect within this time on every worker.
FINOPS_API_KEY_CACHE_SECONDS = env.float("FINOPS_API_KEY_CACHE_SECONDS", default=2)
FINOPS_BACKFILL_DAYS = env.int("FINOPS_BACKFILL_DAYS", default=35)
FINOPS_MAX_FUTURE_SKEW_SECONDS = env.int("FINOPS_MAX_FUTURE_SKEW_SECONDS", default=300)
FINOPS_MAX_BATCH_EVENTS = 1000
FINOPS_AUTO_CREATE_TENANTS = env.bool("FINOPS_AUTO_CREATE_TENANTS", default=True)
FINOPS_DEFAULT_CURRENCY = "USD"
# PostgreSQL's work_mem for a rollup run (its transaction only): a first fold of millions
# of events hashes its keys and groups in memory with this much per step.
FINOPS_ROLLUP_WORK_MEM = env.str("FINOPS_ROLLUP_WORK_MEM", default="1GB")
# The event tag whose value the rollups keep as a dimension ('': none). A change applies to
# events folded after it; `billing.rollups.rollups_rebuild()` re-folds the history.
FINOPS_REPORT_TAG_KEY = env.str("FINOPS_REPORT_TAG_KEY", default="")

# Alerts: a Slack-compatible webhook and/or e-mail recipients; either may be empty.
FINOPS_ALERT_WEBHOOK_URL = env.str("FINOPS_ALERT_WEBHOOK_URL", default="")
FINOPS_ALERT_EMAILS = env.list("FINOPS_ALERT_EMAILS", default=[])
# Spike detection: a feature's hourly cost above this many times its 7-day hourly
# average, or its daily cost above that factor times its 7-day daily average; costs
# below FINOPS_SPIKE_MIN_COST never count as a spike.
FINOPS_SPIKE_HOURLY_FACTOR = Decimal(env.str("FINOPS_SPIKE_HOURLY_FACTOR", default="3"))
FINOPS_SPIKE_DAILY_FACTOR = Decimal(env.str("FINOPS_SPIKE_DAILY_FACTOR", default="2"))
FINOPS_SPIKE_MIN_COST = Decimal(env.str("FINOPS_SPIKE_MIN_COST", default="1"))
# A feature with its kill switch enabled moves to its fallback model when its hourly cost
# runs above this many times its baseline (3 = 300 percent).
FINOPS_KILL_SWITCH_FACTOR = Decimal(env.str("FINOPS_KILL_SWITCH_FACTOR", default="3"))

# Predictive metrics: routing tiers that count as cheap, and thresholds that replace the
# weekly review's defaults (console.metrics.DEFAULT_THRESHOLDS), as JSON {"name": "0.5"}.
FINOPS_CHEAP_ROUTING_TIERS = env.list("FINOPS_CHEAP_ROUTING_TIERS", default=["cheap"])
FINOPS_METRIC_THRESHOLDS = env.json("FINOPS_METRIC_THRESHOLDS", default={})

# The savings ledger (console.savings, console.economics): what a semantic cache would
# cost to run per month (its break-even), the cost per session above which a feature is
# put up for review, and how far a projection may miss its month before it is flagged.
FINOPS_SEMANTIC_CACHE_MONTHLY_COST = Decimal(
    env.str("FINOPS_SEMANTIC_CACHE_MONTHLY_COST", default="500")
)
FINOPS_SESSION_COST_REVIEW = Decimal(env.str("FINOPS_SESSION_COST_REVIEW", default="0.10"))
FINOPS_PROJECTION_TOLERANCE = Decimal(env.str("FINOPS_PROJECTION_TOLERANCE", default="0.20"))

# Statements: a month's statement is finalized this many days after the month ends.
FINOPS_STATEMENT_GRACE_DAYS = env.int("FINOPS_STATEMENT_GRACE_DAYS", default=3)
# Reconciliation flags a provider whose priced events differ from its bill by more.
FINOPS_RECONCILIATION_TOLERANCE_PERCENT = Decimal(
    env.str("FINOPS_RECONCILIATION_TOLERANCE_PERCENT", default="2")
)

# The guard (POST /api/v1/guard). Its hot state lives in this Redis (default: REDIS_URL);
# without one, or on SQLite, it reads the ledger on each request (exact, no reservations).
FINOPS_GUARD_REDIS_URL = env.str("FINOPS_GUARD_REDIS_URL", default=REDIS_URL)
FINOPS_GUARD_REDIS_TIMEOUT = env.float("FINOPS_GUARD_REDIS_TIMEOUT", default=0.5)
# Counters are seeded again from the ledger this often (seconds): the bound on how long an
# increment lost to a Redis outage can be missing.
FINOPS_GUARD_COUNTER_TTL = env.int("FINOPS_GUARD_COUNTER_TTL", default=300)
# How long an allowed call's reserved cost waits for its event (seconds).
FINOPS_GUARD_RESERVATION_TTL = env.int("FINOPS_GUARD_RESERVATION_TTL", default=120)
# How long a worker keeps tenants, features, caps and budgets in memory (seconds).
FINOPS_GUARD_POLICY_TTL = env.float("FINOPS_GUARD_POLICY_TTL", default=5)

# Prometheus's scrape (GET /metrics, docs/operations.md "Metrics"): answered to a peer
# in these networks (CIDRs; a request relayed by a proxy never counts as one), or to a
# request with `Authorization: Bearer <FINOPS_METRICS_TOKEN>`; 404 to anyone else.
FINOPS_METRICS_ALLOWED_NETWORKS = env.list(
    "FINOPS_METRICS_ALLOWED_NETWORKS", default=["127.0.0.0/8", "::1/128"]
)
try:
    for _cidr in FINOPS_METRICS_ALLOWED_NETWORKS:
        ipaddress.ip_network(_cidr, strict=False)
except ValueError as exc:
    raise ImproperlyConfigured(f"FINOPS_METRICS_ALLOWED_NETWORKS: {exc}") from None
FINOPS_METRICS_TOKEN = env.str("FINOPS_METRICS_TOKEN", default="")

# E-mail: EMAIL_URL as django-environ reads it (smtp://user:pass@host:587, consolemail://);
# by default messages are written as files under var/mail/.
if env.str("EMAIL_URL", default=""):
    vars().update(env.email_url("EMAIL_URL"))
else:
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = VAR_DIR / "mail"
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="finops@localhost")
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
