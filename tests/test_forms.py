"""
VersionedModelForm and versionedmodelform_factory (DESIGN.md section 11):
the form directly, and the demo's product edit page (routed by identity)
through the test client. Runs on SQLite and PostgreSQL; the row lock taken
during validation is checked with a real second connection on PostgreSQL.
"""

import re
import threading
from unittest import mock

import pytest
from django import forms
from django.contrib.admin.sites import AdminSite
from django.core.exceptions import NON_FIELD_ERRORS
from django.db import connection, transaction
from django.test import Client, RequestFactory
from django.urls import reverse

import versioning
from demo_project.catalog.models import Product
from tests.conftest import wait_until_waiting_for_a_lock
from tests.factories import ItemFactory, TagFactory, UserFactory
from tests.testapp.models import Item, Tag
from versioning.admin import VersionedAdmin
from versioning.exceptions import StaleVersionError
from versioning.forms import (
    LOADED_VERSION_FIELD,
    REASON_FIELD,
    VersionedModelForm,
    versionedmodelform_factory,
)

pytestmark = pytest.mark.django_db

ItemForm = versionedmodelform_factory(Item, fields=["name", "price", "description"])


def item_data(item, **changes):
    data = {
        "name": item.name,
        "price": str(item.price),
        "description": item.description,
        LOADED_VERSION_FIELD: str(item.version),
        REASON_FIELD: "",
    }
    data.update(changes)
    return data


def prices(model, identity):
    rows = model.all_versions.filter(identity=identity).order_by("version")
    return [int(price) for price in rows.values_list("price", flat=True)]


def saved_by(user, obj, **changes):
    """Someone else loads the current version of ``obj`` and saves a change."""
    with versioning.changes(user=user):
        theirs = type(obj).objects.get(identity=obj.identity)
        for name, value in changes.items():
            setattr(theirs, name, value)
        theirs.save()
    return theirs


def non_field_errors(form):
    return " ".join(form.non_field_errors())


@pytest.fixture
def item():
    return ItemFactory(name="lamp", price=10, description="brass")


@pytest.fixture
def bob():
    return UserFactory(username="bob")


# The form ----------------------------------------------------------------------


def test_an_unbound_form_carries_the_loaded_version_hidden(item):
    form = ItemForm(instance=item)
    html = str(form)
    assert re.search(rf'type="hidden" name="{LOADED_VERSION_FIELD}" value="1"', html), (
        html
    )
    assert "Reason for this change" in html


def test_a_fresh_form_saves_a_new_version_with_its_reason(item, bob):
    form = ItemForm(
        item_data(item, price="12", **{REASON_FIELD: "sale"}), instance=item
    )
    assert form.is_valid(), form.errors
    assert form.loaded_version == 1
    with versioning.changes(user=bob):
        saved = form.save()
    current = Item.objects.get()
    assert saved is item and (saved.version, saved.pk) == (2, current.pk)
    assert (current.price, current.changed_by, current.change_reason) == (
        12,
        bob,
        "sale",
    )
    assert prices(Item, item.identity) == [10, 12]


def test_a_blank_reason_leaves_the_changes_block_reason(item):
    form = ItemForm(item_data(item, price="12"), instance=item)
    assert form.is_valid(), form.errors
    with versioning.changes(reason="nightly import"):
        form.save()
    assert Item.objects.get().change_reason == "nightly import"


def test_save_without_commit_puts_the_reason_on_the_instance(item):
    form = ItemForm(item_data(item, price="12", **{REASON_FIELD: "why"}), instance=item)
    assert form.is_valid(), form.errors
    obj = form.save(commit=False)
    assert Item.all_versions.count() == 1
    obj.save()
    assert Item.objects.get().change_reason == "why"


def test_an_add_form_has_no_loaded_version_and_creates_version_1():
    form = ItemForm({"name": "new", "price": "3", REASON_FIELD: "first stock"})
    assert LOADED_VERSION_FIELD not in form.fields
    assert form.is_valid(), form.errors
    created = form.save()
    assert (created.version, created.change_reason) == (1, "first stock")


def test_a_stale_form_is_refused_with_who_and_when_and_writes_nothing(item, bob):
    loaded = Item.objects.get()  # the form is loaded at version 1
    theirs = saved_by(bob, item, price=20)

    form = ItemForm(
        item_data(loaded, price="30", description="my careful edit"), instance=loaded
    )
    assert not form.is_valid()
    errors = non_field_errors(form)
    assert "changed by bob" in errors and "now version 2" in errors
    assert theirs.valid_from.strftime("%Y") in errors  # when
    assert form.has_error(NON_FIELD_ERRORS, "stale") and form.has_conflict
    assert form["description"].value() == "my careful edit"  # input kept
    assert prices(Item, item.identity) == [10, 20]
    with pytest.raises(ValueError):
        form.save()
    assert prices(Item, item.identity) == [10, 20]


