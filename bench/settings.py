"""Settings for the benchmark: the same small model kept four ways."""

import os
import tempfile
from urllib.parse import urlsplit

SECRET_KEY = "bench-only"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "simple_history",
    "reversion",
    "versioning",
    "bench.benchapp",
]

_url = os.environ.get("VERSIONING_TEST_DATABASE_URL")
if _url:
    _parts = urlsplit(_url)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": _parts.path.lstrip("/") or "postgres",
            "USER": _parts.username or "postgres",
            "HOST": _parts.hostname,
            "PORT": _parts.port,
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.path.join(tempfile.gettempdir(), "versioning-bench.sqlite3"),
        }
    }
