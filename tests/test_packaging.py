"""The wheel and the sdist a user installs hold the app and its metadata."""

import email
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import versioning

ROOT = Path(__file__).resolve().parent.parent
NAME = "django_versioned_rows"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Build both once, from a copy of the sources (the build writes files)."""
    work = tmp_path_factory.mktemp("package")
    source = work / "source"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".venv", ".nox", ".git", "*.sqlite3", "__pycache__", "*.egg-info"
        ),
    )
    result = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", work / "dist"],
        cwd=source,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "deprecat" not in (result.stdout + result.stderr).lower()
    wheel = next((work / "dist").glob("*.whl"))
    sdist = next((work / "dist").glob("*.tar.gz"))
    return wheel, sdist


def test_the_wheel_holds_the_app_and_nothing_else(built):
    wheel, _ = built
    assert wheel.name == f"{NAME}-{versioning.__version__}-py3-none-any.whl"
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    assert top == {"versioning", f"{NAME}-{versioning.__version__}.dist-info"}
    for expected in [
        "versioning/__init__.py",
        "versioning/models.py",
        "versioning/py.typed",
        "versioning/templates/admin/versioning/object_history.html",
        "versioning/management/commands/history.py",
        f"{NAME}-{versioning.__version__}.dist-info/licenses/LICENSE",
    ]:
        assert expected in names


def test_the_wheel_metadata_is_complete(built):
    wheel, _ = built
    archive = zipfile.ZipFile(wheel)
    metadata = email.message_from_string(
        archive.read(f"{NAME}-{versioning.__version__}.dist-info/METADATA").decode()
    )
    assert metadata["Name"] == "django-versioned-rows"
    assert metadata["Version"] == versioning.__version__
    assert metadata["License-Expression"] == "BSD-3-Clause"
    assert metadata["Requires-Python"] == ">=3.11"
    extras = set(metadata.get_all("Provides-Extra"))
    assert extras == {"postgres", "test", "dev", "bench"}
    requirements = metadata.get_all("Requires-Dist")
    assert "Django>=5.2" in requirements
    assert any(r.startswith("psycopg") and "postgres" in r for r in requirements)
    classifiers = metadata.get_all("Classifier")
    for expected in [
        "Framework :: Django :: 5.2",
        "Framework :: Django :: 6.0",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.13",
        "Development Status :: 4 - Beta",
        "Typing :: Typed",
    ]:
        assert expected in classifiers
    assert {url.split(",")[0] for url in metadata.get_all("Project-URL")} >= {
        "Homepage",
        "Changelog",
        "Issues",
    }
    assert "make demo" in metadata.get_payload()  # the README is the long description


def test_the_sdist_holds_the_app_license_and_changelog_but_no_suite(built):
    _, sdist = built
    prefix = f"{NAME}-{versioning.__version__}/"
    names = {name.removeprefix(prefix) for name in tarfile.open(sdist).getnames()}
    for expected in [
        "LICENSE",
        "README.md",
        "CHANGELOG.md",
        "pyproject.toml",
        "versioning/models.py",
        "versioning/py.typed",
        "versioning/templates/admin/versioning/object_history.html",
    ]:
        assert expected in names
    # The suite, the demo and the benchmark need each other: none is shipped
    # half (they live in the repository, see CONTRIBUTING.md).
    assert not [n for n in names if n.startswith(("tests", "bench", "demo_project"))]
