"""VersionedAdmin through the Django test client."""

import datetime
import re

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.db.models import QuerySet
from django.test import Client
from django.urls import path, reverse
from django.utils import timezone

import versioning
from tests.conftest import item_form_data as form_data
from tests.conftest import messages_of
from tests.factories import ItemFactory, UserFactory
from tests.testapp.models import Example, Item
from versioning.admin import VersionedAdmin

pytestmark = pytest.mark.django_db


def url(view, obj=None):
    args = () if obj is None else (obj.pk,)
    return reverse(f"admin:testapp_item_{view}", args=args)


def object_url(view, obj):
    """An object's page by its identity, as the admin links it."""
    return reverse(f"admin:testapp_item_{view}", args=(obj.identity,))


@pytest.fixture
def item():
    return ItemFactory(name="lamp", price=10)


def user_with(*codenames):
    user = UserFactory(is_staff=True)
    user.set_password("pw")
    user.save()
    for codename in codenames:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client = Client()
    client.force_login(user)
    return user, client


# editing ---------------------------------------------------------------------


def test_editing_saves_a_new_version_and_says_so(admin_client, admin_user, item):
    response = admin_client.post(
        url("change", item),
        form_data(item, price="12", versioning_reason="sale"),
        follow=True,
    )
    current = Item.objects.get()
    assert (current.version, current.price) == (2, 12)
    assert (current.changed_by, current.change_reason) == (admin_user, "sale")
    assert "changed successfully and saved as version 2." in messages_of(response)[0]


def test_save_and_continue_opens_the_new_version(admin_client, item):
    response = admin_client.post(
        url("change", item), form_data(item, price="12", _continue="1")
    )
    assert response["Location"] == object_url("change", item)
    page = admin_client.get(response["Location"])
    shown = messages_of(page)
    assert len(shown) == 1
    assert shown[0].endswith("saved as version 2. You may edit it again below.")


def test_saving_without_a_change_makes_no_version(admin_client, item):
    response = admin_client.post(url("change", item), form_data(item), follow=True)
    assert Item.all_versions.count() == 1
    assert "was not changed; no new version was made." in messages_of(response)[0]


def test_adding_records_who_and_why(admin_client, admin_user):
    admin_client.post(
        url("add"),
        {
            "name": "new",
            "price": "1",
            "description": "",
            "attributes": "{}",
            "versioning_reason": "first stock",
        },
    )
    created = Item.objects.get()
    assert (created.version, created.changed_by, created.change_reason) == (
        1,
        admin_user,
        "first stock",
    )


def test_change_form_carries_the_loaded_version(admin_client, item):
    html = admin_client.get(url("change", item)).content.decode()
    assert re.search(r'name="versioning_loaded_version" value="1"', html)
    assert "You are editing version 1" in html


def test_a_concurrent_save_is_reported_and_nothing_is_overwritten(admin_client, item):
    admin_client.get(url("change", item))  # the form is loaded at version 1
    bob = UserFactory(username="bob")
    with versioning.changes(user=bob):
        theirs = Item.objects.get()
        theirs.price = 20
        theirs.save()

    response = admin_client.post(
        url("change", item), form_data(item, price="30", description="my careful edit")
    )
    assert response.status_code == 200
    errors = " ".join(response.context["adminform"].form.non_field_errors())
    assert "changed by bob" in errors and "now version 2" in errors
    assert "my careful edit" in response.content.decode()  # input kept
    assert [
        int(p)
        for p in Item.all_versions.order_by("version").values_list("price", flat=True)
    ] == [10, 20]


def test_saving_a_deleted_object_is_reported(admin_client, item):
    Item.objects.get().delete()
    response = admin_client.post(url("change", item), form_data(item, price="30"))
    assert response.status_code == 200
    assert "was deleted" in " ".join(
        response.context["adminform"].form.non_field_errors()
    )
    assert not Item.objects.exists()


