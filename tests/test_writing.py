"""Single-object writes."""

import datetime
from unittest import mock

import pytest
from django.db import connection, transaction
from django.db.models.signals import post_save
from django.utils import timezone

from tests.conftest import data_statements
from tests.factories import DocumentFactory, ExampleFactory, ItemFactory
from tests.testapp.models import Document, Example, Item
from versioning.exceptions import HistoricalVersionError, StaleVersionError
from versioning.signals import version_created

pytestmark = pytest.mark.django_db


def test_create_inserts_version_1_with_a_fresh_identity(versioned_factory):
    factory, _ = versioned_factory
    obj = factory()
    other = factory()
    assert obj.version == 1
    assert obj.valid_to is None
    assert obj.valid_from <= timezone.now()
    assert obj.identity != other.identity
    assert obj.is_current


def test_saving_a_change_makes_the_same_object_the_next_version(versioned_factory):
    factory, field = versioned_factory
    obj = factory()
    first_pk, identity = obj.pk, obj.identity

    setattr(obj, field, "second")
    obj.save()

    assert obj.pk != first_pk
    assert (obj.version, obj.identity) == (2, identity)
    old = type(obj).all_versions.get(pk=first_pk)
    assert old.valid_to == obj.valid_from
    assert getattr(old, field) != "second"

    setattr(obj, field, "third")
    obj.save()
    assert obj.version == 3
    assert [getattr(v, field) for v in obj.history()][1:] == ["second", "third"]


def test_changed_save_issues_exactly_a_close_and_an_insert(django_assert_num_queries):
    obj = ExampleFactory()
    obj.data = "changed"
    # Inside the test transaction: PostgreSQL closes and inserts in one
    # statement, with no savepoint at READ COMMITTED; SQLite's two statements
    # run in a savepoint of their own.
    if connection.vendor == "postgresql":
        with django_assert_num_queries(1) as captured:
            obj.save()
        (statement,) = data_statements(captured.captured_queries)
        assert statement.startswith("WITH closed AS (UPDATE")
        assert ") INSERT INTO" in statement
        return
    with django_assert_num_queries(4) as captured:
        obj.save()
    statements = data_statements(captured.captured_queries)
    assert len(statements) == 2
    assert statements[0].startswith("UPDATE")
    assert statements[1].startswith("INSERT")


def test_save_without_changes_writes_nothing(
    django_assert_num_queries, versioned_factory
):
    factory, _ = versioned_factory
    obj = type(factory()).objects.get()
    with django_assert_num_queries(0):
        obj.save()
    assert type(obj).all_versions.count() == 1


def test_setting_a_field_and_setting_it_back_is_not_a_change(django_assert_num_queries):
    obj = Example.objects.get(pk=ExampleFactory(data="same").pk)
    obj.data = "other"
    obj.data = "same"
    with django_assert_num_queries(0):
        obj.save()


def test_setting_a_field_to_null_is_a_change():
    doc = Document.objects.get(pk=DocumentFactory(summary="short").pk)
    doc.summary = None
    doc.save()
    assert doc.version == 2
    assert Document.objects.get().summary is None
    doc.summary = "back"
    doc.save()
    assert doc.version == 3


def test_changing_only_who_or_why_is_not_a_new_version(django_assert_num_queries):
    obj = Example.objects.get(pk=ExampleFactory().pk)
    obj.change_reason = "no data changed"
    with django_assert_num_queries(0):
        obj.save()
    assert obj.version == 1


def test_mutating_a_json_value_in_place_is_a_change():
    item = Item.objects.get(pk=ItemFactory(attributes={"colour": "red"}).pk)
    item.attributes["colour"] = "blue"
    item.save()
    assert item.version == 2
    assert item.previous_version().attributes == {"colour": "red"}


def test_deferred_fields_are_carried_into_the_new_version():
    created = ItemFactory(description="long text that was not loaded", price=5)
    item = Item.objects.only("name").get(pk=created.pk)
    item.name = "renamed"
    item.save()
    new = Item.objects.get(identity=created.identity)
    assert (new.version, new.name) == (2, "renamed")
    assert new.description == "long text that was not loaded"
    assert new.price == 5


