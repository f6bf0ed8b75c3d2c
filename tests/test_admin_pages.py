"""
The admin's pages as a person meets them: refused restores say why, one
message per save, the delete and conflict wording, Django's template lookup.
"""

import io
from pathlib import Path

import django
import pytest
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management import ManagementUtility, call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import path, reverse

import versioning
from tests.conftest import data_statements, messages_of
from tests.conftest import item_form_data as form_data
from tests.factories import ItemFactory, TagFactory, UserFactory
from tests.testapp.models import City, Club, Example, Item
from versioning.admin import VersionedAdmin

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.test_admin_pages")]


class GuardedItemAdmin(VersionedAdmin):
    """Hides items named "secret…" and refuses changes to items named "locked…"."""

    list_display = ("name",)

    def get_queryset(self, request):
        return super().get_queryset(request).exclude(name__startswith="secret")

    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.name.startswith("locked"):
            return False
        return super().has_change_permission(request, obj)


class OwnTemplatesAdmin(VersionedAdmin):
    change_form_template = "own/change_form.html"
    version_template = "own/version.html"


pages_site = admin.AdminSite(name="pages")
pages_site.register(Item, GuardedItemAdmin)
pages_site.register(Example, OwnTemplatesAdmin)
urlpatterns = [path("admin/", admin.site.urls), path("pages/", pages_site.urls)]


def url(view, obj=None, site="admin", model="item"):
    args = () if obj is None else (obj.pk,)
    return reverse(f"{site}:testapp_{model}_{view}", args=args)


def object_url(view, obj):
    """An object's page by its identity, as the admin links it."""
    return reverse(f"admin:testapp_item_{view}", args=(obj.identity,))


def guarded(view, obj=None):
    return url(view, obj, site="pages")


def version(item, number):
    return Item.all_versions.get(identity=item.identity, version=number)


def count_rows():
    return Item.all_versions.count()


@pytest.fixture
def lamp():
    return ItemFactory(name="lamp", price=10)


@pytest.fixture
def taken_lamp(lamp):
    """A deleted "lamp" whose name a new item has taken since."""
    lamp.delete()
    ItemFactory(name="lamp", price=99)
    return version(lamp, 1)


def restore_selected(client, *rows, site="admin"):
    return client.post(
        url("changelist", site=site) + "?status=deleted",
        {"action": "restore_selected", "_selected_action": [row.pk for row in rows]},
        follow=True,
    )


# refused restores --------------------------------------------------------------


def test_restore_page_refuses_a_name_taken_since_and_says_why(admin_client, taken_lamp):
    rows = count_rows()
    response = admin_client.post(
        url("restore", taken_lamp),
        {"version": "1", "latest": "1"},
        follow=True,
    )
    assert messages_of(response) == [
        "“lamp” was not restored: Item with this Name already exists."
    ]
    assert response.redirect_chain[-1][0] == object_url("history", taken_lamp)
    assert count_rows() == rows
    assert not LogEntry.objects.exists()


def test_restore_page_refuses_a_key_to_an_object_deleted_since(admin_client):
    leeds = City.objects.create(name="Leeds")
    rovers = Club.objects.create(name="Rovers", city=leeds)
    rovers.delete()
    City.objects.get().delete()
    last = Club.all_versions.get(identity=rovers.identity)
    response = admin_client.post(
        url("restore", last, model="club"), {"version": "1"}, follow=True
    )
    [message] = messages_of(response)
    assert message.startswith("“Rovers” was not restored: its city (City row ")
    assert "has been deleted since. Restore that City first" in message
    assert not Club.objects.exists()


def test_restore_page_refuses_when_the_object_changed_since_it_was_shown(
    admin_client, lamp
):
    lamp.price = 11
    lamp.save()
    page = admin_client.get(url("restore", version(lamp, 1)))
    assert b'name="latest" value="2"' in page.content
    lamp.price = 12  # someone else's edit, after the page was shown
    lamp.save()
    response = admin_client.post(
        url("restore", version(lamp, 1)), {"version": "1", "latest": "2"}, follow=True
    )
    assert messages_of(response) == [
        "“lamp” was not restored: someone changed it meanwhile. Look at its "
        "history and try again."
    ]
    assert Item.objects.get().version == 3