@pytest.mark.parametrize("tampered", ["abc", "", "7"])
def test_tampered_version_field_writes_nothing(admin_client, item, tampered):
    response = admin_client.post(
        url("change", item),
        form_data(item, price="99", versioning_loaded_version=tampered),
    )
    assert response.status_code == 200
    assert "Please correct the error" in response.content.decode()
    assert Item.all_versions.count() == 1


def test_missing_csrf_token_is_refused(admin_user, item):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    response = client.post(url("change", item), form_data(item, price="99"))
    assert response.status_code == 403
    response = client.post(url("restore", item), {"version": "1"})
    assert response.status_code == 403
    assert Item.all_versions.count() == 1


def test_old_version_url_leads_to_the_current_version(admin_client, item):
    first = Item.objects.get()
    item.price = 11
    item.save()
    response = admin_client.get(url("change", first))
    by_identity = reverse("admin:testapp_item_change", args=(item.identity,))
    assert response.status_code == 302 and response["Location"] == by_identity
    response = admin_client.get(url("change", first), follow=True)
    assert "version 1" in messages_of(response)[0]


def test_deleted_object_url_opens_the_read_only_version(admin_client, item):
    item.delete()
    response = admin_client.get(url("change", item))
    assert response["Location"] == url("version", item)
    assert admin_client.get(response["Location"]).status_code == 200


# change list -------------------------------------------------------------------


def test_changelist_shows_current_objects_only(admin_client, item):
    item.name = "renamed lamp"
    item.save()
    html = admin_client.get(url("changelist")).content.decode()
    assert "renamed lamp" in html and ">lamp<" not in html


def test_as_of_shows_the_table_then_read_only(admin_client, item):
    moment = timezone.localtime(item.valid_from + datetime.timedelta(microseconds=1))
    item.name = "renamed lamp"
    item.save()
    response = admin_client.get(url("changelist"), {"as_of": moment.isoformat()})
    html = response.content.decode()
    assert ">lamp<" in html and "renamed lamp" not in html
    assert "read-only" in html
    assert 'name="action"' not in html  # no bulk actions on the past
    assert url("version", Item.all_versions.get(version=1)) in html


def test_as_of_with_nonsense_says_so(admin_client, item):
    html = admin_client.get(url("changelist"), {"as_of": "soon"}).content.decode()
    assert "Not a date and time." in html


def test_deleted_objects_view_and_restore_action(admin_client, admin_user, item):
    keep = ItemFactory(name="desk")
    item.delete()
    response = admin_client.get(url("changelist"), {"status": "deleted"})
    html = response.content.decode()
    assert ">lamp<" in html and ">desk<" not in html
    admin_client.post(
        url("changelist") + "?status=deleted",
        {"action": "restore_selected", "_selected_action": [item.pk]},
    )
    restored = Item.objects.get(identity=item.identity)
    assert (restored.version, restored.changed_by) == (2, admin_user)
    assert Item.objects.filter(pk=keep.pk).exists()


def test_delete_closes_and_keeps_history(admin_client, item):
    confirmation = admin_client.get(url("delete", item)).content.decode()
    assert "It leaves the list but keeps its history" in confirmation
    admin_client.post(url("delete", item), {"post": "yes"})
    assert not Item.objects.exists()
    assert Item.all_versions.count() == 1
    assert admin_client.get(url("history", item)).status_code == 200


# history, version, compare, restore ---------------------------------------------


def edited(item, *prices):
    for price in prices:
        with versioning.changes(reason=f"price {price}"):
            item.price = price
            item.save()
    return item


def test_history_lists_every_version_newest_first(admin_client, item):
    edited(item, 11, 12)
    response = admin_client.get(url("history", Item.all_versions.get(version=1)))
    html = response.content.decode()
    assert [e.version.version for e in response.context["entries"]] == [3, 2, 1]
    assert "price 12" in html and "11.00" in html
    assert re.search(r"11\.00</del>\s*→\s*<ins>12\.00", html)


