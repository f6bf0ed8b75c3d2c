"""Set-based writes version rows; history is never rewritten."""

import pytest
from django.db.models import F
from django.db.models.functions import Upper

import versioning
from tests.conftest import data_statements
from tests.factories import (
    DocumentFactory,
    ExampleFactory,
    ItemFactory,
    OrderFactory,
    OrderLineFactory,
    ReviewFactory,
    TagFactory,
    UserFactory,
)
from tests.testapp.models import Document, Example, Item, Order, OrderLine, Review
from versioning.exceptions import HistoricalVersionError, VersioningError

pytestmark = pytest.mark.django_db


def test_update_versions_every_matched_row():
    a, b, c = ItemFactory(price=1), ItemFactory(price=2), ItemFactory(price=3)
    with versioning.changes(user=UserFactory(), reason="price rise"):
        count = Item.objects.filter(price__lt=3).update(price=F("price") * 10)
    assert count == 2
    assert sorted(Item.objects.values_list("price", flat=True)) == [3, 10, 20]
    assert Item.all_versions.count() == 5
    for original in (a, b):
        current = original.current_version()
        assert current.version == 2
        assert current.change_reason == "price rise"
        assert current.changed_by is not None
        previous = current.previous_version()
        assert previous.pk == original.pk
        assert previous.valid_to == current.valid_from
    assert c.current_version().pk == c.pk


def test_update_keeps_unchanged_columns_and_accepts_functions():
    ItemFactory(name="lamp", description="kept", attributes={"a": 1})
    Item.objects.update(name=Upper("name"))
    item = Item.objects.get()
    assert (item.name, item.description, item.attributes) == ("LAMP", "kept", {"a": 1})


def test_update_follows_referrers_and_copies_links():
    item = ItemFactory()
    item.tags.add(TagFactory())
    order, line = OrderFactory(item=item), OrderLineFactory(item=item)
    review = ReviewFactory(item=item)
    Item.objects.filter(pk=item.pk).update(price=5)
    current = item.current_version()
    assert Order.objects.get(pk=order.pk).item_id == current.pk
    assert OrderLine.objects.get(pk=line.pk).item_id == item.pk  # pinned
    assert Review.objects.get(identity=review.identity).item_id == current.pk
    assert current.tags.count() == 1 and item.tags.count() == 1


def test_update_statement_count_is_per_batch_not_per_row(django_assert_num_queries):
    for _ in range(20):
        ExampleFactory()
    # select pks, close, insert ... select (plus the savepoint pair)
    with django_assert_num_queries(5) as captured:
        assert Example.objects.update(data="same for all") == 20
    assert len(data_statements(captured.captured_queries)) == 3


def test_update_of_a_uuid_keyed_model():
    doc = DocumentFactory(title="a")
    Document.objects.update(title="b")
    current = Document.objects.get()
    assert (current.title, current.version) == ("b", 2)
    assert current.pk != doc.pk


def test_update_refuses_bookkeeping_fields():
    ExampleFactory()
    with pytest.raises(VersioningError, match="managed by versioning"):
        Example.objects.update(version=7)
    with pytest.raises(VersioningError, match="managed by versioning"):
        Example.objects.update(valid_to=None)
    assert Example.all_versions.count() == 1


def test_bulk_update_versions_changed_objects_only():
    items = [ItemFactory(price=1) for _ in range(3)]
    items[0].price = 7
    items[1].price = 8
    assert Item.objects.bulk_update(items, ["price"]) == 2
    assert sorted(Item.objects.values_list("price", flat=True)) == [1, 7, 8]
    assert [i.version for i in items] == [2, 2, 1]
    items[0].price = 9
    items[0].save()  # the objects became the new versions
    assert items[0].version == 3


def test_bulk_update_refuses_historical_objects():
    item = ItemFactory()
    old = Item.objects.get(pk=item.pk)
    item.price = 3
    item.save()
    old = Item.all_versions.get(pk=old.pk)
    old.price = 4
    with pytest.raises(HistoricalVersionError):
        Item.objects.bulk_update([old], ["price"])


def test_bulk_create_makes_version_1_rows_with_fresh_identities():
    alice = UserFactory()
    with versioning.changes(user=alice, reason="import"):
        created = Example.objects.bulk_create([Example(data="a"), Example(data="b")])
    assert {
        (e.version, e.changed_by_id, e.change_reason) for e in Example.objects.all()
    } == {(1, alice.pk, "import")}
    assert created[0].identity != created[1].identity


def test_queryset_delete_closes_rows():
    keep, gone = ExampleFactory(data="keep"), ExampleFactory(data="gone")
    assert Example.objects.filter(data="gone").delete() == (1, {"testapp.Example": 1})
    assert list(Example.objects.all()) == [keep]
    assert Example.all_versions.get(pk=gone.pk).valid_to is not None


