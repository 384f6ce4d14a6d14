"""Django settings for Station.

Every value comes from the environment through `station.env`; the README's configuration
table lists each variable. With no DATABASE_URL / CELERY_BROKER_URL, Station uses the embedded
PostgreSQL and broker that `station up` runs from STATION_DATA_DIR.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from station import datadir
from station.core.cache import cache_config, cache_url_for_broker
from station.env import env_bool, env_int, env_list, env_optional, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = datadir.data_dir()

# Embedded mode: no external database configured. Credentials are generated into DATA_DIR.
EMBEDDED_DATABASE = env_optional("DATABASE_URL") is None
EMBEDDED_BROKER = env_optional("CELERY_BROKER_URL") is None
_local = (
    datadir.load_credentials(DATA_DIR)
    if EMBEDDED_DATABASE or env_optional("STATION_SECRET_KEY") is None
    else None
)

SECRET_KEY = env_optional("STATION_SECRET_KEY") or (_local.secret_key if _local else "")
if not SECRET_KEY:
    raise ImproperlyConfigured("Environment variable STATION_SECRET_KEY is required.")
DEBUG = env_bool("STATION_DEBUG", False)
ALLOWED_HOSTS = env_list("STATION_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("STATION_CSRF_TRUSTED_ORIGINS", [])
PUBLIC_URL = env_str("STATION_PUBLIC_URL", "http://localhost:8000")

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    # Before allauth: the console's templates override allauth's (sign in, password reset).
    "frontend",
    "allauth",
    "allauth.account",
    # TOTP, recovery codes, WebAuthn; Station's MFA policy and sessions: station.accounts.
    "allauth.mfa",
    # SAML SSO per org (station.identity feeds the provider its per-org configuration).
    "allauth.socialaccount",
    "allauth.socialaccount.providers.saml",
    # OIDC SSO per org (same adapter; Station runs the code flow, see station/identity/oidc.py).
    "allauth.socialaccount.providers.openid_connect",
    "station.core",
    "tenants",
    "station.vault",
    "station.tools",
    "station.providers",
    "station.agents",
    "station.runs",
    "station.triggers",
    "station.identity",
    "station.scim",
    "station.accounts",
    # Beat's schedule tables (PeriodicTask, CrontabSchedule): platform tables, no tenant data.
    "django_celery_beat",
    "audit",
    "billing",
]

MIDDLEWARE = [
    "station.core.middleware.RequestContextMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    # Tracks each signed-in browser (sessions page) and its last activity.
    "station.accounts.middleware.SessionActivityMiddleware",
    "tenants.middleware.OrgContextMiddleware",
]

ROOT_URLCONF = "station.urls"
WSGI_APPLICATION = "station.wsgi.application"
ASGI_APPLICATION = "station.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "frontend.context.console",
            ],
        },
    }
]

# --- Database -----------------------------------------------------------------------------
# The web and worker processes connect as the app role (owns nothing, cannot bypass RLS).
# `station migrate` sets STATION_DB_ROLE=owner to connect as the owner role instead.
DB_ROLE = env_str("STATION_DB_ROLE", "app")
if DB_ROLE not in {"app", "owner"}:
    raise ImproperlyConfigured("STATION_DB_ROLE must be 'app' or 'owner'.")

if EMBEDDED_DATABASE:
    assert _local is not None
    _role, _password = (
        (datadir.OWNER_ROLE, _local.owner_password)
        if DB_ROLE == "owner"
        else (datadir.APP_ROLE, _local.app_password)
    )
    DATABASE_URL = datadir.embedded_database_url(DATA_DIR, role=_role, password=_password)
    DATABASE_OWNER_URL = datadir.embedded_database_url(
        DATA_DIR, role=datadir.OWNER_ROLE, password=_local.owner_password
    )
    DATABASE_SUPERUSER_URL: str | None = (
        f"postgres://postgres@{quote(str(datadir.pg_socket_dir(DATA_DIR)), safe='')}/postgres"
    )
else:
    _app_url = env_str("DATABASE_URL")
    DATABASE_OWNER_URL = env_str("DATABASE_OWNER_URL", _app_url)
    DATABASE_URL = DATABASE_OWNER_URL if DB_ROLE == "owner" else _app_url
    DATABASE_SUPERUSER_URL = env_optional("DATABASE_SUPERUSER_URL")

DATABASES = {
    "default": {
        **dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("STATION_DB_CONN_MAX_AGE", 60)),
        # One transaction per request: the org context (app.org_id) is transaction-local.
        "ATOMIC_REQUESTS": True,
        "CONN_HEALTH_CHECKS": True,
        "TEST": {"NAME": env_str("STATION_TEST_DATABASE_NAME", "test_station")},
    }
}
# Name of the role the app connects as; migrations grant it privileges on every table.
DATABASE_APP_ROLE = (
    dj_database_url.parse(env_optional("DATABASE_URL") or DATABASE_URL)["USER"]
    if not EMBEDDED_DATABASE
    else datadir.APP_ROLE
)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "tenants.User"

# --- Auth (django-allauth) ----------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_ALLOW_REGISTRATION = env_bool("STATION_ALLOW_SIGNUP", False)
# With open sign-up, an address must be proven before it can receive an invitation's role.
ACCOUNT_EMAIL_VERIFICATION = "mandatory" if ACCOUNT_ALLOW_REGISTRATION else "none"
ACCOUNT_ADAPTER = "frontend.adapters.StationAccountAdapter"
ACCOUNT_LOGOUT_ON_GET = False
ACCOUNT_RATE_LIMITS = {"login_failed": "10/m/ip,5/5m/key"}
# SSO enforcement: a member of an org that enforces SSO cannot sign in with a password
# (owners have an audited break-glass page). See docs/identity.md.
ACCOUNT_FORMS = {"login": "station.identity.forms.StationLoginForm"}
# SAML apps come from each org's SamlConnection, never from SocialApp rows or settings.
SOCIALACCOUNT_ADAPTER = "station.identity.adapters.StationSocialAccountAdapter"
# SSO users are created by station.identity.provisioning, never by allauth's social sign-up.
SOCIALACCOUNT_AUTO_SIGNUP = False
SOCIALACCOUNT_EMAIL_AUTHENTICATION = False
# MFA (allauth.mfa): TOTP, recovery codes and WebAuthn security keys (https, or
# http://localhost); orgs may require MFA (station.accounts).
# Failed codes share allauth's "login_failed" limit, keyed per account (mfa-auth-user-<id>)
# and per IP. See docs/mfa-and-sessions.md.
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes", "webauthn"]
MFA_TOTP_ISSUER = "Station"
MFA_FORMS = {"authenticate": "station.accounts.forms.AuditedAuthenticateForm"}
LOGIN_REDIRECT_URL = "/"
LOGIN_URL = "/accounts/login/"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("STATION_SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
EMAIL_BACKEND = env_str("STATION_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env_str("STATION_FROM_EMAIL", "station@localhost")

# --- REST API -----------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["station.api.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["station.api.permissions.HasOrgPermission"],
    "DEFAULT_PAGINATION_CLASS": "station.api.pagination.StationCursorPagination",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "station.api.errors.problem_exception_handler",
    "UNAUTHENTICATED_USER": None,
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Station API",
    "DESCRIPTION": "Control plane for AI agents that use MCP tools. Authenticate with an "
    "organization API key: `Authorization: Bearer stk_…`.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "ENUM_NAME_OVERRIDES": {
        "WebhookDeliveryStatusEnum": "station.triggers.models.WebhookDelivery.STATUSES",
        "ToolStatusEnum": "station.tools.models.Tool.STATUSES",
        "RunStatusEnum": "station.runs.models.Run.STATUSES",
        "ToolApprovalStatusEnum": "station.runs.models.ToolApproval.STATUSES",
        "RunStepKindEnum": "station.runs.models.RunStep.KINDS",
        "ModelProviderKindEnum": "station.providers.models.ModelProvider.KINDS",
    },
}
API_MAX_PAGE_SIZE = 200
API_KEY_LAST_USED_RESOLUTION_SECONDS = env_int("STATION_API_KEY_LAST_USED_SECONDS", 60)
# Keyed hashes of API keys and the audit chain use keys derived from these secrets.
API_KEY_PEPPER = env_optional("STATION_API_KEY_PEPPER") or SECRET_KEY
AUDIT_CHAIN_KEY = env_optional("STATION_AUDIT_CHAIN_KEY") or SECRET_KEY

# --- Secrets vault -------------------------------------------------------------------------
# Master keys: STATION_MASTER_KEYS ("kid:base64,…") and/or a JSON keys file. With the embedded
# database and neither set, a keys file in the data directory is generated on first use.
VAULT_MASTER_KEYS = env_optional("STATION_MASTER_KEYS")
VAULT_MASTER_KEY_ID = env_optional("STATION_MASTER_KEY_ID")
_keys_file = env_optional("STATION_MASTER_KEYS_FILE")
VAULT_GENERATE_KEYS_FILE = _keys_file is None and VAULT_MASTER_KEYS is None and EMBEDDED_DATABASE
VAULT_MASTER_KEYS_FILE: Path | None = (
    Path(_keys_file) if _keys_file else (DATA_DIR / "master-keys.json")
    if VAULT_GENERATE_KEYS_FILE else None
)
VAULT_VERSIONS_KEPT = env_int("STATION_SECRET_VERSIONS_KEPT", 10)
# Secret values are decrypted only in worker processes (`station worker` sets this).
VAULT_REVEAL_ALLOWED = env_str("STATION_PROCESS", "web") == "worker"

# --- MCP servers ------------------------------------------------------------------------------
# Bound on connecting to an MCP server and listing its tools (discovery, health checks).
MCP_TIMEOUT_SECONDS = env_int("STATION_MCP_TIMEOUT_SECONDS", 20)
# How often beat health-checks each enabled MCP server (0: never).
MCP_HEALTH_INTERVAL_SECONDS = env_int("STATION_MCP_HEALTH_INTERVAL_SECONDS", 300)

# --- Runs -------------------------------------------------------------------------------------
# Fair execution: at most this many runs of one org execute at once; the rest wait queued
# without holding a worker (per plan later, from billing).
RUN_CONCURRENCY_PER_ORG = env_int("STATION_RUN_CONCURRENCY_PER_ORG", 4)
# A running run's worker heartbeats this often; a heartbeat older than RUN_STALE_SECONDS means
# the worker died, and the reaper retries the run (up to RUN_MAX_ATTEMPTS starts) or fails it.
RUN_HEARTBEAT_SECONDS = env_int("STATION_RUN_HEARTBEAT_SECONDS", 10)
RUN_STALE_SECONDS = env_int("STATION_RUN_STALE_SECONDS", 60)
RUN_MAX_ATTEMPTS = env_int("STATION_RUN_MAX_ATTEMPTS", 3)
RUN_REAPER_INTERVAL_SECONDS = env_int("STATION_RUN_REAPER_INTERVAL_SECONDS", 30)
# Bound on one tool call through MCP.
MCP_CALL_TIMEOUT_SECONDS = env_int("STATION_MCP_CALL_TIMEOUT_SECONDS", 60)
# Warm MCP sessions kept by each worker process between runs of the same server (same org,
# same resolved settings and secrets, same tool pins; docs/runs.md). Off: one per run.
MCP_SESSION_REUSE = env_bool("STATION_MCP_SESSION_REUSE", True)
MCP_SESSION_POOL_SIZE = env_int("STATION_MCP_SESSION_POOL_SIZE", 8)  # idle, per process
MCP_SESSION_IDLE_SECONDS = env_int("STATION_MCP_SESSION_IDLE_SECONDS", 300)
MCP_SESSION_MAX_AGE_SECONDS = env_int("STATION_MCP_SESSION_MAX_AGE_SECONDS", 3600)
# Live run pages (server-sent events) held open at once per web process. Each holds a
# gunicorn thread while open; past this, a run page polls every few seconds instead.
LIVE_STREAMS_PER_PROCESS = env_int("STATION_LIVE_STREAMS_PER_PROCESS", 2)

# --- Triggers (schedules, webhooks) ------------------------------------------------------------
# Outbound webhook deliveries: attempts per event (first + retries), the first retry's delay
# (doubling each time, at most an hour), and the bound on one HTTP request.
WEBHOOK_MAX_ATTEMPTS = env_int("STATION_WEBHOOK_MAX_ATTEMPTS", 6)
WEBHOOK_RETRY_BASE_SECONDS = env_int("STATION_WEBHOOK_RETRY_BASE_SECONDS", 30)
WEBHOOK_TIMEOUT_SECONDS = env_int("STATION_WEBHOOK_TIMEOUT_SECONDS", 10)
# Off: outbound webhooks may not reach loopback, private or link-local addresses (SSRF).
WEBHOOK_ALLOW_PRIVATE_NETWORKS = env_bool("STATION_WEBHOOK_ALLOW_PRIVATE_NETWORKS", False)
# Where MCP servers over HTTP and model providers' base URLs may point (station.core.egress):
# "private" (default) anything but link-local (the cloud metadata service), unspecified,
# multicast or reserved addresses; "public" public addresses only, for a shared deployment.
OUTBOUND_NETWORKS = env_str("STATION_OUTBOUND_NETWORKS", "private")
if OUTBOUND_NETWORKS not in ("private", "public"):
    raise ImproperlyConfigured("STATION_OUTBOUND_NETWORKS must be 'private' or 'public'.")
# Off: what SSO set-up and sign-in fetch (SAML IdP metadata URLs; OIDC issuers, token and
# JWKS endpoints) must be https on public addresses (SSRF). The OIDC name is the former one,
# still honoured: either switch lifts the guard (station.identity.fetch).
SSO_ALLOW_PRIVATE_NETWORKS = env_bool("STATION_SSO_ALLOW_PRIVATE_NETWORKS", False)
OIDC_ALLOW_PRIVATE_NETWORKS = env_bool("STATION_OIDC_ALLOW_PRIVATE_NETWORKS", False)

# --- Celery ---------------------------------------------------------------------------------
CELERY_BROKER_URL = env_optional("CELERY_BROKER_URL") or (
    f"redis+socket://{datadir.broker_socket(DATA_DIR)}"
)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery's Django fixup closes all DB connections before and after every task unless this is
# set (then only every N tasks); station/celery.py applies CONN_MAX_AGE per task instead.
CELERY_DB_REUSE_MAX = 1000
CELERY_TASK_TIME_LIMIT = env_int("STATION_TASK_TIME_LIMIT", 900)
CELERY_TASK_SOFT_TIME_LIMIT = CELERY_TASK_TIME_LIMIT - 30
# Visibility timeout must exceed the hard time limit, or long tasks run twice (DESIGN.md).
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_TASK_TIME_LIMIT + 300}
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ALWAYS_EAGER = env_bool("STATION_CELERY_EAGER", False)
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE = {
    "station.runs.reap": {"task": "station.runs.reap",
                          "schedule": float(RUN_REAPER_INTERVAL_SECONDS)},
}

# --- Cache ----------------------------------------------------------------------------------
# Shared by every process: allauth counts sign-in and MFA attempts here (a per-process cache
# would multiply each limit by the number of web workers), OIDC keeps IdP signing keys here.
# Default: the broker's Redis/Valkey in another logical database, or the database cache when
# the broker is RabbitMQ (station.core.cache).
CACHE_URL = env_optional("STATION_CACHE_URL") or cache_url_for_broker(CELERY_BROKER_URL)
CACHES = {
    "default": cache_config(CACHE_URL, key_prefix=env_str("STATION_CACHE_KEY_PREFIX", "station"))
}

# --- Static files, i18n ---------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Logging: structured JSON with the request id ------------------------------------------
LOG_LEVEL = env_str("STATION_LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "station.core.logging.RequestIdFilter"}},
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
        }
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

# Behind TLS-terminating proxies (ingress, load balancer): how many to trust for the client
# address (login rate limits) and the original scheme (CSRF origin checks, secure cookies).
TRUSTED_PROXY_COUNT = env_int("STATION_TRUSTED_PROXY_COUNT", 0)
ALLAUTH_TRUSTED_PROXY_COUNT = TRUSTED_PROXY_COUNT
if TRUSTED_PROXY_COUNT:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env_int("STATION_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