def test_restore_page_logs_what_happened_with_the_default_reason(
    admin_client, admin_user, lamp
):
    lamp.price = 11
    lamp.save()
    response = admin_client.post(
        url("restore", version(lamp, 1)), {"version": "1", "latest": "2"}, follow=True
    )
    assert messages_of(response) == ["Restored version 1 as version 3."]
    restored = Item.objects.get()
    assert (restored.version, restored.change_reason) == (3, "Restored version 1")
    entry = LogEntry.objects.get()
    assert (entry.action_flag, entry.object_id, entry.user) == (
        CHANGE,
        str(restored.pk),
        admin_user,
    )
    assert entry.get_change_message() == "Restored version 1."


# "Restore selected" -------------------------------------------------------------


def test_restore_selected_restores_logs_and_counts_in_plural(admin_client):
    desk, chair = ItemFactory(name="desk"), ItemFactory(name="chair")
    desk.delete()
    chair.delete()
    response = restore_selected(admin_client, version(desk, 1), version(chair, 1))
    assert messages_of(response) == ["Restored 2 items."]
    restored = Item.objects.order_by("name")
    assert [(i.name, i.version, i.change_reason) for i in restored] == [
        ("chair", 2, "Restored version 1"),
        ("desk", 2, "Restored version 1"),
    ]
    assert sorted(e.get_change_message() for e in LogEntry.objects.all()) == [
        "Restored version 1.",
        "Restored version 1.",
    ]
    assert set(LogEntry.objects.values_list("object_id", flat=True)) == {
        str(i.pk) for i in restored
    }


def test_restore_selected_of_one_says_item_in_the_singular(admin_client, lamp):
    lamp.delete()
    response = restore_selected(admin_client, version(lamp, 1))
    assert messages_of(response) == ["Restored 1 item."]


def test_restore_selected_reports_every_refused_row_and_restores_the_rest(
    admin_client, taken_lamp
):
    desk = ItemFactory(name="desk")
    desk.delete()
    rows = count_rows()
    response = restore_selected(admin_client, taken_lamp, version(desk, 1))
    assert messages_of(response) == [
        "“lamp” was not restored: Item with this Name already exists.",
        "Restored 1 item.",
    ]
    assert count_rows() == rows + 1
    assert sorted(Item.objects.values_list("name", "version")) == [
        ("desk", 2),
        ("lamp", 1),
    ]


def test_restore_selected_reports_a_row_restored_by_someone_else_meanwhile(
    admin_client, lamp
):
    lamp.delete()
    last = version(lamp, 1)
    lamp = last.restore()  # someone else, while the list was shown
    response = restore_selected(admin_client, last)
    assert messages_of(response) == ["“lamp” was not restored: it is not deleted."]
    assert Item.objects.get().version == 2


def test_restore_selected_reports_a_row_deleted_again_since(admin_client, lamp):
    lamp.delete()
    shown = version(lamp, 1)
    shown.restore().delete()  # restored and deleted again: version 2 is the last
    response = restore_selected(admin_client, shown)
    assert messages_of(response) == [
        "“lamp” was not restored: someone changed it meanwhile. Look at its "
        "history and try again."
    ]
    assert not Item.objects.exists()


def test_restore_selected_checks_the_change_permission_of_each_object(
    admin_client, lamp
):
    locked = ItemFactory(name="locked box")
    lamp.delete()
    locked.delete()
    response = restore_selected(
        admin_client, version(lamp, 1), version(locked, 1), site="pages"
    )
    assert messages_of(response) == [
        "“locked box” was not restored: you may not change it.",
        "Restored 1 item.",
    ]
    assert list(Item.objects.values_list("name", flat=True)) == ["lamp"]


