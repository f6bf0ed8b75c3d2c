"""The history page after prune, as a person reads it in Chromium."""

import io

import pytest
from django.core.management import call_command
from django.urls import reverse

from tests.conftest import edited
from tests.factories import ItemFactory
from versioning.history import PREVIOUS_VERSION_PRUNED

pytestmark = pytest.mark.django_db(transaction=True)


def test_after_prune_the_history_says_why_a_version_has_no_changes(
    page, live_server, admin_user, log_in
):
    lamp = edited(ItemFactory(name="lamp", price=10), "price", 11, 12, 13)
    call_command("prune", "testapp.Item", keep="2", stdout=io.StringIO())
    log_in(page, admin_user)
    page.goto(live_server.url + reverse("admin:testapp_item_history", args=(lamp.pk,)))

    oldest = page.locator('tr.versioning-version[data-version="3"]')
    assert str(PREVIOUS_VERSION_PRUNED) in oldest.inner_text()
    assert "No field changed" not in oldest.inner_text()
    newest = page.locator('tr.versioning-version[data-version="4"]')
    assert "12.00" in newest.inner_text() and "13.00" in newest.inner_text()
    assert page.locator("tr.versioning-version").count() == 2

    page.click("input[type=submit][value='Compare selected versions']")
    page.wait_for_selector("text=13.00")
    assert "/compare/" in page.url
