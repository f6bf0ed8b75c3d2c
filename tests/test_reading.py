"""Reading current rows, history and the past."""

import datetime

import pytest
from django.shortcuts import get_object_or_404
from django.utils import timezone

from tests.conftest import edited
from tests.factories import ExampleFactory, ItemFactory, ReviewFactory
from tests.testapp.models import Example, Item
from versioning.exceptions import VersioningError

pytestmark = pytest.mark.django_db


def test_objects_sees_current_versions_only():
    obj = edited(ExampleFactory(data="v1"), "data", "v2", "v3")
    assert list(Example.objects.values_list("data", flat=True)) == ["v3"]
    assert Example.all_versions.count() == 3
    assert Example._default_manager is Example.objects
    assert get_object_or_404(Example, identity=obj.identity).pk == obj.pk


def test_reverse_relations_see_current_rows_only():
    review = ReviewFactory(text="first")
    edited(review, "text", "second")
    assert list(review.item.reviews.values_list("text", flat=True)) == ["second"]


def test_as_of_returns_what_was_current_then():
    obj = ExampleFactory(data="v1")
    other = ExampleFactory(data="other")
    after_v1 = other.valid_from
    edited(obj, "data", "v2")
    after_v2 = obj.valid_from
    other.delete()

    at_v1 = Example.objects.as_of(after_v1)
    assert sorted(at_v1.values_list("data", flat=True)) == ["other", "v1"]
    assert sorted(Example.objects.as_of(after_v2).values_list("data", flat=True)) == [
        "other",
        "v2",
    ]
    assert list(
        Example.objects.as_of(timezone.now()).values_list("data", flat=True)
    ) == ["v2"]
    before = obj.history().first().valid_from - datetime.timedelta(seconds=1)
    assert not Example.objects.as_of(before).exists()
    # chainable
    assert Example.objects.as_of(after_v1).filter(data="v1").get().version == 1


def test_as_of_refuses_naive_datetimes_and_dates():
    with pytest.raises(ValueError, match="aware"):
        Example.objects.as_of(datetime.datetime(2026, 1, 1))
    with pytest.raises(TypeError, match="datetime"):
        Example.objects.as_of(datetime.date(2026, 1, 1))


def test_as_of_after_filtering_current_rows_says_how_to_call_it():
    with pytest.raises(VersioningError, match=r"objects.as_of\(when\).filter"):
        Example.objects.filter(data="x").as_of(timezone.now())


def test_history_is_every_version_oldest_first():
    obj = edited(ExampleFactory(data="v1"), "data", "v2", "v3")
    ExampleFactory(data="unrelated")
    assert [(v.version, v.data) for v in obj.history()] == [
        (1, "v1"),
        (2, "v2"),
        (3, "v3"),
    ]
    # works from any version
    first = obj.history().first()
    assert first.history().count() == 3


def test_neighbours_and_current_version():
    obj = edited(ExampleFactory(data="v1"), "data", "v2", "v3")
    v1, v2, v3 = obj.history()
    assert v2.previous_version().pk == v1.pk
    assert v2.next_version().pk == v3.pk
    assert v1.previous_version() is None
    assert v3.next_version() is None
    assert v1.current_version().pk == v3.pk
    assert not v1.is_current and v3.is_current


def test_current_version_is_none_after_delete():
    obj = ExampleFactory()
    obj.delete()
    assert Example.all_versions.get().current_version() is None


def test_diff_lists_the_fields_that_differ():
    item = ItemFactory(name="lamp", price=10, description="d")
    item.price = 12
    item.description = "new"
    item.save()
    old = item.previous_version()
    assert old.diff(item) == {
        "price": (old.price, item.price),
        "description": ("d", "new"),
    }
    assert item.diff(item) == {}
    with pytest.raises(TypeError, match="two versions of one Item"):
        item.diff(ExampleFactory())


def test_objects_is_the_default_for_forms_and_related_managers():
    item = ItemFactory()
    item.name = "renamed"
    item.save()
    assert Item._default_manager.count() == 1


def test_a_model_without_its_own_str_names_identity_and_version():
    from versioning.models import Versioned

    review = ReviewFactory()
    assert Versioned.__str__(review) == f"review {str(review.identity)[:8]} v1"
