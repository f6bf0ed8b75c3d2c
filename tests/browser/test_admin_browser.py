"""The admin in a real headless Chromium: edit, history, compare, restore, conflict."""

import pytest

from tests.testapp.models import Item

pytestmark = pytest.mark.django_db(transaction=True)


def save_price(page, price, reason=""):
    page.fill("#id_price", price)
    page.fill("#id_versioning_reason", reason)
    page.click("input[name=_continue]")
    page.wait_for_selector("ul.messagelist")


def test_edit_history_compare_restore(
    page, live_server, admin_user, screenshots, log_in
):
    item = Item.objects.create(name="Desk lamp", price=29, description="brass")
    log_in(page, admin_user)

    page.goto(f"{live_server.url}/admin/testapp/item/{item.pk}/change/")
    save_price(page, "34", "supplier price rise")
    assert "saved as version 2." in page.inner_text("ul.messagelist")
    save_price(page, "39", "another rise")
    assert "saved as version 3." in page.inner_text("ul.messagelist")

    page.click("a.historylink")
    page.wait_for_selector(".versioning-history")
    versions = page.locator("tr.versioning-version")
    assert versions.count() == 3
    assert "supplier price rise" in versions.nth(1).inner_text()
    assert (
        "29.00" in versions.nth(1).inner_text()
        and "34.00" in versions.nth(1).inner_text()
    )
    page.screenshot(path=screenshots / "history.png", full_page=True)

    # compare version 1 with version 3
    versions.nth(2).locator("input[name=a]").check()
    versions.nth(0).locator("input[name=b]").check()
    page.click("text=Compare selected versions")
    page.wait_for_selector(".versioning-compare")
    changed = page.locator(".versioning-compare tr.changed")
    assert changed.count() == 1 and "Price" in changed.inner_text()
    page.screenshot(path=screenshots / "compare.png", full_page=True)

    # restore version 1 through its confirmation page
    page.go_back()
    page.wait_for_selector(".versioning-history")
    page.locator("tr.versioning-version").nth(2).locator("text=Restore").click()
    page.fill("#id_reason", "back to the old price")
    page.click("input[value='Yes, restore']")
    page.wait_for_selector("ul.messagelist")
    assert "Restored version 1 as version 4." in page.inner_text("ul.messagelist")
    current = Item.objects.get()
    assert (current.version, current.price, current.changed_by) == (4, 29, admin_user)
    assert current.change_reason == "back to the old price"


def test_two_tabs_the_second_save_shows_the_conflict(
    browser, live_server, admin_user, screenshots, log_in
):
    item = Item.objects.create(name="Desk lamp", price=29)
    context = browser.new_context()
    first, second = context.new_page(), context.new_page()
    log_in(first, admin_user)
    change_url = f"{live_server.url}/admin/testapp/item/{item.pk}/change/"
    first.goto(change_url)
    second.goto(change_url)

    save_price(first, "34", "first tab")
    second.fill("#id_price", "99")
    second.fill("#id_description", "typed in the second tab")
    second.click("input[name=_continue]")
    second.wait_for_selector(".errornote")
    error = second.inner_text(".errorlist.nonfield")
    assert "was changed by" in error and "now version 2" in error
    assert second.input_value("#id_description") == "typed in the second tab"
    second.screenshot(path=screenshots / "conflict.png", full_page=True)

    history = list(
        Item.all_versions.order_by("version").values_list(
            "version", "price", "valid_to"
        )
    )
    assert [(v, int(p)) for v, p, _ in history] == [(1, 29), (2, 34)]
    assert history[-1][2] is None and Item.objects.count() == 1
    context.close()