def test_deferred_field_loaded_later_is_not_a_change(django_assert_num_queries):
    created = ItemFactory(description="d")
    item = Item.objects.defer("description").get(pk=created.pk)
    assert item.description == "d"  # loads it
    with django_assert_num_queries(0):
        item.save()


def test_update_fields_still_makes_a_complete_version():
    item = ItemFactory(name="a", description="kept")
    item.name = "b"
    item.description = "also changed"
    item.save(update_fields=["name"])
    new = Item.objects.get(identity=item.identity)
    assert (new.version, new.name, new.description) == (2, "b", "also changed")


def test_stale_save_raises_and_writes_nothing():
    created = ExampleFactory(data="v1")
    mine = Example.objects.get(pk=created.pk)
    theirs = Example.objects.get(pk=created.pk)
    theirs.data = "theirs"
    theirs.save()

    mine.data = "mine"
    with pytest.raises(StaleVersionError, match="no longer current"):
        mine.save()
    assert list(
        Example.all_versions.order_by("version").values_list("data", flat=True)
    ) == [
        "v1",
        "theirs",
    ]
    assert (mine.pk, mine.version) == (created.pk, 1)


def test_save_after_someone_deleted_it_is_stale():
    created = ExampleFactory()
    mine = Example.objects.get(pk=created.pk)
    Example.objects.get(pk=created.pk).delete()
    mine.data = "too late"
    with pytest.raises(StaleVersionError):
        mine.save()
    assert Example.objects.count() == 0


def test_historical_rows_are_read_only():
    obj = ExampleFactory(data="v1")
    obj.data = "v2"
    obj.save()
    old = obj.previous_version()
    old.data = "rewrite history"
    with pytest.raises(HistoricalVersionError):
        old.save()
    with pytest.raises(HistoricalVersionError):
        old.delete()
    assert Example.all_versions.get(pk=old.pk).data == "v1"


def test_failed_save_leaves_the_object_as_it_was():
    obj = ExampleFactory(data="v1")
    pk, valid_from = obj.pk, obj.valid_from

    def fail(**kwargs):
        raise RuntimeError("receiver failed")

    obj.data = "v2"
    post_save.connect(fail, sender=Example)
    try:
        with pytest.raises(RuntimeError):
            obj.save()
    finally:
        post_save.disconnect(fail, sender=Example)
    assert (obj.pk, obj.version, obj.valid_from, obj.valid_to) == (
        pk,
        1,
        valid_from,
        None,
    )
    assert Example.all_versions.count() == 1
    assert Example.objects.get().data == "v1"
    obj.save()  # the caller can retry
    assert obj.version == 2


def test_failed_insert_leaves_the_object_as_it_was():
    obj = ExampleFactory(data="v1")
    pk = obj.pk
    obj.data = "v2"
    with (
        mock.patch.object(
            Example, "_do_insert", side_effect=RuntimeError("insert failed")
        ),
        pytest.raises(RuntimeError),
        transaction.atomic(),  # as for a plain save(), which the error spoils
    ):
        obj.save()
    assert (obj.pk, obj.version, obj.data) == (pk, 1, "v2")
    assert Example.objects.get().pk == pk


def test_failed_first_save_leaves_the_object_unsaved():
    obj = Example(data="new")
    with (
        mock.patch.object(
            Example, "_do_insert", side_effect=RuntimeError("insert failed")
        ),
        pytest.raises(RuntimeError),
    ):
        obj.save()
    assert obj.pk is None
    assert obj._state.adding
    obj.save()
    assert obj.version == 1


def test_explicit_pk_of_an_existing_row_never_overwrites_it():
    from django.db import IntegrityError

    obj = ExampleFactory(data="kept")
    with pytest.raises(IntegrityError), transaction.atomic():
        Example(pk=obj.pk, data="overwrite").save()
    assert Example.all_versions.get(pk=obj.pk).data == "kept"


