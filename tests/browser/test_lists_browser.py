"""The pinned-version input and the deleted view, in a real headless Chromium."""

import pytest
from django.utils import formats, timezone

from tests.testapp.models import Item, OrderLine

pytestmark = pytest.mark.django_db(transaction=True)


def test_pin_a_version_and_view_it(page, live_server, admin_user, log_in):
    shelf = Item.objects.create(name="Bookshelf", price=120)
    shelf.price = 135
    shelf.save()
    first = shelf.previous_version()
    gone = Item.objects.create(name="Old bookshelf", price=80)
    gone.delete()
    log_in(page, admin_user)

    page.goto(f"{live_server.url}/admin/testapp/orderline/add/")
    groups = page.locator("#id_item optgroup")
    assert [groups.nth(i).get_attribute("label") for i in range(groups.count())] == [
        "Bookshelf"
    ]
    page.select_option("#id_item", label="Bookshelf — version 1")
    page.click("input[name=_continue]")
    page.wait_for_selector("ul.messagelist")
    assert OrderLine.objects.get().item_id == first.pk

    # The view icon opens the pinned version, read-only; nothing edits it.
    assert page.locator("#change_id_item").count() == 0
    assert page.locator("#delete_id_item").count() == 0
    page.click("#view_id_item")
    page.wait_for_selector(".versioning-version, #content")
    assert page.url.startswith(
        f"{live_server.url}/admin/testapp/item/{first.pk}/version/"
    )
    assert "Version 1 of “Bookshelf”" in page.inner_text("#content")
    assert "120.00" in page.inner_text("#content")


def test_the_deleted_view_says_when_and_by_whom(
    page, live_server, admin_user, screenshots, log_in
):
    Item.objects.create(name="Desk lamp", price=29)
    lamp = Item.objects.get(name="Desk lamp")
    Item.objects.create(name="Reading chair", price=240)
    Item.objects.create(name="Side table", price=60).delete()  # in code: no one
    log_in(page, admin_user)

    page.goto(f"{live_server.url}/admin/testapp/item/{lamp.identity}/delete/")
    page.click("input[type=submit]")
    page.wait_for_selector("ul.messagelist")

    page.goto(f"{live_server.url}/admin/testapp/item/?status=deleted")
    page.wait_for_selector("#result_list")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 2
    deleted = Item.all_versions.get(identity=lamp.identity)
    lamp_row = rows.filter(has_text="Desk lamp")
    when = formats.localize(timezone.localtime(deleted.valid_to))
    assert lamp_row.locator("td.field-deleted_at").inner_text() == when
    assert lamp_row.locator("td.field-deleted_by").inner_text() == admin_user.username
    table_row = rows.filter(has_text="Side table")
    assert table_row.locator("td.field-deleted_by").inner_text() == "-"
    assert "Restore selected" in page.inner_text("select[name=action]")
    page.screenshot(path=screenshots / "deleted.png", full_page=True)
