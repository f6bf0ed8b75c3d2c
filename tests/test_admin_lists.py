"""
The change list's views (as of a moment, deleted objects, both), where its
rows lead, and admin URLs that name an object by its identity.
"""

import datetime
from unittest import mock
from urllib.parse import urlencode

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.db.models import Q
from django.test import Client
from django.urls import path, reverse
from django.utils import formats, timezone

import versioning
from tests.conftest import edited, messages_of
from tests.conftest import item_form_data as form_data
from tests.factories import ItemFactory, UserFactory
from tests.testapp.models import Item, OrderLine
from versioning.admin import PinnedForeignKeyMixin, VersionedAdmin

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.test_admin_lists")]


class AuditedItemAdmin(VersionedAdmin):
    """Shows who made each version and when, as the demo's admin does."""

    list_display = ("name", "version", "valid_from", "changed_by")


audited_site = admin.AdminSite(name="audited")
audited_site.register(Item, AuditedItemAdmin)
urlpatterns = [
    path("admin/", admin.site.urls),
    path("audited/", audited_site.urls),
]

#: Deletions are timed from here on: after every row the tests create.
LATER = timezone.now() + datetime.timedelta(hours=1)


def at(minutes):
    return LATER + datetime.timedelta(minutes=minutes)


def url(view, key=None, site="admin", **query):
    address = reverse(f"{site}:testapp_item_{view}", args=() if key is None else (key,))
    return f"{address}?{urlencode(query)}" if query else address


def delete_at(minutes, obj):
    with mock.patch("django.utils.timezone.now", return_value=at(minutes)):
        obj.delete()


def restore_at(minutes, obj):
    last = Item.all_versions.filter(identity=obj.identity).latest("version")
    with mock.patch("django.utils.timezone.now", return_value=at(minutes)):
        return last.restore()


def listed(response):
    return sorted((row.name, row.version) for row in response.context["cl"].result_list)


def staff_client(*codenames):
    user = UserFactory(is_staff=True)
    for codename in codenames:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client = Client()
    client.force_login(user)
    return user, client


# "as of" with "Deleted objects" --------------------------------------------------


def test_deleted_as_of_lists_what_was_deleted_at_that_moment(admin_client):
    moment = at(2)
    earlier = ItemFactory(name="deleted before")
    delete_at(1, earlier)
    exactly = ItemFactory(name="deleted at the moment")
    delete_at(2, exactly)
    later = ItemFactory(name="deleted after")
    delete_at(3, later)
    back_since = ItemFactory(name="restored since")
    delete_at(1, back_since)
    restore_at(3, back_since)
    back_before = ItemFactory(name="restored before")
    delete_at(1, back_before)
    restore_at(1.5, back_before)
    twice = ItemFactory(name="deleted twice")
    delete_at(1, twice)
    delete_at(1.75, restore_at(1.5, twice))
    ItemFactory(name="never deleted")

    response = admin_client.get(
        url("changelist", status="deleted", as_of=moment.isoformat())
    )

    assert listed(response) == [
        ("deleted at the moment", 1),
        ("deleted before", 1),
        ("deleted twice", 2),
        ("restored since", 1),
    ]


def test_deleted_now_is_unchanged_by_the_as_of_rule(admin_client):
    gone = ItemFactory(name="gone")
    delete_at(1, gone)
    back = ItemFactory(name="back")
    delete_at(1, back)
    restore_at(2, back)
    response = admin_client.get(url("changelist", status="deleted"))
    assert listed(response) == [("gone", 1)]


def test_deleted_as_of_is_read_only_without_any_action(admin_client):
    gone = ItemFactory(name="gone")
    delete_at(1, gone)
    query = {"status": "deleted", "as_of": at(2).isoformat()}
    response = admin_client.get(url("changelist", **query))
    html = response.content.decode()
    assert "read-only" in html
    assert 'name="action"' not in html and "Restore selected" not in html
    # Nor can a posted action restore anything from the past.
    admin_client.post(
        url("changelist", **query),
        {"action": "restore_selected", "_selected_action": [gone.pk]},
    )
    assert not Item.objects.filter(identity=gone.identity).exists()


