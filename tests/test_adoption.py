"""
Turning an existing model that already has rows into a versioned one:
makemigrations and migrate, no hand edits, on a real populated database in a
separate process (SQLite file, or a fresh PostgreSQL database when the suite
runs against the throwaway server).
"""

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent

# The converted project has a database of its own; this one only creates it.
pytestmark = pytest.mark.django_db

SETTINGS = """
import json, os
SECRET_KEY = "conversion"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = [
    "django.contrib.auth", "django.contrib.contenttypes", "versioning", "shop",
]
DATABASES = {"default": json.loads(os.environ["CONVERSION_DATABASE"])}
"""

PLAIN_MODEL = """
from django.db import models

class Product(models.Model):
    name = models.CharField(max_length=50)
    price = models.DecimalField(max_digits=8, decimal_places=2)
"""

VERSIONED_MODEL = """
from django.db import models
from versioning.models import Versioned

class Product(Versioned):
    name = models.CharField(max_length=50)
    price = models.DecimalField(max_digits=8, decimal_places=2)
"""

CHECK = """
import django
django.setup()
from decimal import Decimal
from shop.models import Product

rows = sorted(Product.objects.values_list("pk", "name", "version"))
assert rows == [(1, "chair", 1), (2, "desk", 1), (3, "lamp", 1)], rows
assert len(set(Product.objects.values_list("identity", flat=True))) == 3
assert Product.objects.filter(valid_to__isnull=True).count() == 3
lamp = Product.objects.get(name="lamp")
lamp.price = Decimal("12.50")
lamp.save()
assert (lamp.version, lamp.pk) == (2, 4), (lamp.version, lamp.pk)
assert [v.price for v in lamp.history()] == [Decimal("10.00"), Decimal("12.50")]
print("converted")
"""


@pytest.fixture
def conversion_database(tmp_path):
    """A database of its own for the converted project."""
    if connection.vendor == "sqlite":
        yield {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / "db")}
        return
    settings = connection.settings_dict
    name = f"conversion_{uuid.uuid4().hex[:8]}"
    with connection._nodb_cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        yield {
            "ENGINE": settings["ENGINE"],
            "NAME": name,
            "USER": settings["USER"],
            "PASSWORD": settings["PASSWORD"],
            "HOST": settings["HOST"],
            "PORT": settings["PORT"],
        }
    finally:
        with connection._nodb_cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')


def test_a_populated_model_becomes_versioned_with_makemigrations_and_migrate(
    tmp_path, conversion_database
):
    import json

    project = tmp_path / "project"
    app = project / "shop"
    (app / "migrations").mkdir(parents=True)
    (app / "__init__.py").write_text("")
    (app / "migrations" / "__init__.py").write_text("")
    (project / "conversion_settings.py").write_text(SETTINGS)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(project), str(ROOT)]),
        "DJANGO_SETTINGS_MODULE": "conversion_settings",
        "CONVERSION_DATABASE": json.dumps(conversion_database),
    }

    def run(*args):
        result = subprocess.run(
            [sys.executable, *args], cwd=project, env=env, capture_output=True
        )
        output = result.stdout.decode() + result.stderr.decode()
        assert result.returncode == 0, output
        return output

    def manage(*args):
        return run("-m", "django", *args, "--no-input")

    (app / "models.py").write_text(textwrap.dedent(PLAIN_MODEL))
    manage("makemigrations", "shop")
    manage("migrate")
    run(
        "-c",
        "import django; django.setup(); from shop.models import Product; "
        "[Product.objects.create(name=n, price=10) for n in ('chair', 'desk', 'lamp')]",
    )

    (app / "models.py").write_text(textwrap.dedent(VERSIONED_MODEL))
    made = manage("makemigrations", "shop")
    assert "Add field identity to product" in made
    manage("migrate")
    assert "converted" in run("-c", CHECK)
    # The migration state matches the models: nothing left to make.
    manage("makemigrations", "--check", "--dry-run", "shop")
