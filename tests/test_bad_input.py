"""Bad input gets a clear error that says what to do next, and nothing is written."""

import pytest
from django.core.exceptions import FieldDoesNotExist

from tests.factories import ExampleFactory, ItemFactory, ReviewFactory, TagFactory
from tests.testapp.models import Example, Item, Review
from versioning.exceptions import HistoricalVersionError, VersioningError

pytestmark = pytest.mark.django_db


@pytest.fixture
def rows():
    ExampleFactory(data="a")
    ItemFactory(name="lamp")
    return Example.all_versions.count() + Item.all_versions.count()


def unchanged(rows):
    return Example.all_versions.count() + Item.all_versions.count() == rows


def test_update_needs_something_to_change(rows):
    with pytest.raises(ValueError, match="at least one field"):
        Item.objects.update()
    assert unchanged(rows)


def test_update_of_an_unknown_field_names_it(rows):
    with pytest.raises(FieldDoesNotExist, match="Item has no field named 'colour'"):
        Item.objects.update(colour="red")
    assert unchanged(rows)


def test_update_cannot_set_many_to_many(rows):
    with pytest.raises(VersioningError, match="no column on this table"):
        Item.objects.update(tags=[TagFactory()])
    assert unchanged(rows)


def test_update_and_delete_refuse_slices(rows):
    with pytest.raises(TypeError, match="slice"):
        Item.objects.all()[:1].update(price=1)
    with pytest.raises(TypeError, match="limit"):
        Item.objects.all()[:1].delete()
    assert unchanged(rows) and Item.objects.exists()


def test_update_accepts_a_model_instance_for_a_key():
    review = ReviewFactory()
    other = ItemFactory(name="other")
    Review.objects.update(item=other)
    assert Review.objects.get().item_id == other.pk
    assert review.current_version().version == 2


def test_bulk_update_arguments_are_checked(rows):
    item = Item.objects.get()
    with pytest.raises(ValueError, match="Field names must be given"):
        Item.objects.bulk_update([item], [])
    with pytest.raises(ValueError, match="positive integer"):
        Item.objects.bulk_update([item], ["price"], batch_size=0)
    with pytest.raises(ValueError, match="primary key set"):
        Item.objects.bulk_update([Item(name="unsaved")], ["price"])
    with pytest.raises(VersioningError, match="managed by versioning"):
        Item.objects.bulk_update([item], ["version"])
    assert unchanged(rows)


def test_bulk_create_refuses_what_would_overwrite_or_fork(rows):
    saved = Example.objects.get()
    with pytest.raises(VersioningError, match="already saved"):
        Example.objects.bulk_create([saved])
    twin = Example(data="b")
    with pytest.raises(VersioningError, match="two objects with identity"):
        Example.objects.bulk_create([twin, Example(data="c", identity=twin.identity)])
    with pytest.raises(VersioningError, match="overwrite rows in place"):
        Example.objects.bulk_create(
            [Example(data="d")],
            update_conflicts=True,
            unique_fields=["id"],
            update_fields=["data"],
        )
    assert unchanged(rows)


def test_unsaved_objects_cannot_be_deleted_or_restored(rows):
    with pytest.raises(ValueError, match="never saved"):
        Example(data="x").delete()
    with pytest.raises(ValueError, match="saved version"):
        Example(data="x").restore()
    assert unchanged(rows)


def test_save_options_must_be_keywords(rows):
    obj = Example.objects.get()
    obj.data = "changed"
    with pytest.raises(TypeError, match="keyword arguments"):
        obj.save(False)
    assert unchanged(rows)


def test_deleting_twice_is_stale_not_silent():
    from versioning.exceptions import StaleVersionError

    obj = ExampleFactory()
    other = Example.objects.get(pk=obj.pk)
    obj.delete()
    with pytest.raises(StaleVersionError):
        other.delete()
    with pytest.raises(HistoricalVersionError):
        obj.delete()


def test_a_value_fetched_outside_from_db_is_compared_with_the_stored_row(
    django_assert_num_queries,
):
    # Django 6.1 can fill deferred fields of several objects at once without
    # refresh_from_db; such values are compared with the stored row.
    created = ItemFactory(description="stored")
    item = Item.objects.only("name").get(pk=created.pk)
    item.__dict__["description"] = "stored"
    # one query loads the deferred valid_to, one compares the value
    with django_assert_num_queries(2):
        item.save()
    assert item.version == 1
    item.__dict__["description"] = "edited"
    item.save()
    assert item.version == 2 and Item.objects.get().description == "edited"