def test_the_deleted_view_of_the_present_still_offers_restore(admin_client):
    # Even with no current object left, which hides Django's actions.
    delete_at(1, ItemFactory(name="gone"))
    html = admin_client.get(url("changelist", status="deleted")).content.decode()
    assert 'value="restore_selected"' in html


class EditableItemAdmin(VersionedAdmin):
    list_display = ("name", "price")
    list_editable = ("price",)


editable_site = admin.AdminSite(name="editable")
editable_site.register(Item, EditableItemAdmin)
urlpatterns.append(path("editable/", editable_site.urls))


@pytest.mark.parametrize(
    "query",
    [{"as_of": at(2).isoformat()}, {"status": "deleted"}],
    ids=["as of", "deleted"],
)
def test_list_editable_is_only_for_the_present(admin_client, query):
    ItemFactory(name="lamp", price=10)
    delete_at(1, ItemFactory(name="gone", price=10))
    present = admin_client.get(url("changelist", site="editable"))
    assert 'name="form-0-price"' in present.content.decode()
    page = admin_client.get(url("changelist", site="editable", **query))
    assert page.status_code == 200
    assert 'name="form-' not in page.content.decode()
    row = page.context["cl"].result_list[0]
    admin_client.post(
        url("changelist", site="editable", **query),
        {
            "_save": "Save",
            "form-TOTAL_FORMS": "1",
            "form-INITIAL_FORMS": "1",
            "form-0-id": str(row.pk),
            "form-0-price": "99",
        },
    )
    assert not Item.all_versions.filter(price=99).exists()


# where rows lead ------------------------------------------------------------------


def test_present_rows_open_the_change_form_by_identity(admin_client):
    item = ItemFactory(name="lamp")
    html = admin_client.get(url("changelist")).content.decode()
    assert f'href="{url("change", item.identity)}"' in html


def test_current_rows_in_the_as_of_list_open_their_read_only_version(admin_client):
    item = ItemFactory(name="lamp")
    old = ItemFactory(name="desk")
    old.name = "big desk"
    old.save()
    response = admin_client.get(url("changelist", as_of=at(0).isoformat()))
    html = response.content.decode()
    assert listed(response) == [("big desk", 2), ("lamp", 1)]
    assert f'href="{url("version", item.pk)}?' in html
    assert f'href="{url("version", old.pk)}?' in html
    assert "/change/" not in "".join(
        response.context["cl"].url_for_result(row)
        for row in response.context["cl"].result_list
    )


def test_the_as_of_filter_has_a_proper_title(admin_client):
    html = admin_client.get(url("changelist")).content.decode()
    assert "As of a date and time" in html
    assert "By as of" not in html


# the deleted view ---------------------------------------------------------------


def test_the_deleted_view_says_when_and_by_whom(admin_user):
    client = Client()
    client.force_login(admin_user)
    editor = UserFactory(username="editor")
    item = ItemFactory(name="lamp")
    with (
        mock.patch("django.utils.timezone.now", return_value=at(0)),
        versioning.changes(user=editor),
    ):
        item.price = 12
        item.save()
    with mock.patch("django.utils.timezone.now", return_value=at(5)):
        client.post(url("delete", item.pk, site="audited"), {"post": "yes"})
    deleted = Item.all_versions.get(identity=item.identity, version=2)
    assert deleted.valid_to == at(5)

    response = client.get(url("changelist", site="audited", status="deleted"))

    headers = [h["text"] for h in response.context["result_headers"]][1:]
    assert headers == ["name", "version", "deleted", "deleted by"]
    html = response.content.decode()
    when = formats.localize(timezone.localtime(at(5)))
    made = formats.localize(timezone.localtime(at(0)))
    assert when in html and made not in html
    assert f'<td class="field-deleted_by">{admin_user.username}</td>' in html
    assert "editor" not in html  # who made the last version is not who deleted


def test_an_object_deleted_in_code_shows_no_one(admin_client):
    delete_at(1, ItemFactory(name="lamp"))
    response = admin_client.get(url("changelist", site="audited", status="deleted"))
    html = response.content.decode()
    assert '<td class="field-deleted_by">-</td>' in html


