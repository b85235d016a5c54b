"""FacePortal settings, read from the environment (docs/CONFIGURATION.md lists every variable).

The engine's weights directory is the engine's own (`DEEPFACE_HOME`, faces/engine/config.py), so
its installers read it without Django; Prometheus reads PROMETHEUS_MULTIPROC_DIR itself.

Unset variables give the embedded default (SQLite, local-memory cache, in-memory channel layer,
in-process vector index, the offline Dlib model). See docs/CONFIGURATION.md.
"""

from __future__ import annotations

import os
import re
import secrets
import sqlite3
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from faceportal.environment import (
    bad,
    env,
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_rate,
    env_str,
    raw,
)

BASE_DIR = Path(__file__).resolve().parent.parent

VAR_DIR = Path(env_str("FACEPORTAL_VAR_DIR", str(BASE_DIR / "var")))
# Git ignores var/, so a fresh clone lacks it; the default SQLite file and the index live there.
VAR_DIR.mkdir(parents=True, exist_ok=True)
DEBUG = env_bool("DEBUG", False)

# --- Database (read first: where the secrets may come from depends on it) -----------------------
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 0))}
EMBEDDED_DATABASE = DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"

# --- Secrets --------------------------------------------------------------------------------------
# The key every release before this one used when SECRET_KEY was unset (public: it is in git).
LEGACY_DEV_SECRET_KEY = "dev-insecure-faceportal-key-change-me-in-production"


def _var_secret(name: str, *, seed: str | None = None) -> str:
    """A secret generated once into var/ (mode 0600) and read back on every later start."""
    path = VAR_DIR / name
    if not path.exists():
        # Written whole to a private file, then linked into place: a process starting at the same
        # moment either wins the link or reads the complete value of the one that did.
        draft = VAR_DIR / f".{name}.{os.getpid()}"
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(seed or secrets.token_urlsafe(50))
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip()


def _sqlite_has_api_keys(path: str) -> bool:
    if not Path(path).is_file():
        return False
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            return db.execute("SELECT EXISTS (SELECT 1 FROM apikeys_apikey)").fetchone()[0] == 1
    except sqlite3.Error:
        return False


# Embedded default (SQLite, one host): SECRET_KEY and the API-key pepper are generated once into
# var/ and never change. With a server database several hosts share the data, so a per-host file
# would differ between them: both must come from the environment (docs/SECRETS.md).
SECRET_KEY_FROM_ENV = raw("SECRET_KEY") is not None
_missing = [name for name in ("SECRET_KEY", "FACEPORTAL_API_KEY_PEPPER") if raw(name) is None]
if _missing and not EMBEDDED_DATABASE:
    raise ImproperlyConfigured(
        f"{' and '.join(_missing)} must be set when DATABASE_URL points at a server database "
        "(docs/SECRETS.md; existing deployments: FACEPORTAL_API_KEY_PEPPER = the SECRET_KEY that issued your keys)."
    )
SECRET_KEY = env.str("SECRET_KEY") if SECRET_KEY_FROM_ENV else _var_secret("secret_key")
if not DEBUG and (SECRET_KEY == LEGACY_DEV_SECRET_KEY or len(SECRET_KEY) < 32):
    raise ImproperlyConfigured("SECRET_KEY is the public development key or shorter than 32 characters; "
                               "set a long random one (or DEBUG=true for development).")
