"""Settings for the test suite. VERSIONING_TEST_DATABASE_URL selects PostgreSQL."""

from tests.pgserver import database_from_environment

SECRET_KEY = "tests-only"
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "versioning",
    "tests.testapp",
    # The demo's own pages (VersionedModelForm outside the admin) are tested too.
    "demo_project.catalog",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "versioning.middleware.VersioningMiddleware",
]

ROOT_URLCONF = "tests.urls"
STATIC_URL = "static/"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

_postgres = database_from_environment()
DATABASES = (
    {
        "default": _postgres,
        # As Django tests a replica: a mirror of default, except in
        # tests/test_replica.py, which points it at a streaming replica.
        "replica": {**_postgres, "TEST": {"MIRROR": "default"}},
    }
    if _postgres
    else {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
)