def test_the_deleted_view_costs_the_same_for_any_number_of_rows(
    admin_client, django_assert_num_queries
):
    for name in ("a", "b", "c"):
        delete_at(1, ItemFactory(name=name))
    address = url("changelist", site="audited", status="deleted")
    admin_client.get(address)  # the session and content types, once
    with django_assert_num_queries(6) as captured:
        admin_client.get(address)
    for name in ("d", "e", "f", "g"):
        delete_at(1, ItemFactory(name=name))
    with django_assert_num_queries(len(captured)):
        admin_client.get(address)


def test_the_deleted_view_can_be_sorted_by_deletion_time(admin_client):
    delete_at(2, ItemFactory(name="a"))
    delete_at(1, ItemFactory(name="b"))
    response = admin_client.get(url("changelist", status="deleted", o="-4"))
    assert [row.name for row in response.context["cl"].result_list] == ["a", "b"]
    response = admin_client.get(url("changelist", status="deleted", o="4"))
    assert [row.name for row in response.context["cl"].result_list] == ["b", "a"]


# identity URLs --------------------------------------------------------------------


@pytest.fixture
def lamp():
    item = ItemFactory(name="lamp", price=10)
    item.price = 11
    item.save()
    return item


def test_the_identity_opens_the_change_form_of_the_current_version(admin_client, lamp):
    response = admin_client.get(url("change", lamp.identity))
    assert response.status_code == 200
    assert response.context["original"].pk == lamp.pk


def test_a_save_through_the_identity_makes_a_new_version(admin_client, lamp):
    admin_client.post(url("change", lamp.identity), form_data(lamp, price="12"))
    current = Item.objects.get()
    assert (current.version, current.price) == (3, 12)


def test_a_stale_form_posted_to_the_identity_is_a_conflict(admin_client, lamp):
    stale = Item.all_versions.get(identity=lamp.identity, version=1)
    response = admin_client.post(
        url("change", lamp.identity), form_data(stale, price="99")
    )
    assert response.status_code == 200
    assert "was changed by" in str(response.context["adminform"].form.errors)
    assert Item.all_versions.count() == 2


@pytest.mark.parametrize("view", ["history", "version", "delete", "restore"])
def test_object_pages_accept_the_identity(admin_client, lamp, view):
    response = admin_client.get(url(view, lamp.identity))
    assert response.status_code == 200


def test_the_identity_names_the_current_version_on_the_version_page(admin_client, lamp):
    response = admin_client.get(url("version", lamp.identity))
    assert response.context["version"].pk == lamp.pk


def test_a_deleted_objects_identity_opens_its_last_version(admin_client, lamp):
    lamp.delete()
    response = admin_client.get(url("change", lamp.identity))
    assert response["Location"] == url("version", lamp.pk)


def test_the_identity_keeps_working_after_prune(admin_client, lamp):
    old_pk = Item.all_versions.get(identity=lamp.identity, version=1).pk
    call_command("prune", "testapp.Item", keep="1", stdout=mock.MagicMock())
    assert not Item.all_versions.filter(pk=old_pk).exists()

    assert admin_client.get(url("change", lamp.identity)).status_code == 200
    assert admin_client.get(url("history", lamp.identity)).status_code == 200

    response = admin_client.get(url("change", old_pk), follow=True)
    assert response.status_code == 200
    assert messages_of(response) == [
        f"Item with ID “{old_pk}” doesn’t exist. It may have named an old "
        "version that was pruned; an object's identity names it for good."
    ]


def test_a_key_that_is_neither_pk_nor_identity_is_not_found(admin_client, lamp):
    response = admin_client.get(url("change", "not-a-key"))
    assert response["Location"] == reverse("admin:index")
    assert admin_client.get(url("version", "not-a-key")).status_code == 404


def test_the_identity_of_a_hidden_object_is_not_found(lamp):
    class NoLampsAdmin(VersionedAdmin):
        def get_queryset(self, request):
            return super().get_queryset(request).exclude(name="lamp")

    site = admin.AdminSite(name="audited")
    model_admin = NoLampsAdmin(Item, site)
    request = mock.Mock(method="GET", GET={}, user=UserFactory(is_superuser=True))
    assert model_admin._get_version(request, str(lamp.identity)) is None
    assert model_admin.get_object(request, str(lamp.identity)) is None


