"""
One "history with changes" computation (versioning.history) behind the admin's
history page and the ``history`` command: what each version changed, whether
it created or deleted its object, and one phrase when the version before it
was pruned.
"""

import io
import json
import re

import pytest
from django.contrib import admin
from django.core.management import call_command
from django.urls import path, reverse

import versioning
from tests.conftest import edited, saved
from tests.factories import ItemFactory, TagFactory
from tests.testapp.models import Item
from versioning.admin import VersionedAdmin
from versioning.history import (
    PREVIOUS_VERSION_HIDDEN,
    PREVIOUS_VERSION_PRUNED,
    history_with_changes,
)

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.test_history_changes")]


class PublicItemAdmin(VersionedAdmin):
    """Shows only the versions whose name starts with "public"."""

    def get_queryset(self, request):
        return super().get_queryset(request).filter(name__startswith="public")


scoped_site = admin.AdminSite(name="scoped")
scoped_site.register(Item, PublicItemAdmin)
urlpatterns = [path("admin/", admin.site.urls), path("scoped/", scoped_site.urls)]


def history_page(client, version, site="admin"):
    url = reverse(f"{site}:testapp_item_history", args=(version.pk,))
    response = client.get(url)
    assert response.status_code == 200
    return response


def command_lines(*args):
    out = io.StringIO()
    call_command("history", "testapp.Item", *args, stdout=out)
    return out.getvalue().splitlines()


def changes_column(response):
    """The text of each row's Changes cell, newest first."""
    html = response.content.decode()
    cells = re.findall(r'<tr class="versioning-version".*?</tr>', html, re.S)
    return [" ".join(re.sub(r"<[^>]+>", " ", cell).split()) for cell in cells]


@pytest.fixture
def lamp():
    item = ItemFactory(name="lamp", price=10)
    return edited(item, "price", 11, 12, 13)  # versions 1 to 4


def prune(keep):
    call_command("prune", "testapp.Item", keep=str(keep), stdout=io.StringIO())


# The computation ---------------------------------------------------------------


def test_each_version_with_its_changes_creation_and_deletion(lamp):
    red = TagFactory(name="red")
    lamp.tags.add(red)  # version 5: a link
    lamp.delete()
    entries = history_with_changes(list(Item.all_versions.order_by("version")))
    assert [e.version.version for e in entries] == [1, 2, 3, 4, 5]
    assert [e.created for e in entries] == [True, False, False, False, False]
    assert [e.deleted for e in entries] == [False, False, False, False, True]
    assert entries[0].changes == {}
    assert entries[1].changes == {"price": (10, 11)}
    (tags,) = entries[4].changes
    old, new = entries[4].changes[tags]
    assert (tags, str(old), str(new)) == ("tags", "—", "red")
    assert [(f.verbose_name, o, n) for f, o, n in entries[1].changed_fields] == [
        ("price", 10, 11)
    ]
    assert not any(e.previous_pruned or e.changes_unknown for e in entries)


def test_the_order_given_is_kept_and_a_page_reads_the_version_before_it(lamp):
    page = list(Item.all_versions.order_by("-version")[:2])  # 4, 3
    entries = history_with_changes(page)
    assert [e.version.version for e in entries] == [4, 3]
    assert entries[1].changes == {"price": (11, 12)}  # version 2 read for it


def test_a_closed_version_followed_by_another_is_not_a_deletion(lamp):
    entries = history_with_changes(list(Item.all_versions.filter(version=2)))
    assert entries[0].deleted is False
    lamp.delete()
    (last,) = history_with_changes(list(Item.all_versions.filter(version=4)))
    assert last.deleted is True


def test_a_version_after_a_pruned_one_says_so(lamp):
    prune(keep=2)
    entries = history_with_changes(list(Item.all_versions.order_by("version")))
    assert [e.version.version for e in entries] == [3, 4]
    assert entries[0].previous_pruned and entries[0].changes == {}
    assert entries[0].changes_unknown == str(PREVIOUS_VERSION_PRUNED)
    assert entries[1].changes == {"price": (12, 13)}
    assert not entries[1].previous_pruned


def test_versions_of_several_objects_are_each_compared_with_their_own(lamp):
    desk = edited(ItemFactory(name="desk", price=1), "price", 2)
    versions = list(Item.all_versions.filter(version=2).order_by("name"))
    entries = history_with_changes(versions)
    assert [(str(e.version), e.changes) for e in entries] == [
        ("desk", {"price": (1, 2)}),
        ("lamp", {"price": (10, 11)}),
    ]
    assert desk.version == 2


def test_a_restore_after_a_delete_changed_no_field(lamp):
    lamp.delete()
    restored = Item.all_versions.get(version=4).restore()
    (entry,) = history_with_changes([restored])
    assert (entry.changes, entry.deleted, entry.changes_unknown) == ({}, False, None)


# Queries: the item declares two many-to-many fields (tags, suppliers), whose
# links cost one query each when no version has any.