def test_post_save_says_created_false_for_a_new_version():
    calls = []

    def record(sender, instance, created, **kwargs):
        calls.append((instance.version, created))

    post_save.connect(record, sender=Example)
    try:
        obj = ExampleFactory()
        obj.data = "changed"
        obj.save()
    finally:
        post_save.disconnect(record, sender=Example)
    assert calls == [(1, True), (2, False)]


def test_version_created_is_sent_with_the_closed_row():
    received = []

    def record(sender, instance, previous, **kwargs):
        received.append(
            (
                sender,
                instance.version,
                previous.version,
                previous.data,
                previous.valid_to,
            )
        )

    version_created.connect(record)
    try:
        obj = ExampleFactory(data="v1")
        obj.data = "v2"
        obj.save()
    finally:
        version_created.disconnect(record)
    assert received == [(Example, 2, 1, "v1", obj.valid_from)]


def test_delete_closes_the_current_version_and_keeps_history():
    obj = ExampleFactory(data="v1")
    obj.data = "v2"
    obj.save()
    count, per_model = obj.delete()
    assert (count, per_model) == (1, {"testapp.Example": 1})
    assert not Example.objects.exists()
    assert Example.all_versions.count() == 2
    assert [v.data for v in obj.history()] == ["v1", "v2"]
    assert obj.current_version() is None
    assert obj.valid_to is not None and not obj.is_current


def test_restore_makes_old_data_current_as_a_new_version():
    obj = ExampleFactory(data="v1")
    obj.data = "v2"
    obj.save()
    restored = obj.previous_version().restore()
    assert (restored.version, restored.data) == (3, "v1")
    assert Example.objects.get().pk == restored.pk
    assert [v.data for v in obj.history()] == ["v1", "v2", "v1"]


def test_restore_after_delete_brings_the_object_back():
    obj = ExampleFactory(data="v1")
    obj.delete()
    restored = Example.all_versions.get(pk=obj.pk).restore()
    assert restored.is_current and restored.version == 2
    assert restored.valid_from >= obj.valid_to
    assert Example.objects.get().data == "v1"


def test_restoring_the_current_version_writes_nothing():
    obj = ExampleFactory()
    assert obj.restore().pk == obj.pk
    assert Example.all_versions.count() == 1


def test_valid_from_never_decreases_when_the_clock_steps_back():
    obj = ExampleFactory()
    earlier = obj.valid_from - datetime.timedelta(hours=1)
    obj.data = "changed"
    with mock.patch("django.utils.timezone.now", return_value=earlier):
        obj.save()
    previous = obj.previous_version()
    assert obj.valid_from >= previous.valid_from
    assert previous.valid_to == obj.valid_from


def test_intervals_are_contiguous_half_open():
    obj = ExampleFactory()
    for n in range(4):
        obj.data = f"edit {n}"
        obj.save()
    versions = list(obj.history())
    assert [v.version for v in versions] == [1, 2, 3, 4, 5]
    for older, newer in zip(versions, versions[1:], strict=False):
        assert older.valid_to == newer.valid_from
        assert older.valid_from <= older.valid_to
    assert versions[-1].valid_to is None


def test_uuid_primary_key_gets_a_new_key_per_version():
    doc = DocumentFactory(title="a")
    first = doc.pk
    doc.title = "b"
    doc.save()
    assert doc.pk != first
    assert Document.all_versions.filter(identity=doc.identity).count() == 2


def test_nested_in_an_outer_transaction_a_stale_error_keeps_it_usable():
    obj = ExampleFactory()
    stale = Example.objects.get(pk=obj.pk)
    obj.data = "first"
    obj.save()
    with transaction.atomic():
        stale.data = "second"
        with pytest.raises(StaleVersionError):
            stale.save()
        ExampleFactory(data="still works")
    assert Example.objects.filter(data="still works").exists()