def test_finding_a_version_by_pk_or_identity_is_one_query(
    lamp, django_assert_num_queries
):
    model_admin = admin.site.get_model_admin(Item)
    request = mock.Mock(method="GET", GET={}, user=UserFactory(is_superuser=True))
    with django_assert_num_queries(1):
        assert model_admin._get_version(request, str(lamp.pk)).pk == lamp.pk
    with django_assert_num_queries(1):
        assert model_admin._get_version(request, str(lamp.identity)).pk == lamp.pk


def test_view_permission_reaches_the_identity_read_only(lamp):
    _, client = staff_client("view_item")
    response = client.get(url("change", lamp.identity))
    assert response.status_code == 200
    assert not response.context["has_change_permission"]


# the pinned version widget --------------------------------------------------------


class OrderLineAdmin(PinnedForeignKeyMixin, admin.ModelAdmin):
    pass


class NoSecretsItemAdmin(VersionedAdmin):
    def get_queryset(self, request):
        return super().get_queryset(request).exclude(name__startswith="secret")


pinning_site = admin.AdminSite(name="pinning")
pinning_site.register(Item, NoSecretsItemAdmin)
pinning_site.register(OrderLine, OrderLineAdmin)
urlpatterns.append(path("pinning/", pinning_site.urls))


def line_url(view, line=None):
    return reverse(
        f"pinning:testapp_orderline_{view}", args=() if line is None else (line.pk,)
    )


def pinned_choices(response):
    """The select's options: [(group, [(value, label), ...]), ...]."""
    field = response.context["adminform"].form.fields["item"]
    return [
        (group, [(str(value), label) for value, label in options])
        for group, options in list(field.choices)[1:]
    ]


@pytest.fixture
def bookshelves():
    """A bookshelf at version 2, a deleted one of the same name, a desk."""
    gone = ItemFactory(name="Bookshelf", price=5)
    gone.delete()
    shelf = ItemFactory(name="Bookshelf", price=10)
    shelf.price = 12
    shelf.save()
    desk = ItemFactory(name="Desk")
    return shelf, Item.all_versions.get(identity=gone.identity), desk


def test_choices_are_existing_objects_versions_grouped_and_told_apart(
    admin_client, bookshelves
):
    shelf, gone, desk = bookshelves
    first = Item.all_versions.get(identity=shelf.identity, version=1)
    response = admin_client.get(line_url("add"))
    assert pinned_choices(response) == [
        (
            "Bookshelf",
            [
                (str(shelf.pk), "Bookshelf — version 2 (current)"),
                (str(first.pk), "Bookshelf — version 1"),
            ],
        ),
        ("Desk", [(str(desk.pk), "Desk — version 1 (current)")]),
    ]
    html = response.content.decode()
    assert '<optgroup label="Bookshelf">' in html
    assert str(gone.pk) not in [v for _, o in pinned_choices(response) for v, _ in o]


def test_a_deleted_objects_pinned_version_stays_shown_and_can_be_kept(
    admin_client, bookshelves
):
    shelf, gone, _ = bookshelves
    line = OrderLine.objects.create(item=gone)
    response = admin_client.get(line_url("change", line))
    groups = dict(pinned_choices(response))
    short = str(gone.identity)[:8]
    # Two objects named "Bookshelf" now: each says which it is.
    assert groups[f"Bookshelf ({short}) (deleted)"] == [
        (str(gone.pk), f"Bookshelf ({short}) — version 1")
    ]
    assert f"Bookshelf ({str(shelf.identity)[:8]})" in groups
    assert f'<option value="{gone.pk}" selected>' in response.content.decode()

    response = admin_client.post(line_url("change", line), {"item": gone.pk})
    assert response.status_code == 302
    assert OrderLine.objects.get().item_id == gone.pk


