"""Settings for the benchmark: the same small model kept four ways."""

import os
import tempfile

from tests.pgserver import database_from_environment

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

_postgres = database_from_environment()
DATABASES = (
    {"default": _postgres}
    if _postgres
    else {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.path.join(tempfile.gettempdir(), "versioning-bench.sqlite3"),
        }
    }
)
