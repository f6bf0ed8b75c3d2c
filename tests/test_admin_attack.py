"""
What a new user ran into in the admin and the commands after issue 12: a
second confirmation of a delete, a history after ``prune``, a restore of a
pruned version, and the deleted view of a user who may only look.
"""

import csv
import io
import re

import pytest
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from tests.conftest import edited, messages_of
from tests.factories import ItemFactory, TagFactory, UserFactory
from tests.testapp.models import Item, OrderLine
from versioning.history import history_with_changes

pytestmark = pytest.mark.django_db


def url(view, key):
    return reverse(f"admin:testapp_item_{view}", args=(key,))


@pytest.fixture
def lamp():
    return edited(ItemFactory(name="lamp", price=10), "price", 11, 12, 13)


def prune(keep):
    call_command("prune", "testapp.Item", keep=str(keep), stdout=io.StringIO())


def pin_version(number, item):
    """An order line pinned to version ``number``, which prune must keep."""
    version = Item.all_versions.get(identity=item.identity, version=number)
    OrderLine.objects.create(item=version)


# Deleting: a second confirmation, or a confirmation from an old link ----------


def test_confirming_a_delete_twice_does_not_fail(admin_client, lamp):
    """Two tabs on the delete page: the second "Yes" finds the object deleted."""
    identity = str(lamp.identity)
    first = admin_client.post(url("delete", identity), {"post": "yes"})
    assert first.status_code == 302
    rows = Item.all_versions.count()
    second = admin_client.post(url("delete", identity), {"post": "yes"}, follow=True)
    assert second.status_code == 200
    assert messages_of(second)[-1] == (
        "“lamp” was deleted; this is its last version, read-only."
    )
    assert Item.all_versions.count() == rows


def test_a_delete_posted_to_an_old_version_asks_again_about_the_current(
    admin_client, lamp
):
    old = Item.all_versions.get(identity=lamp.identity, version=1)
    response = admin_client.post(url("delete", old.pk), {"post": "yes"})
    assert response.status_code == 302
    assert response["Location"] == url("delete", str(lamp.identity))
    assert Item.objects.get().version == 4  # nothing deleted
    page = admin_client.get(response["Location"])
    assert messages_of(page) == [
        "That link was to version 1 of “lamp”; this is the current version, 4."
    ]
    assert b"Are you sure" in page.content


def test_the_delete_page_of_an_old_pk_names_the_object(admin_client, lamp):
    """Any pk names the object (README); Django's "Perhaps it was deleted?" is wrong."""
    old = Item.all_versions.get(identity=lamp.identity, version=2)
    response = admin_client.get(url("delete", old.pk), follow=True)
    assert response.redirect_chain[-1][0] == url("delete", str(lamp.identity))
    assert b"Are you sure" in response.content


# A pk prune removed: every page says what the README says ----------------------

PRUNED_PK = (
    "Item with ID “{}” doesn’t exist. It may have named an old version that was "
    "pruned; an object's identity names it for good."
)


@pytest.mark.parametrize("view", ["change", "history", "delete"])
def test_a_pruned_pk_says_it_may_have_been_pruned(admin_client, lamp, view):
    old = Item.all_versions.get(identity=lamp.identity, version=1)
    prune(keep=1)
    response = admin_client.get(url(view, old.pk), follow=True)
    assert response.redirect_chain[-1][0] == reverse("admin:index")
    assert messages_of(response) == [PRUNED_PK.format(old.pk)]


def test_a_delete_posted_to_a_pruned_pk_deletes_nothing(admin_client, lamp):
    old = Item.all_versions.get(identity=lamp.identity, version=1)
    prune(keep=1)
    response = admin_client.post(url("delete", old.pk), {"post": "yes"}, follow=True)
    assert messages_of(response) == [PRUNED_PK.format(old.pk)]
    assert Item.objects.get().version == 4


# History after prune: an edit whose next version was pruned is no deletion ----


def test_a_kept_version_whose_next_one_was_pruned_was_not_deleted(lamp):
    pin_version(2, lamp)
    prune(keep=1)
    versions = list(Item.all_versions.order_by("version"))
    assert [v.version for v in versions] == [2, 4]
    entries = history_with_changes(versions)
    assert [e.deleted for e in entries] == [False, False]


def test_a_deleted_objects_last_version_is_still_a_deletion_after_prune(lamp):
    pin_version(2, lamp)
    lamp.delete()
    prune(keep=1)
    versions = list(Item.all_versions.order_by("version"))
    assert [v.version for v in versions] == [2, 4]
    assert [e.deleted for e in history_with_changes(versions)] == [False, True]


def test_telling_pruned_from_deleted_costs_no_query_more(
    lamp, django_assert_num_queries
):
    pin_version(2, lamp)
    prune(keep=1)
    versions = list(Item.all_versions.filter(version=2))
    # the neighbours (with the object's newest version), then two link fields
    with django_assert_num_queries(3):
        (entry,) = history_with_changes(versions)
    assert not entry.deleted


def test_the_history_command_does_not_call_a_pruned_gap_a_deletion(lamp):
    pin_version(2, lamp)
    prune(keep=1)
    out = io.StringIO()
    call_command("history", "testapp.Item", str(lamp.identity), stdout=out)
    assert "deleted" not in out.getvalue()


def test_the_history_page_does_not_call_a_pruned_gap_a_deletion(admin_client, lamp):
    pin_version(2, lamp)
    prune(keep=1)
    response = admin_client.get(url("history", str(lamp.identity)))
    assert response.status_code == 200
    assert b"Deleted" not in response.content