def test_restore_selected_needs_the_change_permission(lamp):
    lamp.delete()
    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_item"))
    client = Client()
    client.force_login(viewer)
    page = client.get(url("changelist") + "?status=deleted")
    assert page.status_code == 200 and b"restore_selected" not in page.content
    restore_selected(client, version(lamp, 1))
    assert not Item.objects.exists() and not LogEntry.objects.exists()


def test_restore_selected_cannot_reach_an_object_get_queryset_hides(admin_client):
    secret = ItemFactory(name="secret plan")
    secret.delete()
    response = restore_selected(admin_client, version(secret, 1), site="pages")
    assert "was not restored" not in " ".join(messages_of(response))
    assert not Item.objects.exists()


def statements_to_restore(client, rows):
    with CaptureQueriesContext(connection) as captured:
        client.post(
            url("changelist") + "?status=deleted",
            {"action": "restore_selected", "_selected_action": [r.pk for r in rows]},
        )
    return len(data_statements(captured))


def test_restore_selected_statements(admin_client):
    for name in ("a", "b", "c", "d"):
        ItemFactory(name=name).delete()
    first, *others = Item.all_versions.order_by("name")
    ContentType.objects.clear_cache()  # looked up once, whatever ran before
    # The request's own 7 (session, user, the deleted view's two counts, its
    # rows and log, the selected rows), the admin log's content type once,
    # then 10 a row: the check that the row is still its object's last; the
    # restore's locked read, name check, new version, its tags and supplies,
    # and the orders, reviews and bundles that follow it; the log entry.
    assert statements_to_restore(admin_client, [first]) == 7 + 1 + 10
    assert statements_to_restore(admin_client, others) == 7 + 3 * 10
    assert Item.objects.count() == 4


# manage.py restore --------------------------------------------------------------


def test_restore_command_refused_is_a_one_line_command_error(taken_lamp):
    with pytest.raises(CommandError) as refused:
        call_command(
            "restore",
            "testapp.Item",
            str(taken_lamp.pk),
            to_version="1",
            stdout=io.StringIO(),
        )
    message = str(refused.value)
    assert "\n" not in message
    assert message.endswith(
        "cannot be restored: Item with this Name already exists. Nothing was written."
    )


def test_restore_command_refused_prints_no_traceback(taken_lamp, capsys):
    # Django 6 checks every database alias first; only the command is tested.
    argv = ["manage.py", "restore", "testapp.Item", str(taken_lamp.pk), "--skip-checks"]
    with pytest.raises(SystemExit) as exit_:
        ManagementUtility([*argv, "--to-version", "1"]).execute()
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("CommandError: Version 1 of testapp.Item ")
    assert "Traceback" not in err and err.count("\n") == 1


def test_restore_command_keeps_djangos_version_option(capsys):
    with pytest.raises(SystemExit) as exit_:
        ManagementUtility(["manage.py", "restore", "--version"]).execute()
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == django.get_version()


def test_restore_command_records_the_default_reason(lamp):
    lamp.price = 11
    lamp.save()
    call_command(
        "restore", "testapp.Item", str(lamp.pk), to_version="1", stdout=io.StringIO()
    )
    assert Item.objects.get().change_reason == "Restored version 1"


# the change form --------------------------------------------------------------


def test_a_taken_name_is_the_fields_own_error(admin_client, lamp):
    desk = ItemFactory(name="desk")
    response = admin_client.post(url("change", desk), form_data(desk, name="lamp"))
    form = response.context["adminform"].form
    assert form.errors == {"name": ["Item with this Name already exists."]}
    assert b"is violated" not in response.content


def test_adding_says_so_once(admin_client):
    data = {"name": "new", "price": "1", "description": "", "attributes": "{}"}
    response = admin_client.post(url("add"), data, follow=True)
    [message] = messages_of(response)
    assert message.startswith("The item “<a href=") and message.endswith(
        "</a>” was added successfully."
    )


