"""Settings, read from the environment (12-factor).

With no environment set everything is embedded: SQLite under var/, kombu's
filesystem broker under var/celery/, and the embedded chain. See README
"Configuration" for every variable.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


# --- Development or production: DJANGO_ENV ------------------------------------------------
# `production` refuses to start on an unsafe configuration (below). Anything else is development:
# with no DJANGO_SECRET_KEY a fixed development key is used and one line on stderr says so
# (DJANGO_ALLOW_INSECURE_KEY=1 silences it), so `manage.py …` works in a clean shell.
DJANGO_ENV = os.environ.get("DJANGO_ENV", "development").strip().lower() or "development"
if DJANGO_ENV not in ("development", "production"):
    raise ImproperlyConfigured(f"DJANGO_ENV must be 'development' or 'production', not {DJANGO_ENV!r}.")
PRODUCTION = DJANGO_ENV == "production"
DEVELOPMENT_SECRET_KEY = "insecure-local-development-key-do-not-use-in-production"  # noqa: S105
PRODUCTION_MIN_SECRET_KEY_LENGTH = 50

DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "").strip()
if not SECRET_KEY and not PRODUCTION:
    SECRET_KEY = DEVELOPMENT_SECRET_KEY
    if not env_bool("DJANGO_ALLOW_INSECURE_KEY", False):
        sys.stderr.write("warning: development settings (no DJANGO_SECRET_KEY; DJANGO_ENV=production refuses "
                         "this) - see .env.example\n")
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "" if PRODUCTION else "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")


def production_problems(secret_key: str, debug: bool, allowed_hosts: list[str]) -> list[str]:
    """What makes a production configuration unsafe (empty: none). A pure rule, tested alone."""
    problems = []
    if not secret_key:
        problems.append("DJANGO_SECRET_KEY is not set")
    elif len(secret_key) < PRODUCTION_MIN_SECRET_KEY_LENGTH or len(set(secret_key)) < 5:
        problems.append(f"DJANGO_SECRET_KEY is shorter than {PRODUCTION_MIN_SECRET_KEY_LENGTH} characters "
                        "or too repetitive")
    elif secret_key == DEVELOPMENT_SECRET_KEY or secret_key.startswith("django-insecure"):
        problems.append("DJANGO_SECRET_KEY is a development key")
    if debug:
        problems.append("DJANGO_DEBUG is on")
    if not allowed_hosts:
        problems.append("DJANGO_ALLOWED_HOSTS is not set")
    elif "*" in allowed_hosts:
        problems.append("DJANGO_ALLOWED_HOSTS contains '*'")
    return problems


if PRODUCTION and (_problems := production_problems(SECRET_KEY, DEBUG, ALLOWED_HOSTS)):
    raise ImproperlyConfigured(
        "DJANGO_ENV=production refuses to start: " + "; ".join(_problems)
        + ". Generate a key with: python -c 'import secrets; print(secrets.token_urlsafe(64))'")

INSTALLED_APPS = [
    "backoffice.apps.BackOfficeAdminConfig",  # django.contrib.admin with the back-office's site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "rest_framework_api_key",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and Redoc served from our static files, not a CDN
    "django_celery_beat",
    "simple_history",  # the audit trail: who changed the plan, settings and withdrawals, before/after
    "accounts.apps.AccountsConfig",
    "purchases.apps.PurchasesConfig",
    "mlm.apps.MlmConfig",
    "tokens.apps.TokensConfig",
    "legacy_import.apps.LegacyImportConfig",
    "withdrawals.apps.WithdrawalsConfig",
    # Last: its ready() runs after the chain libraries are imported (recursion limit), and
    # its admin replaces DRF's token admin.
    "common.apps.CommonConfig",
    "backoffice.apps.BackOfficeConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",  # static files from the WSGI app (gunicorn): right after security
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",  # history rows name the signed-in operator
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

# --- Database: PostgreSQL when DATABASE_URL is set, else SQLite under var/ -----------------
DATABASE_URL = os.environ.get("DATABASE_URL", "")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60,
                                                  conn_health_checks=True)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "db.sqlite3",
            # Concurrent web + worker + beat processes: wait for the write lock.
            "OPTIONS": {"timeout": 30, "transaction_mode": "IMMEDIATE"},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
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
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "static"))  # `manage.py collectstatic` fills it
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns about a missing one on every start
MEDIA_ROOT = VAR_DIR / "media"
# whitenoise serves the static files from the WSGI app. Production: hashed, compressed files from
# STATIC_ROOT (run collectstatic on deploy; cached forever). Development: straight from the apps'
# static folders too (no collectstatic needed), re-read when they change.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage" if PRODUCTION
                    else "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = not PRODUCTION
WHITENOISE_AUTOREFRESH = DEBUG and not PRODUCTION

# --- E-mail: console by default -------------------------------------------------------------
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "no-reply@azr.local")

# --- REST API -------------------------------------------------------------------------------
# Limits and throttles: README "Limits and throttles".
# Request bodies above this size are refused (413 under /api/); files uploaded through the
# admin are not counted (LEGACY_IMPORT_MAX_UPLOAD_BYTES bounds those).
DATA_UPLOAD_MAX_MEMORY_SIZE = int(os.environ.get("API_MAX_BODY_BYTES", 1024 * 1024))
# JSON request bodies nested deeper than this are refused (400, json_too_deep).
API_JSON_MAX_DEPTH = int(os.environ.get("API_JSON_MAX_DEPTH", "32"))
# The chain libraries raise Python's recursion limit to 100,000 on import; common.apps puts
# it back to this (web, worker, beat, commands), so C recursion cannot overflow the stack.
PYTHON_RECURSION_LIMIT = int(os.environ.get("PYTHON_RECURSION_LIMIT", "3000"))

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": [
        "common.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "common.schema.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "common.api.Pagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "common.api.exception_handler",
    "COERCE_DECIMAL_TO_STRING": True,
    # Services per API key, members per user, anyone else per IP; counters in the cache below.
    "DEFAULT_THROTTLE_CLASSES": ["common.throttles.ApiRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "anon": os.environ.get("API_ANON_THROTTLE", "120/minute"),
        "user": os.environ.get("API_USER_THROTTLE", "600/minute"),
        "service": os.environ.get("API_SERVICE_THROTTLE", "3000/minute"),
    },
    # No `?format=`: an unknown value was an undocumented 404 on every operation; use Accept.
    "URL_FORMAT_OVERRIDE": None,
    # Proxies in front of the web server whose X-Forwarded-For is trusted for the client IP.
    "NUM_PROXIES": int(os.environ["API_NUM_PROXIES"]) if os.environ.get("API_NUM_PROXIES") else None,
}
# /health/: beat is reported down when its last heartbeat is older than this (config.health).
HEALTH_BEAT_MAX_AGE_SECONDS = int(os.environ.get("HEALTH_BEAT_MAX_AGE_SECONDS", "180"))

SPECTACULAR_SETTINGS = {
    # The docs pages load their scripts from the project (works offline), not from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Redoc's own fonts come from Google Fonts: the system's instead (templates/api/redoc.html).
    "REDOC_UI_SETTINGS": {"theme": {"typography": {
        "fontFamily": 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif',
        "headings": {"fontFamily": 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif'},
        "code": {"fontFamily": "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace"}}}},
    "TITLE": "AZR back-office API",
    "DESCRIPTION": "Members (token auth), staff, and services (API key: `Authorization: Api-Key <key>`). "
                   "Every error is JSON: `{message, code, errors, codes}` (README: Error codes).",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {"WithdrawalStatusEnum": "withdrawals.models.Withdrawal.Status"},
    "APPEND_COMPONENTS": {
        "securitySchemes": {
            "ApiKeyAuth": {"type": "apiKey", "in": "header", "name": "Authorization",
                           "description": "`Api-Key <key>` — for payment and revenue services."}
        }
    },
}
API_KEY_CUSTOM_HEADER = None  # Authorization: Api-Key <key>

# --- Celery ---------------------------------------------------------------------------------
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "") or "filesystem://localhost/"
if CELERY_BROKER_URL in ("filesystem://", "memory://"):
    # The host-less transports: without a hostname kombu warns "No hostname was supplied" on
    # every connection (web, worker and beat). They ignore it; name one.
    CELERY_BROKER_URL += "localhost/"

# --- Cache (the API's throttle counters): shared by every process --------------------------
# CACHE_URL (or REDIS_URL) when set; else the Celery broker when it is Redis; else the
# database cache (table `django_cache`, created by common's migration and
# `manage.py createcachetable`). `locmem://` is per process: tests and one-process use only.
CACHE_URL = os.environ.get("CACHE_URL") or os.environ.get("REDIS_URL") or (
    CELERY_BROKER_URL if CELERY_BROKER_URL.startswith(("redis://", "rediss://")) else "")
if CACHE_URL.startswith(("redis://", "rediss://")):
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL,
                          "KEY_PREFIX": "azr"}}
elif CACHE_URL.startswith("locmem://"):
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
elif CACHE_URL in ("", "db://"):
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "django_cache",
                          "OPTIONS": {"MAX_ENTRIES": 100_000}}}
else:
    raise ImproperlyConfigured(f"CACHE_URL must be redis://…, rediss://…, db:// or locmem://, not {CACHE_URL!r}.")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _queue_dir = VAR_DIR / "celery" / "queue"
    _processed_dir = VAR_DIR / "celery" / "processed"
    _control_dir = VAR_DIR / "celery" / "control"
    for _d in (_queue_dir, _processed_dir, _control_dir):
        _d.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir),
        "data_folder_out": str(_queue_dir),
        "processed_folder": str(_processed_dir),
        "control_folder": str(_control_dir),
        "store_processed": False,
    }
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = "UTC"
CELERY_ENABLE_UTC = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# --- The platform ---------------------------------------------------------------------------
SYSTEM_ROOT_EMAIL = os.environ.get("SYSTEM_ROOT_EMAIL", "root@system.local")

# --- mlm (compensation plan): settings of the mlm app go here ------------------------------
# The plan's numbers (ranks, tiers, rates, thresholds) are rows edited in the admin, not settings.
# Counted purchases with no processed marker after this many minutes are processed by the sweeper.
MLM_SWEEP_AFTER_MINUTES = int(os.environ.get("MLM_SWEEP_AFTER_MINUTES", "5"))

# --- legacy_import: settings of the legacy_import app go here -------------------------------
# Uploads from the admin import page wait here between the dry run and the real run (private:
# not under MEDIA_ROOT). Larger files: use `manage.py import_legacy`.
LEGACY_IMPORT_UPLOAD_DIR = Path(os.environ.get("LEGACY_IMPORT_UPLOAD_DIR", VAR_DIR / "legacy_import"))
LEGACY_IMPORT_MAX_UPLOAD_BYTES = int(os.environ.get("LEGACY_IMPORT_MAX_UPLOAD_BYTES", 20 * 1024 * 1024))

# --- tokens (buy-back): settings of the tokens app go here ----------------------------------
# The USD→ZAR rate the first migration seeds (pack prices are USD); replace it in the admin.
TOKENS_DEFAULT_USD_TO_ZAR_RATE = os.environ.get("TOKENS_DEFAULT_USD_TO_ZAR_RATE", "18.00")
# Whether imported legacy purchases are pack-sale revenue (they are counted purchases).
TOKENS_LEGACY_PURCHASES_ARE_REVENUE = env_bool("TOKENS_LEGACY_PURCHASES_ARE_REVENUE", True)
# A pending buy-order older than this is reconciled from the chain before the next scheduled run.
TOKENS_PENDING_STALE_MINUTES = int(os.environ.get("TOKENS_PENDING_STALE_MINUTES", "15"))

# --- The chain (token buy-back) -------------------------------------------------------------
WEB3_PROVIDER_URI = os.environ.get("WEB3_PROVIDER_URI", "")
CHAIN_ROUTER_ADDRESS = os.environ.get("CHAIN_ROUTER_ADDRESS", "")
CHAIN_AZR_TOKEN_ADDRESS = os.environ.get("CHAIN_AZR_TOKEN_ADDRESS", "")
CHAIN_ZAR_TOKEN_ADDRESS = os.environ.get("CHAIN_ZAR_TOKEN_ADDRESS", "")
CHAIN_TREASURY_PRIVATE_KEY = os.environ.get("CHAIN_TREASURY_PRIVATE_KEY", "")
CHAIN_BURN_ADDRESS = os.environ.get("CHAIN_BURN_ADDRESS", "0x000000000000000000000000000000000000dEaD")
CHAIN_INFO_FILE = os.environ.get("CHAIN_INFO_FILE", str(VAR_DIR / "chain.json"))
# Blocks on top of a transaction's block before it counts as mined (0: the first receipt; the
# local chain mines only on demand, keep 0 there). On a public chain, 2 or more.
CHAIN_CONFIRMATIONS = os.environ.get("CHAIN_CONFIRMATIONS", "0")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"web3": {"level": "WARNING"}, "eth_tester": {"level": "WARNING"}},
}

if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", False)
    CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