def test_history_escapes_values(admin_client):
    item = ItemFactory(name="<script>alert(1)</script>")
    item.name = "<img src=x onerror=alert(2)>"
    item.save()
    html = admin_client.get(url("history", item)).content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html


def test_version_view_is_read_only(admin_client, item):
    edited(item, 11)
    first = Item.all_versions.get(version=1)
    html = admin_client.get(url("version", first)).content.decode()
    assert "Historical version, read-only" in html and "10.00" in html
    assert "<form" not in html.split('id="content-main"')[1]


def test_compare_highlights_changed_fields(admin_client, item):
    edited(item, 11)
    first = Item.all_versions.get(version=1)
    response = admin_client.get(url("compare", item), {"a": first.pk, "b": item.pk})
    rows = {label: changed for label, _, _, changed in response.context["rows"]}
    assert rows["Price"] is True and rows["Name"] is False


def test_compare_refuses_versions_of_another_object(admin_client, item):
    other = ItemFactory(name="desk")
    response = admin_client.get(url("compare", item), {"a": other.pk, "b": item.pk})
    assert response.status_code == 302
    response = admin_client.get(
        url("compare", item), {"a": "x", "b": item.pk}, follow=True
    )
    assert "Choose two versions of this object to compare." in messages_of(response)


def test_restore_confirms_then_restores_as_the_user(admin_client, admin_user, item):
    edited(item, 11)
    first = Item.all_versions.get(version=1)
    page = admin_client.get(url("restore", first)).content.decode()
    assert "Yes, restore" in page and "11.00" in page and "10.00" in page
    assert Item.all_versions.count() == 2  # GET writes nothing
    response = admin_client.post(
        url("restore", first), {"version": "1", "reason": "undo"}, follow=True
    )
    current = Item.objects.get()
    assert (
        current.version,
        current.price,
        current.changed_by,
        current.change_reason,
    ) == (
        3,
        10,
        admin_user,
        "undo",
    )
    assert "Restored version 1 as version 3." in messages_of(response)


@pytest.mark.parametrize("posted", ["2", "abc", ""])
def test_tampered_restore_writes_nothing(admin_client, item, posted):
    edited(item, 11)
    first = Item.all_versions.get(version=1)
    response = admin_client.post(
        url("restore", first), {"version": posted}, follow=True
    )
    assert "did not match this version" in messages_of(response)[0]
    assert Item.all_versions.count() == 2


def test_history_of_10000_versions_is_paginated_with_bounded_queries(
    admin_client, item, django_assert_num_queries
):
    start = item.valid_from
    rows = []
    for number in range(2, 10001):
        moment = start + datetime.timedelta(seconds=number)
        rows.append(
            Item(
                identity=item.identity,
                version=number,
                name="lamp",
                price=number,
                valid_from=moment,
            )
        )
    # Build the history directly: 10,000 saves would only slow the test down.
    QuerySet(Item).filter(pk=item.pk).update(
        valid_to=start + datetime.timedelta(seconds=2)
    )
    for previous, row in zip(rows, rows[1:], strict=False):
        previous.valid_to = row.valid_from
    Item._base_manager.bulk_create(rows, batch_size=500)
    newest = Item.objects.get()
    admin_client.get(url("history", newest))  # warm the session
    # session, user, object, count, page rows, previous of the page's last
    # row, and the links of the page's versions: one query per many-to-many
    # field the item declares (tags, suppliers), as there are none
    with django_assert_num_queries(8):
        response = admin_client.get(url("history", newest))
    assert len(response.context["entries"]) == 50
    assert response.context["entries"][0].version.version == 10000
    page_3 = admin_client.get(url("history", newest), {"p": 3})
    assert page_3.context["entries"][0].version.version == 9900
    assert page_3.context["entries"][0].changes


# permissions ---------------------------------------------------------------------


