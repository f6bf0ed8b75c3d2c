"""VersionedAdmin finds every object through ModelAdmin.get_queryset(request)."""

import pytest
from django.contrib import admin
from django.db.models.functions import Length
from django.urls import path, reverse
from django.utils import timezone

from tests.conftest import item_form_data as form_data
from tests.factories import ItemFactory
from tests.testapp.models import Item
from versioning.admin import VersionedAdmin

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.test_admin_scoping")]


class PublicItemAdmin(VersionedAdmin):
    """Shows only items whose name starts with "public", with an annotation."""

    list_display = ["name", "name_length"]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .filter(name__startswith="public")
            .annotate(length_of_name=Length("name"))
        )

    @admin.display(description="length")
    def name_length(self, obj):
        return f"len={obj.length_of_name}"


scoped_site = admin.AdminSite(name="scoped")
scoped_site.register(Item, PublicItemAdmin)
urlpatterns = [path("scoped/", scoped_site.urls)]


def url(view, obj=None, **query):
    args = () if obj is None else (obj.pk,)
    address = reverse(f"scoped:testapp_item_{view}", args=args)
    if query:
        address += "?" + "&".join(f"{key}={value}" for key, value in query.items())
    return address


def twice_saved(name):
    item = ItemFactory(name=name, price=10)
    item.price = 12
    item.save()
    return item


@pytest.fixture
def shown():
    return twice_saved("public lamp")


@pytest.fixture
def hidden():
    return twice_saved("secret desk")


def first(item):
    return Item.all_versions.get(identity=item.identity, version=1)


def refused(response):
    """Not found: a 404, or Django's own "does not exist" redirect to the index."""
    if response.status_code == 302:
        return response["Location"] == reverse("scoped:index")
    return response.status_code == 404


# history, version, compare, restore ------------------------------------------


def test_history_of_a_hidden_object_is_not_found(admin_client, hidden):
    for row in (hidden, first(hidden)):
        response = admin_client.get(url("history", row))
        assert refused(response)
        assert b"secret" not in response.content


def test_history_of_a_shown_object_opens(admin_client, shown):
    response = admin_client.get(url("history", first(shown)))
    assert response.status_code == 200
    assert b"public lamp" in response.content


def test_version_view_of_a_hidden_object_is_404(admin_client, hidden):
    for row in (hidden, first(hidden)):
        assert admin_client.get(url("version", row)).status_code == 404


def test_version_view_of_a_shown_object_opens(admin_client, shown):
    assert admin_client.get(url("version", first(shown))).status_code == 200


def test_compare_of_a_hidden_object_is_404(admin_client, hidden):
    response = admin_client.get(url("compare", hidden, a=first(hidden).pk, b=hidden.pk))
    assert response.status_code == 404


def test_compare_of_a_shown_object_opens(admin_client, shown):
    response = admin_client.get(url("compare", shown, a=first(shown).pk, b=shown.pk))
    assert response.status_code == 200


def test_compare_cannot_name_a_hidden_version(admin_client, shown, hidden):
    response = admin_client.get(
        url("compare", shown, a=first(hidden).pk, b=shown.pk), follow=True
    )
    assert b"secret" not in response.content


def test_restore_of_a_hidden_object_is_404_and_writes_nothing(admin_client, hidden):
    old = first(hidden)
    assert admin_client.get(url("restore", old)).status_code == 404
    response = admin_client.post(url("restore", old), {"version": "1"})
    assert response.status_code == 404
    assert Item.all_versions.filter(identity=hidden.identity).count() == 2


def test_restore_of_a_shown_object_works(admin_client, shown):
    old = first(shown)
    assert admin_client.get(url("restore", old)).status_code == 200
    response = admin_client.post(url("restore", old), {"version": "1"})
    assert response.status_code == 302
    current = Item.objects.get(identity=shown.identity)
    assert (current.version, current.price) == (3, 10)


def test_a_shown_old_version_whose_object_is_now_hidden_cannot_be_restored(
    admin_client, shown
):
    shown.name = "secret lamp"
    shown.save()
    old = first(shown)
    page = admin_client.get(url("version", old))
    assert page.status_code == 200
    assert url("restore", old).encode() not in page.content
    history = admin_client.get(url("history", old))
    assert history.status_code == 200
    assert url("restore", old).encode() not in history.content
    assert admin_client.post(url("restore", old), {"version": "1"}).status_code == 404
    response = admin_client.get(url("change", old))
    assert refused(response)
    assert Item.objects.get(identity=shown.identity).version == 3


# change view ------------------------------------------------------------------


def test_old_pk_of_a_hidden_object_does_not_redirect(admin_client, hidden):
    response = admin_client.get(url("change", first(hidden)))
    assert refused(response)


def test_post_to_an_old_pk_of_a_hidden_object_writes_nothing(admin_client, hidden):
    old = first(hidden)
    response = admin_client.post(url("change", old), form_data(old, price="99"))
    assert refused(response)
    assert Item.all_versions.filter(identity=hidden.identity).count() == 2
    assert b"secret" not in response.content


def test_old_pk_of_a_shown_object_redirects_to_the_current(admin_client, shown):
    response = admin_client.get(url("change", first(shown)))
    assert response["Location"] == reverse(
        "scoped:testapp_item_change", args=(shown.identity,)
    )


def test_post_to_an_old_pk_of_a_shown_object_shows_the_conflict(admin_client, shown):
    old = first(shown)
    response = admin_client.post(url("change", old), form_data(old, price="99"))
    assert response.status_code == 200
    assert Item.objects.get(identity=shown.identity).version == 2


# change list filters ------------------------------------------------------------


def test_as_of_lists_no_hidden_rows_and_keeps_annotations(admin_client, shown, hidden):
    moment = timezone.now().isoformat()
    response = admin_client.get(url("changelist"), {"as_of": moment})
    assert response.status_code == 200
    assert b"public lamp" in response.content
    assert b"secret desk" not in response.content
    assert b"len=11" in response.content


def test_current_list_shows_the_annotated_column(admin_client, shown, hidden):
    response = admin_client.get(url("changelist"))
    assert b"len=11" in response.content
    assert b"secret desk" not in response.content


def test_deleted_view_lists_no_hidden_rows(admin_client, shown, hidden):
    shown.delete()
    hidden.delete()
    response = admin_client.get(url("changelist"), {"status": "deleted"})
    assert response.status_code == 200
    assert b"public lamp" in response.content
    assert b"secret desk" not in response.content


def test_restore_selected_cannot_restore_a_hidden_row(admin_client, shown, hidden):
    shown.delete()
    hidden.delete()
    last_hidden = Item.all_versions.get(identity=hidden.identity, version=2)
    last_shown = Item.all_versions.get(identity=shown.identity, version=2)
    admin_client.post(
        url("changelist") + "?status=deleted",
        {
            "action": "restore_selected",
            "_selected_action": [last_hidden.pk, last_shown.pk],
        },
    )
    assert not Item.objects.filter(identity=hidden.identity).exists()
    assert Item.objects.filter(identity=shown.identity).exists()


def test_the_hook_can_be_overridden(admin_client, hidden):
    model_admin = scoped_site.get_model_admin(Item)
    original = model_admin.get_versions_queryset
    model_admin.get_versions_queryset = lambda request: Item.all_versions.annotate(
        length_of_name=Length("name")
    )
    try:
        assert admin_client.get(url("version", first(hidden))).status_code == 200
        moment = timezone.now().isoformat()
        listed = admin_client.get(url("changelist"), {"as_of": moment})
        assert b"secret desk" in listed.content
    finally:
        model_admin.get_versions_queryset = original