def test_a_whole_history_costs_only_the_links(lamp, django_assert_num_queries):
    versions = list(Item.all_versions.order_by("-version"))
    with django_assert_num_queries(2):
        history_with_changes(versions)


def test_a_page_costs_one_query_more_for_the_version_before_it(
    lamp, django_assert_num_queries
):
    page = list(Item.all_versions.order_by("-version")[:2])
    with django_assert_num_queries(3):
        history_with_changes(page)


def test_a_deleted_object_costs_one_query_more_to_tell_deleted_from_edited(
    lamp, django_assert_num_queries
):
    lamp.delete()
    versions = list(Item.all_versions.order_by("-version"))
    with django_assert_num_queries(3):
        assert history_with_changes(versions)[0].deleted


def test_the_cost_does_not_grow_with_the_number_of_objects(
    django_assert_num_queries,
):
    for number in range(20):
        edited(ItemFactory(name=f"item {number}", price=0), "price", 1, 2)
    prune(keep=1)
    versions = list(Item.all_versions.all())
    with django_assert_num_queries(3):  # every version before them, then links
        entries = history_with_changes(versions)
    assert len(entries) == 20 and all(e.previous_pruned for e in entries)


def test_links_are_read_once_for_the_page_and_the_versions_before_it(
    lamp, django_assert_num_queries
):
    lamp.tags.add(TagFactory(name="red"))
    lamp = Item.objects.get()
    lamp.tags.add(TagFactory(name="blue"))
    page = list(Item.all_versions.order_by("-version")[:2])
    # page, the version before it, then per field its link rows, and the
    # linked tags when there are any
    with django_assert_num_queries(4):
        entries = history_with_changes(page)
    assert [str(new) for _, _, new in entries[0].changed_fields] == ["blue, red"]


# The admin and the command say the same -----------------------------------------


def test_after_prune_the_admin_and_the_command_say_the_same(admin_client, lamp):
    prune(keep=2)
    phrase = str(PREVIOUS_VERSION_PRUNED)
    cells = changes_column(history_page(admin_client, lamp))
    assert phrase in cells[1] and "No field changed" not in cells[1]
    assert "Price : 12.00 → 13.00" in cells[0]
    lines = command_lines(str(lamp.identity))
    assert lines[2].endswith(phrase) and "price: 12.00 → 13.00" in lines[3]
    out = io.StringIO()
    call_command("history", "testapp.Item", str(lamp.pk), format="json", stdout=out)
    records = json.loads(out.getvalue())
    assert [r["previous_pruned"] for r in records] == [True, False]


def test_a_deleted_object_is_deleted_at_its_last_version_in_both(admin_client, lamp):
    lamp.delete()
    cells = changes_column(history_page(admin_client, lamp))
    assert "Deleted" in cells[0] and not any("Deleted" in cell for cell in cells[1:])
    lines = command_lines(str(lamp.identity))
    assert lines[-1].endswith("price: 12.00 → 13.00; then deleted")
    assert not any("deleted" in line for line in lines[2:-1])


def test_after_prune_the_admin_history_costs_one_query_for_the_version_before(
    admin_client, lamp, django_assert_num_queries
):
    prune(keep=2)
    history_page(admin_client, lamp)  # warm the session
    # session, user, object, count, page, the version before the page
    # (pruned: none), and the links of each many-to-many field
    with django_assert_num_queries(8):
        history_page(admin_client, lamp)


# The admin's own scope ----------------------------------------------------------


def test_a_hidden_previous_version_is_neither_shown_nor_called_pruned(admin_client):
    item = ItemFactory(name="secret desk", price=10)
    saved(item, name="public desk", price=12)  # version 2, shown
    response = history_page(admin_client, item, site="scoped")
    (cell,) = changes_column(response)
    assert str(PREVIOUS_VERSION_HIDDEN) in cell
    assert "secret" not in response.content.decode()
    assert str(PREVIOUS_VERSION_PRUNED) not in cell


def test_an_object_whose_current_version_is_hidden_is_not_called_deleted(
    admin_client,
):
    item = ItemFactory(name="public lamp", price=10)
    saved(item, price=12)
    saved(item, name="secret lamp")  # version 3, hidden, current
    shown = Item.all_versions.get(version=2)
    response = history_page(admin_client, shown, site="scoped")
    assert [e.version.version for e in response.context["entries"]] == [2, 1]
    assert not any(e.deleted for e in response.context["entries"])
    assert "Deleted" not in response.content.decode()


def test_the_reason_and_user_stay_with_their_version(admin_client, admin_user):
    with versioning.changes(user=admin_user, reason="first"):
        item = ItemFactory(name="lamp", price=1)
    with versioning.changes(reason="second"):
        saved(item, price=2)
    entries = history_page(admin_client, item).context["entries"]
    assert [(e.version.change_reason, e.version.changed_by) for e in entries] == [
        ("second", None),
        ("first", admin_user),
    ]