def test_view_permission_sees_history_but_cannot_restore_or_edit(item):
    edited(item, 11)
    _, client = user_with("view_item")
    first = Item.all_versions.get(version=1)
    assert client.get(url("history", item)).status_code == 200
    assert client.get(url("version", first)).status_code == 200
    assert client.get(url("restore", first)).status_code == 403
    assert client.post(url("restore", first), {"version": "1"}).status_code == 403
    assert (
        client.post(url("change", item), form_data(item, price="1")).status_code == 403
    )
    assert Item.all_versions.count() == 2


def test_no_permission_sees_nothing(item):
    _, client = user_with()
    assert client.get(url("history", item)).status_code == 403
    assert client.get(url("version", item)).status_code == 403
    assert (
        client.get(url("compare", item), {"a": item.pk, "b": item.pk}).status_code
        == 403
    )


def test_change_permission_can_restore(item):
    edited(item, 11)
    user, client = user_with("view_item", "change_item")
    client.post(url("restore", Item.all_versions.get(version=1)), {"version": "1"})
    assert Item.objects.get().changed_by == user


# a custom site ---------------------------------------------------------------


class OtherSite(admin.AdminSite):
    site_header = "Other"


other_site = OtherSite(name="other")
other_site.register(Example, VersionedAdmin)
urlpatterns = [path("other/", other_site.urls)]


@pytest.mark.urls("tests.test_admin")
def test_a_custom_admin_site_works(admin_client):
    obj = Example.objects.create(data="one")
    obj.data = "two"
    obj.save()
    history = reverse("other:testapp_example_history", args=(obj.pk,))
    assert admin_client.get(history).status_code == 200
    first = obj.previous_version()
    response = admin_client.get(
        reverse("other:testapp_example_change", args=(first.pk,))
    )
    assert response["Location"] == reverse(
        "other:testapp_example_change", args=(obj.identity,)
    )
    version = reverse("other:testapp_example_version", args=(first.pk,))
    assert admin_client.get(version).status_code == 200


def test_a_save_racing_past_validation_is_reported_not_a_500(admin_client, item):
    from unittest import mock

    from versioning.exceptions import StaleVersionError

    with mock.patch.object(Item, "save", side_effect=StaleVersionError("raced")):
        response = admin_client.post(url("change", item), form_data(item, price="5"))
    assert response.status_code == 302
    assert response["Location"] == object_url("change", item)
    page = admin_client.get(response["Location"])
    assert "nothing of yours was written" in messages_of(page)[0]
    assert Item.all_versions.count() == 1


def test_a_restore_racing_another_write_is_reported(admin_client, item):
    from unittest import mock

    from versioning.exceptions import StaleVersionError

    edited(item, 11)
    first = Item.all_versions.get(version=1)
    with mock.patch.object(Item, "restore", side_effect=StaleVersionError("raced")):
        response = admin_client.post(
            url("restore", first), {"version": "1"}, follow=True
        )
    assert "was not restored: someone changed it meanwhile" in messages_of(response)[0]
    assert Item.all_versions.count() == 2


def test_as_of_a_day_means_the_end_of_that_day(admin_client, item):
    day = timezone.localdate(item.valid_from).isoformat()
    html = admin_client.get(url("changelist"), {"as_of": day}).content.decode()
    assert ">lamp<" in html and "read-only" in html


def test_uuid_keyed_objects_work_in_the_admin(admin_client):
    from tests.testapp.models import Document

    doc = Document.objects.create(title="first")
    change = reverse("admin:testapp_document_change", args=(doc.pk,))
    admin_client.post(
        change,
        {
            "title": "second",
            "body": "",
            "summary": "",
            "versioning_loaded_version": "1",
        },
    )
    current = Document.objects.get()
    assert (current.version, current.title) == (2, "second")
    assert admin_client.get(change)["Location"] == reverse(
        "admin:testapp_document_change", args=(current.identity,)
    )
    history = reverse("admin:testapp_document_history", args=(doc.pk,))
    assert admin_client.get(history).context["entries"][0].version.pk == current.pk
