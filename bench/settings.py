"""
Settings for the benchmark: the same small model kept four ways, on durable
settings (bench/run.py checks them and refuses to measure without them).
"""

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
if _postgres:
    # A commit returns once its WAL is flushed to disk; fsync is the server's
    # own setting (on by default), checked by bench/run.py.
    _postgres["OPTIONS"] = {"options": "-c synchronous_commit=on"}
DATABASES = (
    {"default": _postgres}
    if _postgres
    else {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            # One file per process: runs side by side never share a database.
            "NAME": os.path.join(
                tempfile.gettempdir(), f"versioning-bench-{os.getpid()}.sqlite3"
            ),
            # Django's default rollback journal, synced at every commit.
            "OPTIONS": {"init_command": "PRAGMA synchronous=FULL"},
        }
    }
)