# Keyed hash for API keys, separate from SECRET_KEY so rotating SECRET_KEY keeps API keys valid.
# An embedded install that already issued keys hashed them with the old fallback (SECRET_KEY or
# the legacy dev key): that value is frozen into var/ once, so those keys keep working.
API_KEY_PEPPER = raw("FACEPORTAL_API_KEY_PEPPER") or _var_secret(
    "api_key_pepper",
    seed=(raw("SECRET_KEY") or LEGACY_DEV_SECRET_KEY)
    if _sqlite_has_api_keys(DATABASES["default"]["NAME"]) else None,
)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# --- HTTPS ------------------------------------------------------------------------------------------
# Behind a TLS-terminating proxy, FACEPORTAL_SECURE_PROXY_SSL_HEADER names the header it sets
# ("X-Forwarded-Proto", or "Name=value"; the value defaults to https). Only set it when that proxy
# always sets or overwrites the header: otherwise a client could claim https itself.
_PROXY_SSL = raw("FACEPORTAL_SECURE_PROXY_SSL_HEADER")
if _PROXY_SSL:
    _header, _, _value = _PROXY_SSL.partition("=")
    if not re.fullmatch(r"[A-Za-z0-9-]+", _header.strip()):
        raise bad("FACEPORTAL_SECURE_PROXY_SSL_HEADER", _PROXY_SSL, "a header name like X-Forwarded-Proto")
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _header.strip().upper().replace("-", "_"), _value.strip() or "https")
# Served over https (directly, or through that proxy): cookies only over https, and HSTS.
FACEPORTAL_HTTPS = env_bool("FACEPORTAL_HTTPS", bool(_PROXY_SSL))
if FACEPORTAL_HTTPS:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("FACEPORTAL_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("FACEPORTAL_HSTS_INCLUDE_SUBDOMAINS", False)
    SECURE_HSTS_PRELOAD = env_bool("FACEPORTAL_HSTS_PRELOAD", False)
    # Off by default: health probes and the proxy's own checks often reach daphne over plain http.
    SECURE_SSL_REDIRECT = env_bool("FACEPORTAL_SSL_REDIRECT", False)
SESSION_COOKIE_HTTPONLY = True

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
    "axes",  # lock-out of /admin/login/ after repeated wrong passwords
    "organizations",
    "apikeys",
    "faces",
    "recognition",
    "console",  # the staff console composes every room above, so it comes last
]

MIDDLEWARE = [
    "faceportal.middleware.RequestLogMiddleware",  # first: request id and timing cover everything
    "faceportal.middleware.Utf8QueryMiddleware",  # a query string that is not UTF-8 is a 400
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes requires: turns a lock-out into a 429
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

# --- Database options ------------------------------------------------------------------------------
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = env_int("DB_CONNECT_TIMEOUT", 5)
if EMBEDDED_DATABASE:
    # Concurrent writers (daphne's thread pool, the engine pool, several clients): WAL lets readers
    # run beside the one writer, IMMEDIATE takes the write lock at BEGIN (a deferred transaction
    # that upgrades later fails at once with "database is locked" instead of waiting), and the
    # busy timeout makes a writer wait its turn. Registrations hold the lock for milliseconds: the
    # model runs before the transaction opens (faces/services.py).
    DATABASES["default"].setdefault("OPTIONS", {}).update({
        "timeout": env_int("FACEPORTAL_SQLITE_TIMEOUT", 30),
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
    })
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache and channel layer -----------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL", "")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "faceportal"),
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                # Redis down must degrade to the database, never an outage.
                "IGNORE_EXCEPTIONS": True,
                "SOCKET_CONNECT_TIMEOUT": env_float("REDIS_CONNECT_TIMEOUT", 0.5),
                "SOCKET_TIMEOUT": env_float("REDIS_SOCKET_TIMEOUT", 0.5),
            },
        }
    }
    # Failed-authentication counters: an alias of their own (its own key prefix, and its own Redis
    # when FACEPORTAL_AUTH_BUDGET_REDIS_URL names one), so nothing else that is cached can push
    # them out. That Redis must not evict keys (maxmemory-policy noeviction or volatile-*).
    CACHES["auth_budget"] = {
        **CACHES["default"],
        "LOCATION": env_str("FACEPORTAL_AUTH_BUDGET_REDIS_URL", REDIS_URL),
        "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "faceportal") + ":authbudget",
        "TIMEOUT": None,
    }
    DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": "faceportal:channels:"},
        }
    }
else:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        # In memory but never culled while live: the default's 300 entries would let any anonymous
        # request push a failure counter out and so reset the budget (apikeys/budget_cache.py).
        "auth_budget": {"BACKEND": "apikeys.budget_cache.ExpiringOnlyLocMemCache", "LOCATION": "auth-budget",
                        "TIMEOUT": None},
    }
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Auth, i18n, static -------------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    # django-axes refuses a locked-out client before ModelBackend hashes its password.
    "apikeys.authentication.AdminLoginLockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# django-axes guards the admin login form; staff Basic auth on the API is held by the failed-auth
# budgets of apikeys/throttling.py (failures there still count towards the admin lock-out).
AXES_ONLY_ADMIN_SITE = True
AXES_FAILURE_LIMIT = env_int("FACEPORTAL_ADMIN_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = env_float("FACEPORTAL_ADMIN_LOGIN_COOLOFF_HOURS", 0.25)
# Per address (an IPv6 /64), whatever username it tries: one address cannot walk through usernames.
AXES_LOCKOUT_PARAMETERS = ["ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "apikeys.throttling.lockout_address"
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"  # shared by every worker, survives restarts
AXES_VERBOSE = False
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
# The server (faceportal.server) refuses bodies before reading them: image routes take
# FACEPORTAL_MAX_BODY_BYTES, every other route FACEPORTAL_MAX_SMALL_BODY_BYTES.
FACEPORTAL_MAX_SMALL_BODY_BYTES = env_int("FACEPORTAL_MAX_SMALL_BODY_BYTES", 1024 * 1024)
FACEPORTAL_IMAGE_ROUTES = frozenset({
    "register", "recognize", "verify", "enrolment-job-list", "gallery-import",
    "admin:organizations_organization_try_recognize", "admin:organizations_organization_try_register",
})
# A request's headers must all arrive within this many seconds of its first byte, and its body
# within the second figure after them (408 otherwise). 0 turns a deadline off.
FACEPORTAL_HTTP_HEADER_TIMEOUT = env_float("FACEPORTAL_HTTP_HEADER_TIMEOUT", 10.0)
FACEPORTAL_HTTP_BODY_TIMEOUT = env_float("FACEPORTAL_HTTP_BODY_TIMEOUT", 120.0)

# --- REST framework -------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apikeys.authentication.APIKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
        "apikeys.authentication.ThrottledBasicAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": [
        "faceportal.parsers.SafeJSONParser",  # bounded nesting, no lone surrogates
        "faceportal.parsers.StrictMultiPartParser",  # text fields UTF-8 or a 400, never U+FFFD
        "faceportal.parsers.StrictFormParser",
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
        "api_key": env_rate("FACEPORTAL_THROTTLE_KEY_RATE", "6000/min"),
        "address": env_rate("FACEPORTAL_THROTTLE_ADDRESS_RATE", "12000/min"),
        # Failed authentications per IPv4 address / IPv6 /64 (API keys and staff passwords).
        "auth_failure": env_rate("FACEPORTAL_THROTTLE_AUTH_FAILURE_RATE", "30/min"),
        # Failed staff passwords (Basic auth) per username from all addresses together; networks
        # that signed in as that user within FACEPORTAL_STAFF_KNOWN_NETWORK_DAYS are not held by it.
        "password_failure_user": env_rate("FACEPORTAL_THROTTLE_PASSWORD_FAILURE_USER_RATE", "30/min"),
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
# Where the model weights live is the engine's own setting ($DEEPFACE_HOME, faces/engine/config.py).
DEEPFACE_EMBEDDER_MODEL = env_str("DEEPFACE_EMBEDDER_MODEL", "Dlib")
# How the Dlib model runs: "onnx" (our conversion of its ResNet, on ONNX Runtime) or "dlib" (the
# dlib-bin package). Same embeddings either way; onnx is ~10x faster per face and scales with cores.
FACEPORTAL_DLIB_RUNTIME = env_choice("FACEPORTAL_DLIB_RUNTIME", "onnx", {"onnx", "dlib"})
# The second model, fused with the first only where the first cannot decide alone (docs/ENGINE.md);
# "none" decides by the first model alone.
FACEPORTAL_SECOND_MODEL = env_choice("FACEPORTAL_SECOND_MODEL", "Facenet512", {"Facenet512", "none"}).replace(
    "none", "")
# RetinaFace-MobileNet0.25 on ONNX Runtime (faces/engine/retinaface.py); "dlib" is the HOG detector.
DEEPFACE_DETECTOR_BACKEND = env_str("DEEPFACE_DETECTOR_BACKEND", "retinaface-onnx")
# Minimum similarity ((1 + cosine) / 2) for a match; unset = the model's calibrated default.
FACEPORTAL_DEFAULT_THRESHOLD = env_float("FACEPORTAL_DEFAULT_THRESHOLD", None, maximum=1.0)
# Detection runs on a copy whose longest side is at most this many pixels; boxes map back.
FACEPORTAL_DETECT_MAX_SIDE = env_int("FACEPORTAL_DETECT_MAX_SIDE", 800)
FACEPORTAL_MIN_FACE_PIXELS = env_int("FACEPORTAL_MIN_FACE_PIXELS", 24)
# Enrolment quality gates (faces/quality.py, docs/OPEN_SET.md): the smallest face side in pixels,
# the least sharpness (variance of the Laplacian at 128 px), the most yaw (nose offset in eye
# distances), and how close the second face's prominence may come to the first's before an image
# is refused as ambiguous.
FACEPORTAL_ENROL_MIN_FACE_PIXELS = env_int("FACEPORTAL_ENROL_MIN_FACE_PIXELS", 40)
FACEPORTAL_ENROL_MIN_SHARPNESS = env_float("FACEPORTAL_ENROL_MIN_SHARPNESS", 10.0)
FACEPORTAL_ENROL_MAX_YAW = env_float("FACEPORTAL_ENROL_MAX_YAW", 0.45)
FACEPORTAL_ENROL_AMBIGUOUS_RATIO = env_float("FACEPORTAL_ENROL_AMBIGUOUS_RATIO", 0.75)
# retinaface-onnx thresholds, chosen on ../shared/faces (docs/DETECTOR.md): faces at the image's own
# size; faces only the 2x pass finds; images below this longest side get the 2x pass.
FACEPORTAL_RETINAFACE_SCORE = env_float("FACEPORTAL_RETINAFACE_SCORE", 0.85)
FACEPORTAL_RETINAFACE_UPSCALED_SCORE = env_float("FACEPORTAL_RETINAFACE_UPSCALED_SCORE", 0.55)
FACEPORTAL_RETINAFACE_UPSCALE_BELOW = env_int("FACEPORTAL_RETINAFACE_UPSCALE_BELOW", 640)
FACEPORTAL_ENGINE_WORKERS = env_int("FACEPORTAL_ENGINE_WORKERS", os.cpu_count() or 2)
FACEPORTAL_WARM_ENGINE = env_bool("FACEPORTAL_WARM_ENGINE", True)

# Image input limits and sources.
FACEPORTAL_MAX_IMAGE_BYTES = env_int("FACEPORTAL_MAX_IMAGE_BYTES", 10 * 1024 * 1024)
FACEPORTAL_MAX_IMAGE_PIXELS = env_int("FACEPORTAL_MAX_IMAGE_PIXELS", 40_000_000)
FACEPORTAL_MAX_IMAGES_PER_REQUEST = env_int("FACEPORTAL_MAX_IMAGES_PER_REQUEST", 10)
FACEPORTAL_IMAGE_ROOT = raw("FACEPORTAL_IMAGE_ROOT")
FACEPORTAL_URL_FETCH_TIMEOUT = env_float("FACEPORTAL_URL_FETCH_TIMEOUT", 5.0)
FACEPORTAL_URL_FETCH_ENABLED = env_bool("FACEPORTAL_URL_FETCH_ENABLED", True)
# Decoding: images are downscaled to this longest side while decoding (JPEG: before, in the
# decoder), and decodes in flight in this process may together hold at most the budget; a decode
# waits up to the wait for room, then the request gets 503. An image whose decode alone exceeds
# the budget is refused (413). See docs/SECURITY.md.
FACEPORTAL_DECODE_MAX_SIDE = env_int("FACEPORTAL_DECODE_MAX_SIDE", 2048)
FACEPORTAL_DECODE_BUDGET_BYTES = env_int("FACEPORTAL_DECODE_BUDGET_BYTES", 320 * 1024 * 1024)
FACEPORTAL_DECODE_WAIT_SECONDS = env_float("FACEPORTAL_DECODE_WAIT_SECONDS", 10.0)
# Decoded pixels all images of one request may add up to (decode time grows with pixels).
FACEPORTAL_DECODE_REQUEST_PIXELS = env_int("FACEPORTAL_DECODE_REQUEST_PIXELS", 100_000_000)
# Structure checked before any decoder runs (422 image_too_complex): work that grows with it, not
# with pixels. A progressive JPEG has about 10 scans; each costs a pass over every block.
FACEPORTAL_DECODE_MAX_SCANS = env_int("FACEPORTAL_DECODE_MAX_SCANS", 64)
FACEPORTAL_DECODE_MAX_SCAN_PIXELS = env_int("FACEPORTAL_DECODE_MAX_SCAN_PIXELS", 640_000_000)
# JPEG segments, PNG chunks, GIF extension sub-blocks, TIFF tags and strips or tiles; and of them,
# metadata (JPEG APPn/COM, PNG ancillary chunks, GIF extensions).
FACEPORTAL_DECODE_MAX_BLOCKS = env_int("FACEPORTAL_DECODE_MAX_BLOCKS", 16384)
FACEPORTAL_DECODE_MAX_METADATA_BLOCKS = env_int("FACEPORTAL_DECODE_MAX_METADATA_BLOCKS", 256)
# Faces embedded per image: past this, only the most prominent are kept (answers give faces_dropped).
FACEPORTAL_MAX_FACES_PER_IMAGE = env_int("FACEPORTAL_MAX_FACES_PER_IMAGE", 20)
# JSON bodies and WebSocket messages nested deeper than this are refused (400 / error reply).
FACEPORTAL_MAX_JSON_DEPTH = env_int("FACEPORTAL_MAX_JSON_DEPTH", 32)

# --- Real-time WebSocket (/ws/recognize) ------------------------------------------------------------
# Below daphne's own 1 MiB message cap, so an oversized frame gets an error reply, not a dropped socket.
FACEPORTAL_WS_MAX_FRAME_BYTES = env_int("FACEPORTAL_WS_MAX_FRAME_BYTES", 768 * 1024)
FACEPORTAL_WS_MAX_FPS = env_float("FACEPORTAL_WS_MAX_FPS", 30.0)  # per connection; extra frames get an error
FACEPORTAL_WS_MAX_CONNECTIONS = env_int("FACEPORTAL_WS_MAX_CONNECTIONS", 100)  # per daphne process
FACEPORTAL_WS_MAX_CONNECTIONS_PER_KEY = env_int("FACEPORTAL_WS_MAX_CONNECTIONS_PER_KEY", 10)  # per process
# All keys of one organisation together, per process: below the process cap, so one tenant cannot hold it all.
FACEPORTAL_WS_MAX_CONNECTIONS_PER_ORGANIZATION = env_int("FACEPORTAL_WS_MAX_CONNECTIONS_PER_ORGANIZATION", 30)
# A socket that sends no message for this many seconds is closed (4408); 0 keeps idle sockets open.
FACEPORTAL_WS_IDLE_TIMEOUT = env_float("FACEPORTAL_WS_IDLE_TIMEOUT", 60.0)
# Messages past the frame rate get rate_limited errors; a connection that keeps sending this many
# times faster than FACEPORTAL_WS_MAX_FPS (a burst of as many seconds' worth) is closed (4420).
FACEPORTAL_WS_FLOOD_FACTOR = env_float("FACEPORTAL_WS_FLOOD_FACTOR", 4.0, minimum=1.0)
# Frames a connection may queue when it opts out of stale-frame dropping (`drop_stale=0`).
FACEPORTAL_WS_MAX_QUEUED_FRAMES = env_int("FACEPORTAL_WS_MAX_QUEUED_FRAMES", 64)
# Faces tracked across a connection's frames, named by agreement over the track (docs/WEBSOCKET.md);
# a connection may still say track=0 or track=1 in its handshake.
FACEPORTAL_WS_TRACKING = env_bool("FACEPORTAL_WS_TRACKING", True)
FACEPORTAL_WS_TRACK_REEMBED_SECONDS = env_float("FACEPORTAL_WS_TRACK_REEMBED_SECONDS", 1.0, minimum=0.0)

# --- Kept unknown faces (docs/UNKNOWN_FACES.md) -----------------------------------------------------
# A socket keeps at most one unknown face per this many seconds: a face in view is not kept per frame.
FACEPORTAL_UNKNOWN_KEEP_INTERVAL = env_float("FACEPORTAL_UNKNOWN_KEEP_INTERVAL", 2.0)
# How often the server purges expired unknowns (0 = never in the server; run `manage.py purge_unknown_faces`).
FACEPORTAL_UNKNOWN_SWEEP_SECONDS = env_float("FACEPORTAL_UNKNOWN_SWEEP_SECONDS", 3600.0)
# Bulk enrolment jobs (docs/API.md): an archive's bounds; each image also meets the image limits above.
FACEPORTAL_ENROLMENT_JOB_MAX_FILES = env_int("FACEPORTAL_ENROLMENT_JOB_MAX_FILES", 5000)
FACEPORTAL_ENROLMENT_JOB_MAX_UNZIPPED_BYTES = env_int("FACEPORTAL_ENROLMENT_JOB_MAX_UNZIPPED_BYTES", 200 * 1024 * 1024)
FACEPORTAL_ENROLMENT_JOB_MAX_RATIO = env_float("FACEPORTAL_ENROLMENT_JOB_MAX_RATIO", 20.0)
# Seconds the job runner sleeps when no job is waiting (0: no runner in this process).
FACEPORTAL_ENROLMENT_JOB_POLL_SECONDS = env_float("FACEPORTAL_ENROLMENT_JOB_POLL_SECONDS", 2.0)

# --- Webhooks (docs/WEBHOOKS.md) -------------------------------------------------------------------
# Targets must resolve to public addresses unless this is on (a home server posting to its LAN).
FACEPORTAL_WEBHOOK_ALLOW_PRIVATE = env_bool("FACEPORTAL_WEBHOOK_ALLOW_PRIVATE", False)
# Seconds one delivery attempt may take, connection and answer together.
FACEPORTAL_WEBHOOK_TIMEOUT = env_float("FACEPORTAL_WEBHOOK_TIMEOUT", 10.0, minimum=0.1)
# Attempts per delivery before it is marked failed; the wait doubles from the backoff after each.
FACEPORTAL_WEBHOOK_MAX_ATTEMPTS = env_int("FACEPORTAL_WEBHOOK_MAX_ATTEMPTS", 6, minimum=1)
FACEPORTAL_WEBHOOK_BACKOFF_SECONDS = env_float("FACEPORTAL_WEBHOOK_BACKOFF_SECONDS", 30.0)
# How often the server's delivery thread looks for due deliveries (0: no thread in the server).
FACEPORTAL_WEBHOOK_POLL_SECONDS = env_float("FACEPORTAL_WEBHOOK_POLL_SECONDS", 2.0)
# A WebSocket fires at most one event per person (and one face.unknown) per this many seconds.
FACEPORTAL_WEBHOOK_WS_INTERVAL = env_float("FACEPORTAL_WEBHOOK_WS_INTERVAL", 30.0)

# --- Vector store ---------------------------------------------------------------------------------
# Embedded store: organisations with at least this many faces are searched through a persisted
# HNSW graph (usearch, int8, candidates re-ranked exactly) instead of exact NumPy; the search
# expansion trades query time for recall (docs/PERFORMANCE.md, "Gallery scale").
FACEPORTAL_ANN_MIN_FACES = env_int("FACEPORTAL_ANN_MIN_FACES", 50_000)
FACEPORTAL_ANN_EXPANSION_SEARCH = env_int("FACEPORTAL_ANN_EXPANSION_SEARCH", 512)
MONGODB_URI = env_str("MONGODB_URI", "")
MONGODB_DATABASE = env_str("MONGODB_DATABASE", "faceportal")
# "per_org": one collection and search index per organisation; "shared": one of each, filtered.
MONGODB_LAYOUT = env_choice("MONGODB_LAYOUT", "per_org", {"per_org", "shared"})
MONGODB_TIMEOUT_MS = env_int("MONGODB_TIMEOUT_MS", 3000)
MONGODB_NUM_CANDIDATES_FACTOR = env_int("MONGODB_NUM_CANDIDATES_FACTOR", 20)
MONGODB_EXACT_BELOW = env_int("MONGODB_EXACT_BELOW", 10_000)
FACEPORTAL_VECTOR_STORE = env_choice(
    "FACEPORTAL_VECTOR_STORE", "atlas" if MONGODB_URI else "embedded", {"atlas", "embedded"}
)

# --- API keys -------------------------------------------------------------------------------------
FACEPORTAL_STAFF_KNOWN_NETWORK_DAYS = env_int("FACEPORTAL_STAFF_KNOWN_NETWORK_DAYS", 30)
API_KEY_CACHE_TTL = env_int("FACEPORTAL_API_KEY_CACHE_TTL", 60)
# How long a prefix that names no usable key is remembered as absent (guesses then cost no query).
API_KEY_NEGATIVE_CACHE_TTL = env_int("FACEPORTAL_API_KEY_NEGATIVE_CACHE_TTL", 10)

# --- Logging --------------------------------------------------------------------------------------
LOG_LEVEL = env_choice("LOG_LEVEL", "INFO", {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"})
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(levelname)s %(name)s %(message)s",
            # ISO 8601 in UTC with its offset: "2026-12-02T15:51:15.706000+00:00".
            "timestamp": "time",
        },
    },
    "filters": {
        "request_context": {"()": "faceportal.log_context.RequestContextFilter"},
        "without_traceback": {"()": "faceportal.log_filters.WithoutTraceback"},
        "only_unhandled_errors": {"()": "faceportal.log_filters.OnlyUnhandledErrors"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "json", "filters": ["request_context"]}
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        # Django repeats every 4xx and 5xx response as its own warning or error; the request line
        # already says it. Only an unhandled exception still logs here, with its traceback.
        "django.request": {
            "handlers": ["console"], "level": "ERROR", "propagate": False, "filters": ["only_unhandled_errors"],
        },
        # daphne runs with -v 0 (no plain-text access log); its own warnings and errors stay.
        "daphne": {"handlers": ["console"], "level": "WARNING", "propagate": False},
        # django-axes logs every failed login at INFO; its lock-outs are warnings.
        "axes": {"handlers": ["console"], "level": "WARNING", "propagate": False},
        # A Host outside ALLOWED_HOSTS (a LAN address, say) gets 400 "Bad request."; this line names
        # the host to add, without a 30-line traceback.
        "django.security.DisallowedHost": {
            "handlers": ["console"], "level": "ERROR", "propagate": False, "filters": ["without_traceback"],
        },
    },
}