def test_the_history_csv_says_which_changes_are_unknown(lamp):
    """After prune, empty changes are not "nothing changed": JSON says so, CSV too."""
    pin_version(2, lamp)
    prune(keep=1)
    out = io.StringIO()
    call_command(
        "history", "testapp.Item", str(lamp.identity), format="csv", stdout=out
    )
    records = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [(r["version"], r["previous_pruned"], r["deleted"]) for r in records] == [
        ("2", "True", "False"),
        ("4", "True", "False"),
    ]


# restore --to-version of a pruned version --------------------------------------


def test_restore_of_a_pruned_version_says_it_was_pruned(lamp):
    pin_version(2, lamp)
    prune(keep=1)
    with pytest.raises(CommandError) as refused:
        call_command("restore", "testapp.Item", str(lamp.identity), to_version="3")
    message = str(refused.value)
    assert "versions 1 to 4" not in message
    assert f"testapp.Item {lamp.identity} has no version 3 any more" in message
    assert "prune removed it" in message
    assert "stored versions: 2, 4" in message
    assert Item.objects.get().version == 4


def test_restore_of_a_version_not_yet_made_names_the_newest(lamp):
    with pytest.raises(
        CommandError,
        match=f"testapp.Item {lamp.identity} has no version 9; its newest is 4.",
    ):
        call_command("restore", "testapp.Item", str(lamp.identity), to_version="9")


# A user who may only look ---------------------------------------------------------


def banner(response):
    html = response.content.decode()
    return html.split('class="versioning-banner">')[1].split("</p>")[0]


def test_the_deleted_view_of_a_viewer_does_not_tell_them_to_restore(lamp):
    lamp.delete()
    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_item"))
    client = Client()
    client.force_login(viewer)
    response = client.get(reverse("admin:testapp_item_changelist") + "?status=deleted")
    assert response.status_code == 200
    assert "restore_selected" not in response.content.decode()
    assert banner(response) == (
        "Deleted objects, as they were when deleted. Their history is kept."
    )


def test_the_deleted_view_of_an_editor_says_how_to_restore(admin_client, lamp):
    lamp.delete()
    response = admin_client.get(
        reverse("admin:testapp_item_changelist") + "?status=deleted"
    )
    assert "choose “Restore” to bring them back" in banner(response)


# Empty values: one rendering, the admin's empty_value_display -----------------


def cells(response, css_class):
    """The text of each row's cells in the table of ``css_class``."""
    html = response.content.decode().split(f'class="{css_class}"', 1)[1]
    html = html.split("</table>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", html, re.S)
    return {
        re.sub(r"<[^>]+>", "", cols[0]).strip(): [
            re.sub(r"<[^>]+>", "", col).strip() for col in cols[1:]
        ]
        for cols in (
            re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S) for row in rows
        )
        if cols
    }


@pytest.fixture
def bare():
    """An item with an empty description and no tags, then one with both."""
    item = ItemFactory(name="bare", price=1, description="")
    item.description = "words"
    item.save()
    item.tags.add(TagFactory(name="red"))
    return Item.objects.get()


def test_the_version_page_shows_an_empty_field_and_no_links_alike(admin_client, bare):
    first = Item.all_versions.get(identity=bare.identity, version=1)
    shown = cells(admin_client.get(url("version", first.pk)), "versioning-fields")
    assert shown["Description"] == ["-"]
    assert shown["Tags"] == ["-"]


def test_the_compare_page_shows_an_empty_field_and_no_links_alike(admin_client, bare):
    first = Item.all_versions.get(identity=bare.identity, version=1)
    response = admin_client.get(url("compare", bare.pk) + f"?a={first.pk}&b={bare.pk}")
    html = response.content.decode()
    assert "—" not in html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]


def test_the_restore_page_shows_empty_values_as_the_other_pages_do(admin_client, bare):
    first = Item.all_versions.get(identity=bare.identity, version=1)
    response = admin_client.get(url("restore", first.pk))
    html = response.content.decode()
    table = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    rows = [
        [
            re.sub(r"<[^>]+>", "", c).strip()
            for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", r, re.S)
        ]
        for r in re.findall(r"<tr>(.*?)</tr>", table, re.S)
    ]
    assert ["Description", "words", "-"] in rows
    assert ["Tags", "red", "-"] in rows


# The current version: nothing to restore ------------------------------------------


def test_the_restore_page_of_the_current_version_offers_no_restore(admin_client, lamp):
    response = admin_client.get(url("restore", lamp.pk))
    assert response.status_code == 200
    html = response.content.decode()
    assert "This is the current version; there is nothing to restore." in html
    assert "Yes, restore" not in html
    assert "current again as a new version" not in html


def test_restore_command_of_the_current_version_says_it_is_current(lamp):
    out = io.StringIO()
    call_command(
        "restore", "testapp.Item", str(lamp.identity), to_version="4", stdout=out
    )
    assert out.getvalue() == "Version 4 is the current version; nothing to do.\n"


def test_the_history_page_shows_empty_values_as_the_other_pages_do(admin_client, bare):
    html = admin_client.get(url("history", bare.pk)).content.decode()
    text = " ".join(re.sub(r"<[^>]+>", "", html).split())
    assert "Tags: - → red" in text
    assert "Description: - → words" in text
    assert "∅" not in text and "empty" not in text.lower()
