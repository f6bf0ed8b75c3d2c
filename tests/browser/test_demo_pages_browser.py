"""The demo's product edit page (VersionedModelForm outside the admin) in Chromium."""

import pytest

from demo_project.catalog.models import Product

pytestmark = pytest.mark.django_db(transaction=True)


def test_two_tabs_on_the_edit_page_the_second_save_shows_the_conflict(
    browser, live_server, admin_user, screenshots, log_in
):
    lamp = Product.objects.create(name="Desk lamp", price=29, description="brass")
    context = browser.new_context()
    first, second = context.new_page(), context.new_page()
    log_in(first, admin_user)

    first.goto(f"{live_server.url}/products/")
    first.click("text=Edit")
    first.wait_for_selector("#current-version")
    edit_url = first.url
    assert edit_url == f"{live_server.url}/products/{lamp.identity}/edit/"
    second.goto(edit_url)
    assert first.inner_text("#current-version") == "1"
    assert second.inner_text("#current-version") == "1"

    first.fill("#id_price", "34")
    first.fill("#id_versioning_reason", "first tab")
    first.click("button[type=submit]")
    first.wait_for_selector("ul.messages")
    assert "Saved as version 2." in first.inner_text("ul.messages")
    assert first.url == edit_url and first.inner_text("#current-version") == "2"

    second.fill("#id_price", "99")
    second.fill("#id_description", "typed in the second tab")
    second.click("button[type=submit]")
    second.wait_for_selector(".errorlist.nonfield")
    error = second.inner_text(".errorlist.nonfield")
    assert "was changed by admin" in error and "now version 2" in error
    assert second.input_value("#id_price") == "99"
    assert second.input_value("#id_description") == "typed in the second tab"
    assert second.inner_text("#current-version") == "2"
    second.screenshot(path=screenshots / "form_conflict.png", full_page=True)

    history = list(
        Product.all_versions.order_by("version").values_list(
            "version", "price", "description", "valid_to"
        )
    )
    assert [(v, int(p), d) for v, p, d, _ in history] == [
        (1, 29, "brass"),
        (2, 34, "brass"),
    ]
    assert history[-1][3] is None

    # Saving the same form again is refused again: it still says version 1.
    with second.expect_navigation():
        second.click("button[type=submit]")
    assert "now version 2" in second.inner_text(".errorlist.nonfield")
    assert Product.all_versions.count() == 2

    # Reopening shows the current version, and a save from it goes through.
    with second.expect_navigation():
        second.click("#open-current")
    assert not second.locator(".errorlist").count()
    assert second.input_value("#id_price") == "34.00"
    second.fill("#id_description", "typed again")
    second.click("button[type=submit]")
    second.wait_for_selector("ul.messages")
    assert "Saved as version 3." in second.inner_text("ul.messages")
    current = Product.objects.get()
    assert (current.version, int(current.price), current.description) == (
        3,
        34,
        "typed again",
    )
    context.close()
