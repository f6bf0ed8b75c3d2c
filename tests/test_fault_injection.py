"""
Make each statement of the write paths fail in turn: nothing is written, the
old row stays current and the Python objects are as they were.
"""

import pytest
from django.db import connection, transaction

from tests.factories import ItemFactory, OrderFactory, ReviewFactory, TagFactory
from tests.testapp.models import Bundle, Item, Order, Review, Supplier, Supply

pytestmark = pytest.mark.django_db

CONTROL = ("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT")


class InjectedFault(Exception):
    pass


class FailOnStatement:
    """An execute wrapper that raises instead of running the k-th data statement."""

    def __init__(self, k):
        self.k = k
        self.seen = 0

    def __call__(self, execute, sql, params, many, context):
        if not sql.upper().startswith(CONTROL):
            if self.seen == self.k:
                self.seen += 1
                raise InjectedFault(sql)
            self.seen += 1
        return execute(sql, params, many, context)


def database_state():
    tables = [
        Item.all_versions.order_by("pk"),
        Review.all_versions.order_by("pk"),
        Order.objects.order_by("pk"),
        Supply.objects.order_by("pk"),
        Item.tags.through.objects.order_by("pk"),
        Bundle.items.through.objects.order_by("pk"),
    ]
    return [list(qs.values_list()) for qs in tables]


def object_state(obj):
    return (
        obj.pk,
        obj.version,
        obj.valid_from,
        obj.valid_to,
        obj.changed_by_id,
        obj.change_reason,
        dict(obj._loaded_values),
    )


def related_world():
    item = ItemFactory(name="lamp", price=10)
    OrderFactory(item=item)
    ReviewFactory(item=item)
    item.tags.add(TagFactory())
    Supply.objects.create(item=item, supplier=Supplier.objects.create(name="s"))
    Bundle.objects.create(name="b").items.add(item)
    return Item.objects.prefetch_related("orders").get(pk=item.pk)


def count_statements(action):
    counter = FailOnStatement(k=-1)
    with transaction.atomic():
        with connection.execute_wrapper(counter):
            action()
        transaction.set_rollback(True)
    return counter.seen


def test_save_path_fails_cleanly_at_every_statement():
    item = related_world()

    def edit():
        item.price = 99
        item.save()

    original_pk = item.pk
    total = count_statements(edit)  # rolled back afterwards; reload
    item = Item.objects.prefetch_related("orders").get(pk=original_pk)
    assert total == 7  # close, insert, 2 referrer updates, 3 link copies
    for k in range(total):
        before_db, before_obj = database_state(), object_state(item)
        held_order = item.orders.all()[0]
        item.price = 99
        with connection.execute_wrapper(FailOnStatement(k)):
            with pytest.raises(InjectedFault):
                item.save()
        assert database_state() == before_db, f"statement {k} left a write behind"
        assert object_state(item) == before_obj
        assert held_order.item_id == item.pk
        assert Item.objects.get(identity=item.identity).pk == item.pk
    item.save()  # and the caller can retry
    assert item.version == 2


def test_update_path_fails_cleanly_at_every_statement():
    related_world()
    ItemFactory(name="other")

    def bulk():
        Item.objects.filter(name="lamp").update(price=99)

    total = count_statements(bulk)
    assert total == 8  # pk select, close, insert, 2 referrer updates, 3 link copies
    for k in range(total):
        before = database_state()
        with connection.execute_wrapper(FailOnStatement(k)):
            with pytest.raises(InjectedFault):
                bulk()
        assert database_state() == before, f"statement {k} left a write behind"
    bulk()
    assert Item.objects.get(name="lamp").version == 2


def test_delete_and_restore_fail_cleanly():
    item = related_world()
    before_db, before_obj = database_state(), object_state(item)
    with connection.execute_wrapper(FailOnStatement(0)):
        with pytest.raises(InjectedFault):
            item.delete()
    assert (database_state(), object_state(item)) == (before_db, before_obj)

    item.price = 1
    item.save()
    old = item.previous_version()
    total = count_statements(old.restore)
    for k in range(total):
        before = database_state()
        with connection.execute_wrapper(FailOnStatement(k)):
            with pytest.raises(InjectedFault):
                old.restore()
        assert database_state() == before
    assert old.restore().version == 3
