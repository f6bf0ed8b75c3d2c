"""
Restores refused with a reason, the conflict's link to the current version and
a version with its links, in a real headless Chromium.
"""

import pytest

from tests.testapp.models import Item, Tag

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def taken_lamp():
    """A deleted "Desk lamp" whose name a new item has taken since."""
    lamp = Item.objects.create(name="Desk lamp", price=29)
    lamp.delete()
    Item.objects.create(name="Desk lamp", price=45)
    return Item.all_versions.get(identity=lamp.identity)


def test_restore_selected_refused_says_why(
    page, live_server, admin_user, log_in, taken_lamp
):
    log_in(page, admin_user)
    page.goto(f"{live_server.url}/admin/testapp/item/?status=deleted")
    page.check(f"input.action-select[value='{taken_lamp.pk}']")
    page.select_option("select[name=action]", "restore_selected")
    page.click("button[name=index]")
    page.wait_for_selector("ul.messagelist")
    assert page.inner_text("ul.messagelist li.error") == (
        "“Desk lamp” was not restored: Item with this Name already exists."
    )
    assert Item.all_versions.count() == 2


def test_restore_page_refused_says_why(
    page, live_server, admin_user, log_in, taken_lamp
):
    log_in(page, admin_user)
    page.goto(f"{live_server.url}/admin/testapp/item/{taken_lamp.pk}/version/")
    page.click("text=Restore this version")
    page.click("input[value='Yes, restore']")
    page.wait_for_selector("ul.messagelist")
    assert page.inner_text("ul.messagelist li.error") == (
        "“Desk lamp” was not restored: Item with this Name already exists."
    )
    assert page.url.endswith("/history/")
    assert Item.all_versions.count() == 2


def test_the_conflict_links_the_current_version(
    browser, live_server, admin_user, log_in
):
    item = Item.objects.create(name="Desk lamp", price=29)
    context = browser.new_context()
    first, second = context.new_page(), context.new_page()
    log_in(first, admin_user)
    change_url = f"{live_server.url}/admin/testapp/item/{item.pk}/change/"
    first.goto(change_url)
    second.goto(change_url)

    first.fill("#id_price", "34")
    first.click("input[name=_continue]")
    first.wait_for_selector("ul.messagelist")
    second.fill("#id_description", "typed in the second tab")
    second.click("input[name=_continue]")
    second.wait_for_selector(".errornote")
    assert "; changed: Price. Nothing was saved" in second.inner_text(
        ".errorlist.nonfield"
    )
    with context.expect_page() as opened:
        second.click(".versioning-conflict-link a")
    current = opened.value
    current.wait_for_selector(".versioning-version-info")
    assert "You are editing version 2" in current.inner_text(".versioning-version-info")
    assert current.input_value("#id_price") == "34.00"
    assert second.input_value("#id_description") == "typed in the second tab"
    context.close()


def test_a_version_shows_its_links(page, live_server, admin_user, log_in, screenshots):
    lamp = Item.objects.create(name="Desk lamp", price=29, description="Brass arm.")
    lamp.tags.set(
        [Tag.objects.create(name="lighting"), Tag.objects.create(name="brass")]
    )
    lamp = Item.objects.get()
    lamp.price = 34
    lamp.save()
    lamp.tags.set(Tag.objects.filter(name="lighting"))
    shown = Item.all_versions.get(identity=lamp.identity, version=2)

    log_in(page, admin_user)
    page.goto(f"{live_server.url}/admin/testapp/item/{shown.pk}/version/")
    table = page.inner_text("table.versioning-fields")
    assert "brass" in table and "lighting" in table
    assert "The current version is 4." in page.inner_text(".versioning-version-view")
    page.screenshot(path=screenshots / "version.png", full_page=True)