def test_a_stale_form_bound_to_the_current_row_is_refused(item, bob):
    """Routing by identity binds the POST to the current row, a newer version."""
    saved_by(bob, item, price=20)
    current = Item.objects.get()
    form = ItemForm(item_data(item, price="30"), instance=current)
    assert not form.is_valid()
    errors = non_field_errors(form)
    assert "changed by bob" in errors and "now version 2" in errors
    assert prices(Item, item.identity) == [10, 20]


def test_someone_unknown_is_named_someone(item):
    loaded = Item.objects.get()
    saved_by(None, item, price=20)
    form = ItemForm(item_data(loaded, price="30"), instance=loaded)
    assert not form.is_valid()
    assert "changed by someone" in non_field_errors(form)


@pytest.mark.parametrize("tampered", ["abc", "", "7", "0", "-1", None])
def test_a_tampered_version_field_is_refused_and_writes_nothing(item, tampered):
    data = item_data(item, price="99")
    if tampered is None:
        del data[LOADED_VERSION_FIELD]
    else:
        data[LOADED_VERSION_FIELD] = tampered
    form = ItemForm(data, instance=item)
    assert not form.is_valid()
    if tampered in ("7", "0", "-1"):
        assert form.has_error(NON_FIELD_ERRORS, "version_mismatch")
        assert f"version {tampered}" in non_field_errors(form)
    else:
        assert "did not say which version" in " ".join(
            form.errors[LOADED_VERSION_FIELD]
        )
    assert not form.has_conflict
    assert prices(Item, item.identity) == [10]


def test_a_lower_version_on_the_current_row_counts_as_stale(item):
    """A number the object had before is refused like any stale form."""
    item.price = 11
    item.save()
    form = ItemForm(
        item_data(item, price="99", **{LOADED_VERSION_FIELD: "1"}), instance=item
    )
    assert not form.is_valid() and form.has_conflict
    assert prices(Item, item.identity) == [10, 11]


def test_a_form_for_a_deleted_object_says_when_and_writes_nothing(item):
    loaded = Item.objects.get()
    Item.objects.get().delete()
    latest = Item.all_versions.get(identity=item.identity)

    for instance in (loaded, latest):
        form = ItemForm(item_data(loaded, price="30"), instance=instance)
        assert not form.is_valid()
        assert form.has_error(NON_FIELD_ERRORS, "deleted")
        assert "was deleted at" in non_field_errors(form)
        assert form["price"].value() == "30"
    assert not Item.objects.exists() and Item.all_versions.count() == 1


def test_a_form_for_a_purged_object_says_it_was_deleted(item):
    loaded = Item.objects.get()
    Item.objects.get().purge()
    form = ItemForm(item_data(loaded, price="30"), instance=loaded)
    assert not form.is_valid()
    assert "was deleted after you opened it" in non_field_errors(form)
    assert not Item.all_versions.exists()


def test_a_save_racing_past_validation_becomes_a_form_error(item, bob):
    form = ItemForm(item_data(item, price="30", description="mine"), instance=item)
    assert form.is_valid(), form.errors
    saved_by(bob, item, price=20)  # between validation and the write

    with pytest.raises(StaleVersionError):
        form.save()
    assert not form.is_valid()
    errors = non_field_errors(form)
    assert "changed by bob" in errors and "now version 2" in errors
    assert form["description"].value() == "mine"
    assert prices(Item, item.identity) == [10, 20]


def test_a_lost_race_that_left_no_newer_version_says_try_again(item):
    form = ItemForm(item_data(item, price="30"), instance=item)
    assert form.is_valid(), form.errors
    with (
        mock.patch.object(Item, "save", side_effect=StaleVersionError("deadlock")),
        pytest.raises(StaleVersionError),
    ):
        form.save()
    assert "while you were saving it" in non_field_errors(form)
    assert form.has_conflict


def test_a_failed_save_writes_neither_the_version_nor_its_links(item):
    TagFactory(name="old")
    new_tag = TagFactory(name="new")
    TaggedForm = versionedmodelform_factory(Item, fields=["name", "price", "tags"])
    form = TaggedForm(
        {**item_data(item, price="12"), "tags": [new_tag.pk]}, instance=item
    )
    assert form.is_valid(), form.errors
    with (
        mock.patch.object(form, "_save_m2m", side_effect=OSError("links failed")),
        pytest.raises(OSError),
    ):
        form.save()
    assert prices(Item, item.identity) == [10]
    form = TaggedForm(
        {**item_data(Item.objects.get(), price="12"), "tags": [new_tag.pk]},
        instance=Item.objects.get(),
    )
    assert form.is_valid(), form.errors
    saved = form.save()
    assert list(saved.tags.all()) == [new_tag]
    assert not Item.all_versions.get(version=1).tags.exists()