def test_versions_of_two_objects_never_share_a_label(admin_client):
    renamed = edited(ItemFactory(name="Bookshelf"), "name", "Shelf")
    other = edited(ItemFactory(name="Bookshelf", price=1), "price", 2)
    response = admin_client.get(line_url("add"))
    labels = [label for _, options in pinned_choices(response) for _, label in options]
    assert len(labels) == len(set(labels)) == 4
    short = str(renamed.identity)[:8]
    assert dict(pinned_choices(response))[f"Shelf ({short})"] == [
        (str(renamed.pk), f"Shelf ({short}) — version 2 (current)"),
        (str(renamed.previous_version().pk), f"Shelf ({short}) — version 1"),
    ]
    assert f"Bookshelf ({str(other.identity)[:8]})" in dict(pinned_choices(response))


def test_a_deleted_objects_version_cannot_be_newly_pinned(admin_client, bookshelves):
    _, gone, _ = bookshelves
    response = admin_client.post(line_url("add"), {"item": gone.pk})
    assert response.status_code == 200
    assert "Select a valid choice" in str(response.context["adminform"].form.errors)
    assert not OrderLine.objects.exists()


def test_an_old_version_can_be_pinned(admin_client, bookshelves):
    shelf, _, _ = bookshelves
    first = Item.all_versions.get(identity=shelf.identity, version=1)
    admin_client.post(line_url("add"), {"item": first.pk})
    assert OrderLine.objects.get().item_id == first.pk


def test_choices_follow_the_targets_admin(admin_client, bookshelves):
    secret = ItemFactory(name="secret prototype")
    response = admin_client.get(line_url("add"))
    assert "secret prototype" not in response.content.decode()
    response = admin_client.post(line_url("add"), {"item": secret.pk})
    assert "Select a valid choice" in str(response.context["adminform"].form.errors)


def test_the_icons_view_the_pinned_version_and_neither_edit_nor_delete(
    admin_client, bookshelves
):
    shelf, _, _ = bookshelves
    first = Item.all_versions.get(identity=shelf.identity, version=1)
    line = OrderLine.objects.create(item=first)
    html = admin_client.get(line_url("change", line)).content.decode()
    template = reverse("pinning:testapp_item_version", args=("__fk__",))
    assert f'data-href-template="{template}?' in html
    assert "change-related" not in html and "delete-related" not in html
    assert "add-related" in html
    version_page = admin_client.get(template.replace("__fk__", str(first.pk)))
    assert version_page.context["version"].pk == first.pk


def test_the_widget_costs_one_query_for_its_choices(
    admin_client, bookshelves, django_assert_num_queries
):
    admin_client.get(line_url("add"))
    with django_assert_num_queries(3) as captured:  # session, user, choices
        admin_client.get(line_url("add"))
    for name in ("Lamp", "Chair", "Table"):
        edited(ItemFactory(name=name), "price", 1, 2)
    with django_assert_num_queries(len(captured)):
        admin_client.get(line_url("add"))


def test_versioned_admins_use_the_widget_too():
    assert issubclass(VersionedAdmin, PinnedForeignKeyMixin)


# showing deleted objects (the README's get_versions_queryset example) -------------


class EitherNameAdmin(VersionedAdmin):
    """Two querysets joined with |: not separable from the current-rows condition."""

    def get_queryset(self, request):
        items = super().get_queryset(request)
        return items.filter(name__startswith="a") | items.filter(name__startswith="b")


class EitherNameShowingDeletedAdmin(EitherNameAdmin):
    def get_versions_queryset(self, request):
        return Item.all_versions.filter(
            Q(name__startswith="a") | Q(name__startswith="b")
        )


either_site = admin.AdminSite(name="either")
either_site.register(Item, EitherNameAdmin)
showing_site = admin.AdminSite(name="showing")
showing_site.register(Item, EitherNameShowingDeletedAdmin)
urlpatterns += [path("either/", either_site.urls), path("showing/", showing_site.urls)]


def test_deleted_objects_are_shown_when_the_versions_queryset_includes_them(
    admin_client,
):
    ItemFactory(name="apple").delete()
    ItemFactory(name="banana")
    ItemFactory(name="cherry").delete()
    query = {"status": "deleted"}
    left_out = admin_client.get(url("changelist", site="either", **query))
    assert listed(left_out) == []
    shown = admin_client.get(url("changelist", site="showing", **query))
    assert listed(shown) == [("apple", 1)]
