"""
What an object remembers of the row it was read from, however it was read:
an unchanged object saves with no query, a change is a new version.
"""

import copy
import pickle
from decimal import Decimal

import pytest

from tests.factories import (
    DocumentFactory,
    ExampleFactory,
    ItemFactory,
    ReviewFactory,
    UserFactory,
)
from tests.testapp.models import Example, Item, Review

pytestmark = pytest.mark.django_db


def example_with_versions(count):
    example = ExampleFactory(data="v1")
    for number in range(2, count + 1):
        example.data = f"v{number}"
        example.save()
    return example


READS = {
    "history()": lambda obj: list(obj.history())[-1],
    "objects.get()": lambda obj: type(obj).objects.get(identity=obj.identity),
    "all_versions": lambda obj: (
        type(obj).all_versions.filter(identity=obj.identity).latest("version")
    ),
    "iterator()": lambda obj: next(
        type(obj).objects.filter(identity=obj.identity).iterator()
    ),
    "raw()": lambda obj: next(
        iter(
            type(obj).objects.raw(
                f"SELECT * FROM {type(obj)._meta.db_table} WHERE id = %s", [obj.pk]
            )
        )
    ),
    "in_bulk()": lambda obj: type(obj).objects.in_bulk([obj.pk])[obj.pk],
}


@pytest.fixture(params=READS)
def read(request):
    return READS[request.param]


def test_an_unchanged_object_saves_with_no_query(read, django_assert_num_queries):
    current = read(example_with_versions(3))
    with django_assert_num_queries(0):
        current.save()
    assert (current.version, Example.all_versions.count()) == (3, 3)


def test_a_changed_field_is_a_new_version(read):
    current = read(example_with_versions(3))
    current.data = "v4"
    current.save()
    assert current.version == 4
    history = current.history()
    assert [version.data for version in history] == ["v1", "v2", "v3", "v4"]


def test_a_field_set_and_set_back_is_no_change(read, django_assert_num_queries):
    current = read(example_with_versions(2))
    current.data = "something else"
    current.data = "v2"
    with django_assert_num_queries(0):
        current.save()


def test_setting_a_field_to_null_is_a_change():
    document = DocumentFactory(summary="")
    loaded = list(document.history())[-1]
    loaded.summary = None
    loaded.save()
    assert loaded.version == 2
    assert [version.summary for version in document.history()] == ["", None]


def test_a_value_equal_after_normalisation_is_no_change(django_assert_num_queries):
    item = ItemFactory(price=Decimal("1.50"))
    loaded = list(item.history())[-1]
    loaded.price = "1.50"
    with django_assert_num_queries(0):
        loaded.save()


def test_every_version_read_by_history_knows_its_own_row():
    example = example_with_versions(3)
    first, second, third = example.history()
    assert first.diff(third) == {"data": ("v1", "v3")}
    assert second.diff(second) == {}
    third.data = "v4"
    third.save()
    assert (third.version, third.previous_version().data) == (4, "v3")


def test_a_json_value_edited_in_place_after_history_is_a_change():
    item = ItemFactory(attributes={"colour": "red"})
    loaded = list(item.history())[-1]
    loaded.attributes["colour"] = "blue"
    loaded.save()
    assert loaded.version == 2
    assert loaded.previous_version().attributes == {"colour": "red"}


def test_deferred_fields_unchanged_save_with_no_query(django_assert_num_queries):
    item = ItemFactory(description="long")
    loaded = item.history().defer("description", "attributes").get(version=1)
    with django_assert_num_queries(0):
        loaded.save()
    assert "description" in loaded.get_deferred_fields()


def test_a_deferred_field_loaded_later_is_remembered(django_assert_num_queries):
    item = ItemFactory(description="long")
    loaded = item.history().defer("description").get(version=1)
    assert loaded.description == "long"  # one query loads it
    with django_assert_num_queries(0):
        loaded.save()
    loaded.description = "longer"
    loaded.save()
    assert (loaded.version, loaded.previous_version().description) == (2, "long")


def test_a_change_next_to_a_deferred_field_keeps_its_value():
    item = ItemFactory(description="not loaded", price=5)
    loaded = item.history().only("name").get(version=1)
    loaded.name = "renamed"
    loaded.save()
    current = Item.objects.get(identity=item.identity)
    assert (current.version, current.name) == (2, "renamed")
    assert (current.description, current.price) == ("not loaded", 5)


def test_refresh_from_db_makes_the_stored_row_the_baseline(django_assert_num_queries):
    example = example_with_versions(2)
    loaded = Example.objects.get(identity=example.identity)
    loaded.data = "edited, then thrown away"
    loaded.refresh_from_db()
    with django_assert_num_queries(0):
        loaded.save()
    assert loaded.data == "v2"


@pytest.mark.parametrize(
    "duplicate",
    [pickle.loads, copy.copy, copy.deepcopy],
    ids=["pickle", "copy", "deepcopy"],
)
def test_a_duplicated_object_remembers_the_row(duplicate, django_assert_num_queries):
    loaded = list(example_with_versions(2).history())[-1]
    if duplicate is pickle.loads:
        twin = pickle.loads(pickle.dumps(loaded))
    else:
        twin = duplicate(loaded)
    with django_assert_num_queries(0):
        twin.save()
    twin.data = "v3"
    twin.save()
    assert twin.version == 3
    # The original still knows its own row: it is now stale, not changed.
    with django_assert_num_queries(0):
        loaded.save()


def test_who_and_why_assigned_after_history_are_recorded():
    user = UserFactory()
    example = ExampleFactory(data="v1", changed_by=user, change_reason="first")
    loaded = list(example.history())[-1]
    loaded.data = "v2"
    loaded.changed_by = user  # the same user: recorded, not taken from changes()
    loaded.change_reason = "first"
    loaded.save()
    current = Example.objects.get(identity=example.identity)
    assert (current.changed_by_id, current.change_reason) == (user.pk, "first")


def test_a_new_changed_by_key_drops_the_user_read_with_the_row():
    first, second = UserFactory(), UserFactory()
    example = ExampleFactory(changed_by=first)
    loaded = example.history().select_related("changed_by").get()
    assert loaded.changed_by == first
    loaded.changed_by_id = second.pk
    assert loaded.changed_by == second


def test_a_referrer_followed_to_a_new_version_saves_with_no_query(
    django_assert_num_queries,
):
    review = Review.objects.get(pk=ReviewFactory().pk)
    item = review.item
    item.name = "renamed"
    item.save()
    assert review.item_id == item.pk  # re-pointed in the database and in memory
    with django_assert_num_queries(0):
        review.save()
    assert review.version == 1