# The factory and the class -----------------------------------------------------


def test_the_factory_makes_a_versioned_model_form():
    form_class = versionedmodelform_factory(Item, fields=["name"])
    assert issubclass(form_class, VersionedModelForm)
    assert form_class._meta.model is Item
    assert list(form_class.base_fields) == [
        "name",
        LOADED_VERSION_FIELD,
        REASON_FIELD,
    ]


def test_the_factory_adds_the_conflict_check_to_a_plain_model_form(item, bob):
    class ShoutingForm(forms.ModelForm):
        def clean_name(self):
            return self.cleaned_data["name"].upper()

    form_class = versionedmodelform_factory(Item, form=ShoutingForm, fields=["name"])
    assert issubclass(form_class, ShoutingForm)
    assert issubclass(form_class, VersionedModelForm)
    loaded = Item.objects.get()
    saved_by(bob, item, price=20)
    stale = form_class({"name": "x", LOADED_VERSION_FIELD: "1"}, instance=loaded)
    assert not stale.is_valid() and stale.has_conflict
    fresh = form_class(
        {"name": "x", LOADED_VERSION_FIELD: "2"}, instance=Item.objects.get()
    )
    assert fresh.is_valid(), fresh.errors
    assert fresh.save().name == "X"


def test_the_factory_accepts_django_model_form_itself():
    form_class = versionedmodelform_factory(Item, form=forms.ModelForm, fields=["name"])
    assert issubclass(form_class, VersionedModelForm)


def test_the_reason_field_can_be_dropped(item):
    class NoReasonForm(VersionedModelForm):
        versioning_reason = None

        class Meta:
            model = Item
            fields = ["name"]

    form = NoReasonForm({"name": "x", LOADED_VERSION_FIELD: "1"}, instance=item)
    assert REASON_FIELD not in form.fields
    assert form.is_valid(), form.errors
    assert form.save().version == 2


def test_only_versioned_models_are_accepted():
    with pytest.raises(TypeError, match="Versioned model"):
        versionedmodelform_factory(Tag, fields=["name"])

    class TagForm(VersionedModelForm):
        class Meta:
            model = Tag
            fields = ["name"]

    with pytest.raises(TypeError, match="not a Versioned model"):
        TagForm()


def test_the_admin_adds_the_conflict_check_to_a_custom_plain_form(item, bob):
    class PlainForm(forms.ModelForm):
        pass

    class CustomAdmin(VersionedAdmin):
        form = PlainForm

    request = RequestFactory().get("/")
    request.user = UserFactory(is_superuser=True, is_staff=True)
    model_admin = CustomAdmin(Item, AdminSite())
    form_class = model_admin.get_form(request, item, change=True)
    assert issubclass(form_class, PlainForm)
    assert issubclass(form_class, VersionedModelForm)
    assert issubclass(
        VersionedAdmin(Item, AdminSite()).get_form(request, item), VersionedModelForm
    )


# Row lock during validation (PostgreSQL) -------------------------------------

WAIT = 30


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_validation_in_a_transaction_locks_the_row_until_the_save(on_postgres):
    item = ItemFactory(name="lamp", price=10)
    other = {}
    ready, done = threading.Event(), threading.Event()

    def other_writer():
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                other["pid"] = cursor.fetchone()[0]
            theirs = Item.objects.get()
            ready.set()
            theirs.price = 20
            theirs.save()
            other["outcome"] = "saved"
        except BaseException as error:  # asserted on below
            other["outcome"] = error
        finally:
            ready.set()
            done.set()
            connection.close()

    with transaction.atomic():
        form = ItemForm(item_data(item, price="30"), instance=Item.objects.get())
        assert form.is_valid(), form.errors  # locks the row
        thread = threading.Thread(target=other_writer, daemon=True)
        thread.start()
        assert ready.wait(WAIT)
        wait_until_waiting_for_a_lock(other["pid"], done)
        assert not done.is_set(), other.get("outcome")  # the other writer waits
        form.save()
    thread.join(WAIT)
    assert isinstance(other["outcome"], StaleVersionError), other["outcome"]
    assert prices(Item, item.identity) == [10, 30]


# The demo's edit page, routed by identity ----------------------------------------


@pytest.fixture
def lamp():
    return Product.objects.create(name="Desk lamp", price=29, description="brass")


def edit_url(product):
    return reverse("catalog:product_edit", args=(product.identity,))


