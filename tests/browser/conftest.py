"""
Browser tests drive the admin in Debian's Chromium through Playwright.
Locally they skip when Chromium or Playwright is missing (and say so);
CI sets VERSIONING_REQUIRE_BROWSER=1, which turns a missing browser into a
failure.
"""

import os
import shutil
from pathlib import Path

import pytest

# Playwright's sync API keeps an event loop running in the test thread;
# without this Django refuses ORM calls from the test and its fixtures.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

try:
    import playwright  # noqa: F401

    HAVE_PLAYWRIGHT = True
except ImportError:
    HAVE_PLAYWRIGHT = False


def pytest_collection_modifyitems(config, items):
    missing = []
    if not HAVE_PLAYWRIGHT:
        missing.append("the playwright package")
    if not os.path.exists(CHROMIUM):
        missing.append("Chromium (apt-get install chromium)")
    if not missing:
        return
    reason = "browser tests need " + " and ".join(missing)
    if os.environ.get("VERSIONING_REQUIRE_BROWSER"):
        raise pytest.UsageError(reason + ", and VERSIONING_REQUIRE_BROWSER is set")
    for item in items:
        if "tests/browser" in str(item.fspath):
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ],
    }


@pytest.fixture
def screenshots(tmp_path):
    """Where to save screenshots: docs/screenshots with `make screenshots`."""
    folder = Path(os.environ.get("VERSIONING_SCREENSHOTS_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def log_in(live_server):
    """Log ``user`` in through the admin's login page in ``page``."""

    def log_in(page, user):
        page.goto(f"{live_server.url}/admin/login/")
        page.fill("#id_username", user.username)
        page.fill("#id_password", "password")
        page.click("input[type=submit]")
        page.wait_for_selector("#user-tools")

    return log_in
