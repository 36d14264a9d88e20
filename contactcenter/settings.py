"""Settings for the contact-center backend.

Everything comes from environment variables with defaults that are safe for
local use (`make run`, `make test`). Production sets at least SECRET_KEY,
DEBUG=false, ALLOWED_HOSTS, DATABASE_URL, REDIS_URL and
KAFKA_BOOTSTRAP_SERVERS. Values are validated here, at start, so a typo fails
loudly instead of at the first request.
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {raw!r}") from None


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


# --------------------------------------------------------------------------
# Core
# --------------------------------------------------------------------------
DEBUG = env_bool("DEBUG", False)
# The default key is for local use only; its "django-insecure-" prefix makes
# `manage.py check --deploy` refuse it.
SECRET_KEY = os.environ.get("SECRET_KEY", "django-insecure-local-development-key-0d9f8a7b6c5e4d3c2b1a")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "axes",  # login lockout: failed sign-ins per user name and IP (see the API section)
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "contactcenter",
    "events",
    "customers",
    "interactions",
    "routing",
    "quality",
    "intelligence",
    "followups",
    "frameworks",
    "incidents",
    "authority",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "contactcenter.parsers.BoundedInputMiddleware",  # 413 over the body limit, 400 for a NUL in path or query
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "contactcenter.degrade.DatabaseUnavailableMiddleware",  # PostgreSQL away: 503 + Retry-After, not a 500
    "contactcenter.idempotency.IdempotencyMiddleware",  # calls the view: keep it after every other process_view
    "axes.middleware.AxesMiddleware",  # turns a locked-out sign-in into its answer; axes wants it last
]
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out user name + IP before the password check
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "contactcenter.urls"
ASGI_APPLICATION = "contactcenter.asgi.application"
WSGI_APPLICATION = "contactcenter.wsgi.application"

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/desk/"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "contactcenter" / "templates"],
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

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve static files straight from the apps (no collectstatic step needed).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Region used to read phone numbers written without a country code (ISO 3166 code).
DEFAULT_PHONE_REGION = os.environ.get("DEFAULT_PHONE_REGION", "US").upper()

# Largest request body accepted (bytes); DRF >= 3.17.2 applies it to JSON too.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 1024 * 1024)

# --------------------------------------------------------------------------
# Security (production-like values make `manage.py check --deploy` pass)
# --------------------------------------------------------------------------
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_TLS_PROXY", False) else None
# Probes are plain HTTP from the orchestrator; never redirect them.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
X_FRAME_OPTIONS = "DENY"
# Signed provider webhooks (docs/WEBHOOKS.md): X-Timestamp may be this many seconds before or after our clock.
# Replays inside the window are answered as duplicates (each delivery's provider_message_id counts once).
WEBHOOK_TIMESTAMP_TOLERANCE = env_int("WEBHOOK_TIMESTAMP_TOLERANCE", 300)
# WebSockets (README, "Real-time contract"). A socket opens with a ticket from POST /api/v1/ws-tickets/:
# single use, valid this many seconds, bound to the user who asked for it. The long-lived API token and the
# session cookie no longer open sockets (a token in a URL ends up in access logs).
WS_TICKET_SECONDS = env_int("WS_TICKET_SECONDS", 60)
# Origins a browser may open a socket from: "https://desk.example.com", "example.com" (any scheme and port),
# ".example.com" (and its subdomains) or "*". Empty: the hosts of ALLOWED_HOSTS. A foreign Origin is closed with
# 4403 before accept. Browsers always send Origin; a client without one (the simulator, a service) is let through
# to the ticket check unless WS_ALLOW_MISSING_ORIGIN is false.
WS_ALLOWED_ORIGINS = env_list("WS_ALLOWED_ORIGINS", "")
WS_ALLOW_MISSING_ORIGIN = env_bool("WS_ALLOW_MISSING_ORIGIN", True)

# --------------------------------------------------------------------------
# Database
# --------------------------------------------------------------------------
DATABASE_URL = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5433/contactcenter")
if not DATABASE_URL.startswith(("postgres://", "postgresql://")):
    raise ImproperlyConfigured("DATABASE_URL must be a PostgreSQL URL (postgresql://user:pass@host:port/db)")
# Under ASGI every request runs its sync view on a fresh thread, so a
# persistent per-thread connection (CONN_MAX_AGE > 0) leaks one connection
# per request until PostgreSQL refuses more. The default is a connection pool
# per process (psycopg_pool: bounded, and no connect per request); set
# DB_POOL_MAX_SIZE=0 to use plain connections with DB_CONN_MAX_AGE.
DB_POOL_MAX_SIZE = env_int("DB_POOL_MAX_SIZE", 20)
DATABASES = {
    "default": dj_database_url.parse(DATABASE_URL, conn_max_age=0 if DB_POOL_MAX_SIZE else env_int("DB_CONN_MAX_AGE", 0))
}
if DB_POOL_MAX_SIZE:
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {"min_size": 1, "max_size": DB_POOL_MAX_SIZE, "timeout": 10}
else:
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# The event store prepares its hot statements once per connection. Turn off
# behind a transaction-mode pgbouncer older than 1.21 (or without
# max_prepared_statements), which cannot carry prepared statements.
DB_PREPARED_STATEMENTS = env_bool("DB_PREPARED_STATEMENTS", True)

# --------------------------------------------------------------------------
# Kafka (the distribution log) and the event store
# --------------------------------------------------------------------------
KAFKA_BOOTSTRAP_SERVERS = env_list("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
# One topic carries every domain event, keyed by customer (or stream) id, so
# all events of one customer land in one partition and keep their order.
KAFKA_EVENTS_TOPIC = os.environ.get("KAFKA_EVENTS_TOPIC", "contactcenter.events")
KAFKA_EVENTS_PARTITIONS = env_int("KAFKA_EVENTS_PARTITIONS", 8)
KAFKA_REPLICATION_FACTOR = env_int("KAFKA_REPLICATION_FACTOR", 1)
RELAY_BATCH_SIZE = env_int("RELAY_BATCH_SIZE", 2000)
RELAY_IDLE_SLEEP_MS = env_int("RELAY_IDLE_SLEEP_MS", 20)
PROJECTOR_BATCH_SIZE = env_int("PROJECTOR_BATCH_SIZE", 1000)
# Key-encryption key for the per-customer data keys (crypto-shredding).
# Defaults to one derived from SECRET_KEY; set it separately in production so
# that rotating SECRET_KEY does not make personal data unreadable.
EVENT_KEK = os.environ.get("EVENT_KEK", "")

# --------------------------------------------------------------------------
# Redis, Celery and Channels
# --------------------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6380/0")
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "celery"
# After a call, the agent is in after-call work until they wrap up, or at most this long.
ROUTING_AFTER_CALL_SECONDS = env_int("ROUTING_AFTER_CALL_SECONDS", 60)
ROUTING_SWEEP_SECONDS = env_int("ROUTING_SWEEP_SECONDS", 5)  # the beat's routing sweep (expansion, overflow, expiries)
KPI_FCR_WINDOW_DAYS = env_int("KPI_FCR_WINDOW_DAYS", 7)  # a contact again about the same matter within it: not FCR
KPI_SHORT_ABANDON_SECONDS = env_int("KPI_SHORT_ABANDON_SECONDS", 5)  # abandoned sooner: left out of the rates
QUALITY_SAMPLES_PER_AGENT = env_int("QUALITY_SAMPLES_PER_AGENT", 3)  # interactions per agent per week to review
# Conversation intelligence (docs/PROTOCOLS.md): each inbound text's sentiment counts this much in the
# interaction's running sentiment, and a text scored at or below the threshold raises a red flag.
SENTIMENT_WEIGHT = float(os.environ.get("SENTIMENT_WEIGHT", "0.4"))
SENTIMENT_FLAG_THRESHOLD = float(os.environ.get("SENTIMENT_FLAG_THRESHOLD", "-0.6"))
# Red flags about the customer, checked when they contact us (docs/PROTOCOLS.md): an earlier contact within
# REPEAT_FLAG_DAYS still unresolved; after ENGAGEMENT_MIN_CONTACTS contacts, a silence of ENGAGEMENT_SILENT_DAYS
# (and three times their usual gap); or a CSAT answer ENGAGEMENT_CSAT_DROP below their earlier average.
REPEAT_FLAG_DAYS = env_int("REPEAT_FLAG_DAYS", 7)
ENGAGEMENT_MIN_CONTACTS = env_int("ENGAGEMENT_MIN_CONTACTS", 3)
ENGAGEMENT_SILENT_DAYS = env_int("ENGAGEMENT_SILENT_DAYS", 30)
ENGAGEMENT_CSAT_DROP = float(os.environ.get("ENGAGEMENT_CSAT_DROP", "1.5"))
# The abuse protocol: warnings on record before an agent may end a contact for abuse (docs/PROTOCOLS.md).
ABUSE_WARNINGS_REQUIRED = int(os.environ.get("ABUSE_WARNINGS_REQUIRED", "2"))
# A dropped call (end reason technical_drop) schedules a callback this many seconds later (docs/PROTOCOLS.md).
CALLBACK_AFTER_DROP_SECONDS = env_int("CALLBACK_AFTER_DROP_SECONDS", 120)
# An action above an agent's authority waits for a supervisor: the customer is told to expect an answer within.
APPROVAL_RESPONSE_SECONDS = env_int("APPROVAL_RESPONSE_SECONDS", 300)
# Flag terms and policies edited in the admin reach every process within this many seconds.
INTELLIGENCE_CONFIG_SECONDS = float(os.environ.get("INTELLIGENCE_CONFIG_SECONDS", "10"))
SURVEY_KIND = os.environ.get("SURVEY_KIND", "both")  # after each resolution: csat, nps, both, or off
KPI_REPORT_WORK_MEM = os.environ.get("KPI_REPORT_WORK_MEM", "64MB")  # per report query: its sort stays in memory
KPI_DEFAULT_SL_SECONDS = env_int("KPI_DEFAULT_SL_SECONDS", 20)  # service-level threshold of an unconfigured queue
ROUTING_BATCH = env_int("ROUTING_BATCH", 100)  # most offers one dispatch pass makes (one transaction)
ROUTING_POOL = env_int("ROUTING_POOL", 10)  # best-ranked free agents scored per decision (ties with the last too)
ROUTING_DISPATCH_FLAG_SECONDS = env_int("ROUTING_DISPATCH_FLAG_SECONDS", 5)
# Routing work has its own queue, so a backlog of other jobs never delays an offer.
CELERY_TASK_ROUTES = {"routing.tasks.*": {"queue": "routing"}}
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600),
    # How soon unacknowledged tasks of a killed worker are restored.
    "unacked_restore_interval": env_int("CELERY_UNACKED_RESTORE_INTERVAL", 30),
}
CELERY_BEAT_SCHEDULE = {
    "events-outbox-watch": {
        "task": "events.tasks.outbox_watch",
        "schedule": float(env_int("OUTBOX_WATCH_SECONDS", 30)),
    },
    "routing-sweep": {
        "task": "routing.tasks.sweep",
        "schedule": float(ROUTING_SWEEP_SECONDS),
        "options": {"queue": "routing", "expires": float(ROUTING_SWEEP_SECONDS)},
    },
    "followups-callbacks-due": {
        "task": "followups.tasks.callbacks_due",
        "schedule": float(env_int("CALLBACKS_DUE_SECONDS", 15)),
        "options": {"expires": float(env_int("CALLBACKS_DUE_SECONDS", 15))},
    },
    "followups-escalations-breached": {
        "task": "followups.tasks.escalations_breached",
        "schedule": float(env_int("CALLBACKS_DUE_SECONDS", 15)),
        "options": {"expires": float(env_int("CALLBACKS_DUE_SECONDS", 15))},
    },
    "followups-overdue": {
        "task": "followups.tasks.followups_overdue",
        "schedule": float(env_int("CALLBACKS_DUE_SECONDS", 15)),
        "options": {"expires": float(env_int("CALLBACKS_DUE_SECONDS", 15))},
    },
    "intelligence-engagement-sweep": {
        "task": "intelligence.tasks.engagement_sweep",
        "schedule": 24 * 3600.0,  # idempotent: a customer's silence is flagged once
    },
    "quality-sample-reviews": {
        "task": "quality.tasks.sample_reviews",
        "schedule": 6 * 3600.0,  # idempotent per agent and week: each run tops up who has too few
    },
    "contactcenter-idempotency-purge": {
        "task": "contactcenter.tasks.idempotency_purge",
        "schedule": 3600.0,  # idempotent; a key past its 24 h is already ignored by a retry, this frees the rows
    },
}
OUTBOX_ALERT_AGE_SECONDS = env_int("OUTBOX_ALERT_AGE_SECONDS", 60)

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # redis-py 8 reads with a 5 s timeout by default, as long as channels_redis's blocking pop waits for a
        # message (5 s): an idle socket's receive then fails and the socket closes with 1011. A longer read
        # timeout keeps idle sockets open and still notices a Redis that has gone away.
        "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 15}]},
    }
}
# Django's cache: the API's rate-limit counters (contactcenter/throttling.py), and nothing else so far. Short
# timeouts: an unreachable Redis must cost a request milliseconds, and the throttles then fail open.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": os.environ.get("CACHE_REDIS_URL", REDIS_URL),
        "KEY_PREFIX": "cc",
        "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
    }
}
# A message from a client larger than this (bytes) closes its socket with 1009 (message too big). Clients send
# nothing today beyond pings; the limit keeps one socket from making the server buffer megabytes.
WS_MAX_MESSAGE_BYTES = env_int("WS_MAX_MESSAGE_BYTES", 64 * 1024)
# Every so often a socket re-joins its groups: a group membership lives in Redis, so after a Redis restart (or a
# day, channels_redis's group expiry) a socket would silently hear nothing. Finding itself gone, it sends a new
# welcome, and its client resyncs over REST.
WS_GROUP_REFRESH_SECONDS = env_int("WS_GROUP_REFRESH_SECONDS", 30)
# Each stream's push counter (the `seq` of every push) is kept this long after its last push.
WS_SEQ_TTL_SECONDS = env_int("WS_SEQ_TTL_SECONDS", 7 * 24 * 3600)
for _name in ("WS_TICKET_SECONDS", "WS_MAX_MESSAGE_BYTES", "WS_GROUP_REFRESH_SECONDS", "WS_SEQ_TTL_SECONDS",
              "WEBHOOK_TIMESTAMP_TOLERANCE"):
    if globals()[_name] <= 0:
        raise ImproperlyConfigured(f"{_name} must be above 0")

# --------------------------------------------------------------------------
# API
# --------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "contactcenter.auth.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
        # Last: asked only when no authenticator knew the caller; counts them against the `anon` rate.
        "contactcenter.throttling.AnonymousRateLimit",
    ],
    # Signed in, and any interaction or customer named in the URL within the caller's scope (404 otherwise):
    # contactcenter/access.py.
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated", "contactcenter.access.InScope"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["contactcenter.parsers.JSONParser"],  # depth and NUL bounds
    "DEFAULT_SCHEMA_CLASS": "contactcenter.api.AutoSchema",  # + the refusals every endpoint gives (api.py)
    "EXCEPTION_HANDLER": "contactcenter.api.exception_handler",
    "DEFAULT_PAGINATION_CLASS": "contactcenter.pagination.CappedCursorPagination",
    "PAGE_SIZE": 50,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "DEFAULT_THROTTLE_CLASSES": [
        "contactcenter.throttling.UserRateThrottle",
        "contactcenter.throttling.IPRateThrottle",
        "contactcenter.throttling.WebhookRateThrottle",
    ],
    # Per fixed window; README "Limits". The intake benchmark sends 300 webhooks/s from one IP.
    "DEFAULT_THROTTLE_RATES": {
        "user": os.environ.get("API_RATE_USER", "6000/min"),
        "ip": os.environ.get("API_RATE_IP", "60000/min"),
        "anon": os.environ.get("API_RATE_ANON", "600/min"),
        "webhook": os.environ.get("API_RATE_WEBHOOK", "60000/min"),
    },
    # Proxies of ours in front of the app: X-Forwarded-For is believed that many hops deep, and no further.
    "NUM_PROXIES": env_int("TRUSTED_PROXY_COUNT", 0),
}
if DEBUG:
    REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"].append("rest_framework.renderers.BrowsableAPIRenderer")
for _scope, _rate in REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"].items():
    _count, _slash, _period = _rate.partition("/")
    if not (_slash and _count.isdigit() and _period.lstrip("0123456789") in {
            "s", "sec", "second", "m", "min", "minute", "h", "hour", "d", "day"}):
        raise ImproperlyConfigured(f"API_RATE_{_scope.upper()} must be like 600/min (per s, min, hour or day), "
                                   f"not {_rate!r}")
# Bounded input (contactcenter/parsers.py, pagination.py): JSON nested deeper is a 400; ?page_size= is capped.
API_MAX_JSON_DEPTH = env_int("API_MAX_JSON_DEPTH", 32)
API_MAX_PAGE_SIZE = env_int("API_MAX_PAGE_SIZE", 200)
# A retried POST with the same Idempotency-Key gets the stored answer for this long (contactcenter/idempotency.py).
IDEMPOTENCY_TTL_SECONDS = env_int("IDEMPOTENCY_TTL_SECONDS", 24 * 3600)
for _name in ("API_MAX_JSON_DEPTH", "API_MAX_PAGE_SIZE", "IDEMPOTENCY_TTL_SECONDS"):
    if globals()[_name] <= 0:
        raise ImproperlyConfigured(f"{_name} must be above 0")
# Sign-in lockout (django-axes) on /accounts/login/ and /admin/login/: after LOGIN_FAILURE_LIMIT failed
# sign-ins of one user name from one IP, that pair is refused (429) for LOGIN_LOCKOUT_MINUTES.
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = env_int("LOGIN_LOCKOUT_MINUTES", 15) / 60  # axes reads a number as hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True  # a successful sign-in clears that pair's failures
AXES_CLIENT_IP_CALLABLE = "contactcenter.throttling.client_ip"  # the same proxy rule as the rate limits
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_DISABLE_ACCESS_LOG = True  # failures are what it needs; successful sign-ins are not logged a second time

SPECTACULAR_SETTINGS = {
    "TITLE": "Contact-center backend API",
    "DESCRIPTION": (
        "Omnichannel contact-center backend: every customer touch is an event; "
        "read models are projections of them. Authenticate with "
        "`Authorization: Bearer <token>` (get one with `python manage.py issue_token USERNAME`)."
    ),
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # One name for the channel choices wherever they appear (a preference, a filter, an interaction).
    "ENUM_NAME_OVERRIDES": {"ChannelEnum": "interactions.domain.CHANNELS",
                            "IncidentKindEnum": "incidents.models.IncidentReport.KINDS",
                            "ActionKindEnum": "authority.models.KINDS"},
    "APPEND_COMPONENTS": {
        "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
    },
    "SECURITY": [{"bearerAuth": []}],
    # The Idempotency-Key header and the 429 on every authenticated POST (contactcenter/idempotency.py).
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums",
                             "contactcenter.idempotency.document_in_schema"],
}

# --------------------------------------------------------------------------
# Observability (docs/OPERATIONS.md): /metrics and structured logs
# --------------------------------------------------------------------------
# One JSON object per log line, each with the correlation id of the command that caused it
# (contactcenter/logs.py); "plain" is a human-readable line for local use.
LOG_FORMAT = os.environ.get("LOG_FORMAT", "json").strip().lower()
if LOG_FORMAT not in ("json", "plain"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or plain, not {LOG_FORMAT!r}")
LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO").strip().upper()
if LOG_LEVEL not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
    raise ImproperlyConfigured(f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, not {LOG_LEVEL!r}")
LOG_REQUESTS = env_bool("LOG_REQUESTS", True)  # one line per HTTP request: method, URL route, status, time
# Where every process writes its counters for /metrics to add up (prometheus-client's multiprocess mode).
# Read by prometheus_client itself from the environment, before settings exist; it must be one directory
# shared by the processes of a host and emptied when they all start (`make run` does both).
PROMETHEUS_MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
if PROMETHEUS_MULTIPROC_DIR and os.path.exists(PROMETHEUS_MULTIPROC_DIR) \
        and not os.path.isdir(PROMETHEUS_MULTIPROC_DIR):
    raise ImproperlyConfigured(f"PROMETHEUS_MULTIPROC_DIR {PROMETHEUS_MULTIPROC_DIR!r} is not a directory")
# Outermost: the request's time is all of it, and every line logged while handling it has its id.
MIDDLEWARE = ["contactcenter.metrics.RequestMetricsMiddleware", "contactcenter.logs.CorrelationMiddleware",
              *MIDDLEWARE]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"correlation": {"()": "contactcenter.logs.CorrelationFilter"}},
    "formatters": {
        "json": {"()": "contactcenter.logs.JsonFormatter",
                 "fmt": "%(levelname)s %(name)s %(message)s %(correlation_id)s %(process)d"},
        "plain": {"()": "contactcenter.logs.PlainFormatter",
                  "format": "%(asctime)s %(levelname)s %(name)s [%(correlation_id)s] %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["correlation"]}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"kafka": {"level": "WARNING"}},
}
IDENTITY_AUTO_MERGE = os.environ.get("IDENTITY_AUTO_MERGE", "merge").strip().lower()  # or "suggest" (docs/HISTORY.md)
if IDENTITY_AUTO_MERGE not in ("merge", "suggest"): raise ImproperlyConfigured("IDENTITY_AUTO_MERGE: merge or suggest")