def test_all_versions_refuses_update_and_delete():
    ExampleFactory()
    with pytest.raises(HistoricalVersionError, match="read-only"):
        Example.all_versions.update(data="x")
    with pytest.raises(HistoricalVersionError, match="purge"):
        Example.all_versions.all().delete()
    assert Example.all_versions.get().data != "x"


def test_purge_erases_every_version_and_honours_on_delete():
    item = ItemFactory()
    item.name = "v2"
    item.save()
    keep = ItemFactory()
    line = OrderLineFactory(item=keep)
    count, per_model = item.purge()
    assert per_model["testapp.Item"] == 2
    assert list(Item.all_versions.values_list("pk", flat=True)) == [keep.pk]
    from django.db.models import ProtectedError

    with pytest.raises(ProtectedError):
        Item.all_versions.filter(pk=line.item_id).purge()
    assert Item.all_versions.filter(pk=keep.pk).exists()


def test_update_with_a_filter_across_relations():
    cheap, dear = ItemFactory(price=1), ItemFactory(price=100)
    ReviewFactory(item=cheap, text="great value")
    ReviewFactory(item=dear, text="too dear")
    assert Item.objects.filter(reviews__text="great value").update(price=2) == 1
    assert sorted(Item.objects.values_list("price", flat=True)) == [2, 100]


def test_update_works_in_batches(monkeypatch, django_assert_num_queries):
    from versioning import statements

    monkeypatch.setattr(statements, "BATCH_SIZE", 4)
    for _ in range(10):
        ExampleFactory()
    # per batch of 4: select its keys, close, insert; once: the highest key
    with django_assert_num_queries(3 * 3 + 1 + 2) as captured:
        assert Example.objects.update(data="batched") == 10
    inserts = [s for s in data_statements(captured.captured_queries) if "INSERT" in s]
    assert len(inserts) == 3
    assert set(Example.objects.values_list("data", flat=True)) == {"batched"}
    assert Example.all_versions.count() == 20
    assert set(Example.objects.values_list("version", flat=True)) == {2}


def test_update_in_batches_of_uuid_keyed_rows(monkeypatch):
    from versioning import statements

    monkeypatch.setattr(statements, "BATCH_SIZE", 3)
    for _ in range(7):
        DocumentFactory()
    assert Document.objects.update(title="same") == 7
    assert set(Document.objects.values_list("version", flat=True)) == {2}


def test_update_of_nothing_writes_nothing(django_assert_num_queries):
    ExampleFactory(data="a")
    with django_assert_num_queries(3):  # the pk select inside a savepoint
        assert Example.objects.filter(data="missing").update(data="b") == 0
    assert Example.all_versions.count() == 1


def test_set_based_write_statement_counts(django_assert_num_queries):
    items = [ItemFactory() for _ in range(5)]
    # delete of a model nothing refers to: one close (in a savepoint, since
    # the test runs in a transaction)
    ExampleFactory()
    with django_assert_num_queries(3) as captured:
        Example.objects.all().delete()
    assert len(data_statements(captured.captured_queries)) == 1
    # delete of items, which orders and reviews protect: the matched keys,
    # one close, and one select per protecting key (none found)
    with django_assert_num_queries(6) as captured:
        Item.objects.filter(pk=items[0].pk).delete()
    assert len(data_statements(captured.captured_queries)) == 4
    # bulk_create: one insert
    with django_assert_num_queries(1):
        Example.objects.bulk_create([Example(data=str(n)) for n in range(5)])
    # bulk_update of 3 items: close, insert ... select, 2 referrer updates,
    # 3 many-to-many copies, then one select adopting the new keys
    for item in items[1:4]:
        item.price = 42
    with django_assert_num_queries(8 + 2):
        assert Item.objects.bulk_update(items[1:4], ["price"]) == 3


def test_purge_statement_count(django_assert_num_queries):
    item = ExampleFactory()
    item.data = "v2"
    item.save()
    # the identities, then one DELETE: nothing refers to Example rows, so
    # Django's collector deletes them without loading them
    with django_assert_num_queries(2) as captured:
        assert item.purge() == (2, {"testapp.Example": 2})
    assert [q["sql"].split()[0] for q in captured.captured_queries] == [
        "SELECT",
        "DELETE",
    ]


def test_deadlocks_become_a_retryable_stale_error():
    from django.db import OperationalError

    from versioning.exceptions import StaleVersionError
    from versioning.writes import stale_on_conflict

    class Deadlock(Exception):
        sqlstate = "40P01"

    error = OperationalError("deadlock detected")
    error.__cause__ = Deadlock()
    with pytest.raises(StaleVersionError, match="run the write again"):
        with stale_on_conflict(Example):
            raise error
    other = OperationalError("disk full")
    with pytest.raises(OperationalError):
        with stale_on_conflict(Example):
            raise other