def product_data(product, **changes):
    data = {
        "name": product.name,
        "price": str(product.price),
        "description": product.description,
        LOADED_VERSION_FIELD: str(product.version),
        REASON_FIELD: "",
    }
    data.update(changes)
    return data


def messages_of(response):
    return [str(m) for m in response.context["messages"]]


def test_the_list_links_to_each_products_edit_page(admin_client, lamp):
    html = admin_client.get(reverse("catalog:product_list")).content.decode()
    assert "Desk lamp" in html and edit_url(lamp) in html


def test_the_edit_page_shows_the_current_version(admin_client, lamp):
    lamp.price = 34
    lamp.save()
    html = admin_client.get(edit_url(lamp)).content.decode()
    assert re.search(r'id="current-version">2<', html)
    assert re.search(rf'name="{LOADED_VERSION_FIELD}" value="2"', html)


def test_saving_redirects_back_with_a_message(admin_client, admin_user, lamp):
    response = admin_client.post(
        edit_url(lamp), product_data(lamp, price="34", **{REASON_FIELD: "price rise"})
    )
    assert response.status_code == 302 and response["Location"] == edit_url(lamp)
    page = admin_client.get(response["Location"])
    assert messages_of(page) == ["Saved as version 2."]
    current = Product.objects.get()
    assert (current.version, current.price) == (2, 34)
    assert (current.changed_by, current.change_reason) == (admin_user, "price rise")


def test_saving_without_a_change_says_so(admin_client, lamp):
    response = admin_client.post(edit_url(lamp), product_data(lamp), follow=True)
    assert messages_of(response) == ["No field changed, so no new version was made."]
    assert Product.all_versions.count() == 1


def test_a_stale_post_shows_who_and_when_keeps_the_input(admin_client, lamp, bob):
    admin_client.get(edit_url(lamp))  # loaded at version 1
    saved_by(bob, lamp, price=34)
    response = admin_client.post(
        edit_url(lamp), product_data(lamp, price="99", description="my careful edit")
    )
    assert response.status_code == 200
    form = response.context["form"]
    assert "changed by bob" in non_field_errors(form)
    assert "now version 2" in non_field_errors(form)
    html = response.content.decode()
    assert "my careful edit" in html  # input kept
    assert re.search(r'id="current-version">2<', html)
    assert 'id="open-current"' in html
    assert prices(Product, lamp.identity) == [29, 34]


def test_a_post_racing_past_validation_is_a_form_error_not_a_500(
    admin_client, lamp, bob
):
    form_save = VersionedModelForm.save

    def bob_saves_first(form, commit=True):  # after validation, before the write
        saved_by(bob, lamp, price=34)
        return form_save(form, commit)

    with mock.patch.object(VersionedModelForm, "save", bob_saves_first):
        response = admin_client.post(
            edit_url(lamp), product_data(lamp, price="99", description="mine")
        )
    assert response.status_code == 200
    assert "changed by bob" in non_field_errors(response.context["form"])
    assert "mine" in response.content.decode()
    assert prices(Product, lamp.identity) == [29, 34]


def test_a_post_after_a_delete_says_so_and_writes_nothing(admin_client, lamp):
    Product.objects.get().delete()
    response = admin_client.post(edit_url(lamp), product_data(lamp, price="99"))
    assert response.status_code == 200
    assert "was deleted at" in non_field_errors(response.context["form"])
    assert "This product was deleted" in response.content.decode()
    assert not Product.objects.exists() and Product.all_versions.count() == 1
    assert admin_client.get(edit_url(lamp)).status_code == 404


@pytest.mark.parametrize("tampered", ["abc", "", "9"])
def test_a_tampered_post_is_refused(admin_client, lamp, tampered):
    response = admin_client.post(
        edit_url(lamp),
        product_data(lamp, price="99", **{LOADED_VERSION_FIELD: tampered}),
    )
    assert response.status_code == 200
    assert not response.context["form"].is_valid()
    assert Product.all_versions.count() == 1


def test_an_unknown_identity_is_404(admin_client):
    url = reverse(
        "catalog:product_edit", args=("00000000-0000-0000-0000-000000000000",)
    )
    assert admin_client.get(url).status_code == 404
    assert admin_client.post(url, {}).status_code == 404


def test_the_pages_need_the_change_permission(lamp):
    anonymous = Client()
    response = anonymous.get(edit_url(lamp))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    response = anonymous.post(edit_url(lamp), product_data(lamp, price="1"))
    assert response.status_code == 302
    staff = Client()
    staff.force_login(UserFactory(is_staff=True))
    assert staff.get(reverse("catalog:product_list")).status_code == 302
    assert Product.all_versions.count() == 1
