"""FacePortal settings: every knob is read from the environment here and nowhere else.

Unset variables give the embedded default (SQLite, local-memory cache, in-memory channel layer,
in-process vector index, the offline Dlib model). See README, "Configuration".
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("FACEPORTAL_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value not in (None, "") else default


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)
# A development key is only acceptable when nothing else is configured; production sets SECRET_KEY.
SECRET_KEY = os.environ.get("SECRET_KEY") or "dev-insecure-faceportal-key-change-me-in-production"
# Keyed hash for API keys; separate so rotating SECRET_KEY (sessions) keeps API keys valid.
API_KEY_PEPPER = os.environ.get("FACEPORTAL_API_KEY_PEPPER") or SECRET_KEY
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's JS and CSS served from here, not a CDN
    "channels",
    "organizations",
    "apikeys",
    "faces",
    "recognition",
]

MIDDLEWARE = [
    "faceportal.middleware.RequestLogMiddleware",  # first: request id and timing cover everything
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "faceportal.urls"
APPEND_SLASH = False

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

WSGI_APPLICATION = "faceportal.wsgi.application"
ASGI_APPLICATION = "faceportal.asgi.application"

# --- Database -----------------------------------------------------------------------------------
DATABASE_URL = os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'db.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 0))}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = env_int("DB_CONNECT_TIMEOUT", 5)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several threads (daphne's sync pool, the engine pool) write; wait instead of failing at once.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache and channel layer -----------------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": os.environ.get("CACHE_KEY_PREFIX", "faceportal"),
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                # Redis down must degrade to the database, never an outage.
                "IGNORE_EXCEPTIONS": True,
                "SOCKET_CONNECT_TIMEOUT": env_float("REDIS_CONNECT_TIMEOUT", 0.5),
                "SOCKET_TIMEOUT": env_float("REDIS_SOCKET_TIMEOUT", 0.5),
            },
        }
    }
    DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": "faceportal:channels:"},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Auth, i18n, static -------------------------------------------------------------------------
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
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve straight from the apps' static folders too, so `make run` needs no collectstatic.
WHITENOISE_USE_FINDERS = True

# --- Request limits -------------------------------------------------------------------------------
# Base64 inflates by 4/3; the body cap leaves room for FACEPORTAL_MAX_IMAGES_PER_REQUEST images.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("FACEPORTAL_MAX_BODY_BYTES", 40 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = DATA_UPLOAD_MAX_MEMORY_SIZE

# --- REST framework -------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apikeys.authentication.APIKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
        "apikeys.authentication.ThrottledBasicAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "faceportal.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "faceportal.openapi.FacePortalAutoSchema",
    "UNAUTHENTICATED_USER": None,
    # Counted in the cache (Redis when REDIS_URL is set, shared by all workers); see apikeys/throttling.py.
    "DEFAULT_THROTTLE_CLASSES": [
        "apikeys.throttling.APIKeyRateThrottle",
        "apikeys.throttling.ClientAddressRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "api_key": os.environ.get("FACEPORTAL_THROTTLE_KEY_RATE") or "6000/min",
        "address": os.environ.get("FACEPORTAL_THROTTLE_ADDRESS_RATE") or "12000/min",
        "auth_failure": os.environ.get("FACEPORTAL_THROTTLE_AUTH_FAILURE_RATE") or "30/min",
    },
    # Proxies in front of daphne whose X-Forwarded-For to trust; 0 = the socket address only.
    "NUM_PROXIES": env_int("FACEPORTAL_NUM_PROXIES", 0),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "FacePortal API",
    "DESCRIPTION": "Multi-tenant face registration and recognition.",
    "VERSION": "1.0.0",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SERVE_INCLUDE_SCHEMA": False,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "faceportal.openapi.add_security_schemes",
    ],
    "TAGS": [
        {"name": "organizations", "description": "Tenants and their API keys (staff)."},
        {"name": "faces", "description": "Register, list, rename and delete people and their faces."},
        {"name": "recognition", "description": "Recognise faces in an image; 1:1 verification."},
        {"name": "operations", "description": "Liveness and readiness probes."},
    ],
}

# --- Faces ----------------------------------------------------------------------------------------
DEEPFACE_HOME = os.environ.get("DEEPFACE_HOME") or str(VAR_DIR / "deepface")
DEEPFACE_EMBEDDER_MODEL = os.environ.get("DEEPFACE_EMBEDDER_MODEL", "Dlib")
DEEPFACE_DETECTOR_BACKEND = os.environ.get("DEEPFACE_DETECTOR_BACKEND", "dlib")
# Minimum similarity ((1 + cosine) / 2) for a match; unset = the model's calibrated default.
FACEPORTAL_DEFAULT_THRESHOLD = os.environ.get("FACEPORTAL_DEFAULT_THRESHOLD") or None
# Detection runs on a copy whose longest side is at most this many pixels; boxes map back.
FACEPORTAL_DETECT_MAX_SIDE = env_int("FACEPORTAL_DETECT_MAX_SIDE", 800)
FACEPORTAL_MIN_FACE_PIXELS = env_int("FACEPORTAL_MIN_FACE_PIXELS", 24)
FACEPORTAL_ENGINE_WORKERS = env_int("FACEPORTAL_ENGINE_WORKERS", os.cpu_count() or 2)
FACEPORTAL_WARM_ENGINE = env_bool("FACEPORTAL_WARM_ENGINE", True)

# Image input limits and sources.
FACEPORTAL_MAX_IMAGE_BYTES = env_int("FACEPORTAL_MAX_IMAGE_BYTES", 10 * 1024 * 1024)
FACEPORTAL_MAX_IMAGE_PIXELS = env_int("FACEPORTAL_MAX_IMAGE_PIXELS", 40_000_000)
FACEPORTAL_MAX_IMAGES_PER_REQUEST = env_int("FACEPORTAL_MAX_IMAGES_PER_REQUEST", 10)
FACEPORTAL_IMAGE_ROOT = os.environ.get("FACEPORTAL_IMAGE_ROOT") or None
FACEPORTAL_URL_FETCH_TIMEOUT = env_float("FACEPORTAL_URL_FETCH_TIMEOUT", 5.0)
FACEPORTAL_URL_FETCH_ENABLED = env_bool("FACEPORTAL_URL_FETCH_ENABLED", True)

# --- Real-time WebSocket (/ws/recognize) ------------------------------------------------------------
# Below daphne's own 1 MiB message cap, so an oversized frame gets an error reply, not a dropped socket.
FACEPORTAL_WS_MAX_FRAME_BYTES = env_int("FACEPORTAL_WS_MAX_FRAME_BYTES", 768 * 1024)
FACEPORTAL_WS_MAX_FPS = env_float("FACEPORTAL_WS_MAX_FPS", 30.0)  # per connection; extra frames get an error
FACEPORTAL_WS_MAX_CONNECTIONS = env_int("FACEPORTAL_WS_MAX_CONNECTIONS", 100)  # per daphne process
FACEPORTAL_WS_MAX_CONNECTIONS_PER_KEY = env_int("FACEPORTAL_WS_MAX_CONNECTIONS_PER_KEY", 10)  # per process
# Frames a connection may queue when it opts out of stale-frame dropping (`drop_stale=0`).
FACEPORTAL_WS_MAX_QUEUED_FRAMES = env_int("FACEPORTAL_WS_MAX_QUEUED_FRAMES", 64)

# --- Vector store ---------------------------------------------------------------------------------
# Embedded store: organisations with at least this many faces are searched through a persisted
# HNSW graph (usearch, int8, candidates re-ranked exactly) instead of exact NumPy; the search
# expansion trades query time for recall (512: ~3 ms p50 at 1M faces on 2 cores, see README).
FACEPORTAL_ANN_MIN_FACES = env_int("FACEPORTAL_ANN_MIN_FACES", 50_000)
FACEPORTAL_ANN_EXPANSION_SEARCH = env_int("FACEPORTAL_ANN_EXPANSION_SEARCH", 512)
MONGODB_URI = os.environ.get("MONGODB_URI", "")
MONGODB_DATABASE = os.environ.get("MONGODB_DATABASE", "faceportal")
# "per_org": one collection and search index per organisation; "shared": one of each, filtered.
MONGODB_LAYOUT = os.environ.get("MONGODB_LAYOUT", "per_org")
MONGODB_TIMEOUT_MS = env_int("MONGODB_TIMEOUT_MS", 3000)
MONGODB_NUM_CANDIDATES_FACTOR = env_int("MONGODB_NUM_CANDIDATES_FACTOR", 20)
MONGODB_EXACT_BELOW = env_int("MONGODB_EXACT_BELOW", 10_000)
FACEPORTAL_VECTOR_STORE = os.environ.get("FACEPORTAL_VECTOR_STORE") or ("atlas" if MONGODB_URI else "embedded")

# --- API keys -------------------------------------------------------------------------------------
API_KEY_CACHE_TTL = env_int("FACEPORTAL_API_KEY_CACHE_TTL", 60)

# --- Logging --------------------------------------------------------------------------------------
LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
    },
    "filters": {"request_context": {"()": "faceportal.log_context.RequestContextFilter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "json", "filters": ["request_context"]}
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        "daphne": {"handlers": ["console"], "level": "WARNING", "propagate": False},
    },
}