def test_a_change_says_so_once_with_its_version(admin_client, lamp):
    response = admin_client.post(
        url("change", lamp), form_data(lamp, price="12"), follow=True
    )
    [message] = messages_of(response)
    current = Item.objects.get()
    assert message == (
        f'The item “<a href="{object_url("change", current)}">lamp</a>” was changed '
        "successfully and saved as version 2."
    )
    assert response.redirect_chain[-1][0] == url("changelist")


def test_a_save_without_changes_says_so_once(admin_client, lamp):
    response = admin_client.post(url("change", lamp), form_data(lamp), follow=True)
    [message] = messages_of(response)
    assert message.endswith("lamp</a>” was not changed; no new version was made.")
    assert count_rows() == 1


def test_save_and_add_another_says_so_once(admin_client, lamp):
    response = admin_client.post(
        url("change", lamp), form_data(lamp, price="12", _addanother="1")
    )
    assert response["Location"] == url("add")
    [message] = messages_of(admin_client.get(response["Location"]))
    assert message.endswith("saved as version 2. You may add another item below.")


def test_save_and_continue_keeps_the_preserved_filters(admin_client, lamp):
    filters = "_changelist_filters=q%3Dlamp"
    response = admin_client.post(
        url("change", lamp) + "?" + filters,
        form_data(lamp, price="12", _continue="1"),
    )
    location = response["Location"]
    assert location.endswith("?" + filters) and location.startswith(
        object_url("change", lamp)
    )
    [message] = messages_of(admin_client.get(location))
    assert message.endswith("saved as version 2. You may edit it again below.")


def test_the_conflict_links_the_current_version_and_names_what_changed(
    admin_client, lamp
):
    red = TagFactory(name="red")
    loaded = form_data(lamp, price="30")
    bob = UserFactory(username="bob")
    with versioning.changes(user=bob):
        theirs = Item.objects.get()
        theirs.price = 20
        theirs.save()
        theirs.tags.set([red])
    current = Item.objects.get()
    response = admin_client.post(url("change", lamp), loaded)
    [error] = response.context["adminform"].form.non_field_errors()
    assert "changed by bob" in error and "(now version 3)" in error
    assert "; changed: Price, Tags. Nothing was saved" in error
    page = response.content.decode()
    by_identity = reverse("admin:testapp_item_change", args=(current.identity,))
    assert f'href="{by_identity}" target="_blank"' in page
    assert "Open the current version (3) in a new tab" in page
    assert "You opened version 1." in page and "You are editing" not in page
    assert count_rows() == 3


# delete pages ------------------------------------------------------------------


def test_the_delete_page_reads_as_one_page(admin_client, lamp):
    page = admin_client.get(url("delete", lamp)).content.decode()
    assert (
        "Are you sure you want to delete the item “lamp”? It leaves the list but "
        "keeps its history, so it can be restored from “Deleted objects”. This is "
        "what happens to it and to the objects that refer to it:"
    ) in page
    assert "closes the object" not in page
    assert "All of the following related items will be deleted" not in page


def delete_selected_page(client, *objs):
    return client.post(
        url("changelist"),
        {"action": "delete_selected", "_selected_action": [obj.pk for obj in objs]},
    ).content.decode()


def test_the_delete_selected_page_reads_as_one_page(admin_client, lamp):
    page = delete_selected_page(admin_client, lamp, ItemFactory(name="desk"))
    assert (
        "Are you sure you want to delete the selected items? They leave the list "
        "but keep their history, so they can be restored from “Deleted objects”. "
        "This is what happens to them and to the objects that refer to them:"
    ) in page
    assert "closes the objects" not in page
    page = delete_selected_page(admin_client, lamp)
    assert (
        "Are you sure you want to delete the selected item? It leaves the list "
        "but keeps its history, so it can be restored from “Deleted objects”."
    ) in page


# the version page ----------------------------------------------------------------


def test_an_old_version_does_not_name_a_current_version_that_is_hidden(
    admin_client,
):
    item = ItemFactory(name="lamp")
    item.name = "secret lamp"
    item.save()
    page = admin_client.get(guarded("version", version(item, 1))).content.decode()
    assert "Historical version, read-only." in page
    assert "The current version is" not in page
    assert "Open the current version" not in page


def test_an_old_version_names_its_current_version(admin_client, lamp):
    lamp.price = 11
    lamp.save()
    page = admin_client.get(url("version", version(lamp, 1))).content.decode()
    assert "The current version is 2." in page


def test_a_model_property_named_url_is_a_list_column(admin_client, lamp, monkeypatch):
    # Both set only here: the system checks of other tests must not see them.
    monkeypatch.setattr(GuardedItemAdmin, "list_display", ("name", "url"))
    monkeypatch.setattr(
        Item,
        "url",
        property(lambda item: f"https://shop.test/{item.name}"),
        raising=False,
    )
    response = admin_client.get(guarded("changelist"))
    assert response.status_code == 200
    assert "https://shop.test/lamp" in response.content.decode()


# templates ---------------------------------------------------------------------

OVERRIDES = Path(__file__).parent / "admin_page_templates"
PAGES = [
    "change_form.html",
    "change_list.html",
    "object_history.html",
    "delete_confirmation.html",
    "delete_selected_confirmation.html",
    "version.html",
    "compare.html",
    "restore_confirmation.html",
]


def with_template_dir(directory):
    engine = {**settings.TEMPLATES[0], "DIRS": [directory]}
    return override_settings(TEMPLATES=[engine])


def page_of(client, page, obj, site="admin", model="item"):
    """The response for ``page`` of ``obj`` (a current row with two versions)."""
    first = obj.previous_version()
    get = {
        "change_form.html": lambda: url("change", obj, site, model),
        "change_list.html": lambda: url("changelist", None, site, model),
        "object_history.html": lambda: url("history", obj, site, model),
        "delete_confirmation.html": lambda: url("delete", obj, site, model),
        "version.html": lambda: url("version", first, site, model),
        "compare.html": lambda: (
            url("compare", obj, site, model) + f"?a={first.pk}&b={obj.pk}"
        ),
        "restore_confirmation.html": lambda: url("restore", first, site, model),
    }
    if page == "delete_selected_confirmation.html":
        return client.post(
            url("changelist", None, site, model),
            {"action": "delete_selected", "_selected_action": [obj.pk]},
        )
    return client.get(get[page]())


def twice_saved_item():
    item = ItemFactory(name="lamp", price=10)
    item.price = 11
    item.save()
    return item


@pytest.mark.parametrize("page", PAGES)
def test_each_page_uses_versionings_template_by_default(admin_client, page):
    response = page_of(admin_client, page, twice_saved_item())
    assert response.status_code == 200
    assert f"admin/versioning/{page}" in [t.name for t in response.templates]


@pytest.mark.parametrize("page", PAGES)
def test_each_page_can_be_overridden_per_model(admin_client, page):
    item = twice_saved_item()
    with with_template_dir(OVERRIDES / "per_model"):
        response = page_of(admin_client, page, item)
    assert response.content.decode().strip() == f"testapp/item/{page}"


@pytest.mark.parametrize("page", PAGES)
def test_each_page_can_be_overridden_per_app(admin_client, page):
    item = twice_saved_item()
    with with_template_dir(OVERRIDES / "per_app"):
        response = page_of(admin_client, page, item)
    assert response.content.decode().strip() == f"testapp/{page}"


def test_a_template_named_on_the_admin_wins(admin_client):
    example = Example.objects.create(data="one")
    example.data = "two"
    example.save()
    with with_template_dir(OVERRIDES / "per_app"):
        change = page_of(admin_client, "change_form.html", example, "pages", "example")
        shown = page_of(admin_client, "version.html", example, "pages", "example")
        history = page_of(
            admin_client, "object_history.html", example, "pages", "example"
        )
    assert change.content.decode().strip() == "own/change_form.html"
    assert shown.content.decode().strip() == "own/version.html"
    assert history.content.decode().strip() == "testapp/object_history.html"
