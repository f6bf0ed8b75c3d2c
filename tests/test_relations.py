"""The related-field fixup: referrers follow, pins stay, links are copied."""

import pytest
from django.db import connection
from django.db.models import Prefetch

from tests.conftest import data_statements
from tests.factories import (
    ItemFactory,
    OrderFactory,
    OrderLineFactory,
    ReviewFactory,
    TagFactory,
)
from tests.testapp.models import Bundle, Child, Item, Order, OrderLine, Parent, Review

pytestmark = pytest.mark.django_db


def test_plain_foreign_key_follows_the_object():
    order = OrderFactory()
    item = order.item
    old_pk = item.pk
    item.price = 99
    item.save()
    order.refresh_from_db()
    assert order.item_id == item.pk != old_pk
    assert order.item.price == 99


def test_referrers_held_in_a_prefetch_cache_are_updated_in_memory():
    order = OrderFactory()
    item = Item.objects.prefetch_related("orders").get(pk=order.item_id)
    held = item.orders.all()[0]
    item.name = "renamed"
    item.save()
    assert held.item_id == item.pk
    assert held.item is item


def test_one_to_one_referrer_in_memory_and_in_the_database():
    parent = Parent.objects.create(child=Child.objects.create(data="c1"))
    loaded = Parent.objects.select_related("child").get(pk=parent.pk)
    child = loaded.child
    child.data = "c2"
    child.save()
    assert loaded.child_id == child.pk
    assert Parent.objects.get().child_id == child.pk
    assert child.parent is loaded


def test_pinned_key_keeps_its_version():
    line = OrderLineFactory()
    item = line.item
    sold_at = item.pk
    item.price = 1000
    item.save()
    line.refresh_from_db()
    assert line.item_id == sold_at
    assert line.item.version == 1
    assert OrderLine.objects.filter(item=item).count() == 0


def test_pinned_key_form_field_shows_the_version():
    line = OrderLineFactory()
    field = OrderLine._meta.get_field("item").formfield()
    assert field.label_from_instance(line.item) == f"{line.item} (version 1)"


def test_a_form_keeps_a_line_pinned_to_an_old_version():
    from django.forms import modelform_factory

    line = OrderLineFactory()
    item = line.item
    item.price = 5
    item.save()
    form = modelform_factory(OrderLine, fields=["item"])(
        data={"item": line.item_id}, instance=line
    )
    assert form.is_valid(), form.errors
    assert form.save().item_id == line.item_id
    labels = sorted(label for _, label in form.fields["item"].choices if _)
    assert labels == [f"{item} (version 1)", f"{item} (version 2)"]


def test_versioned_referrer_is_repointed_in_place_without_a_new_version():
    review = ReviewFactory(text="old text")
    review.text = "new text"
    review.save()  # review version 2 points at item v1; review v1 too
    item = Item.objects.get()
    first_item_pk = item.pk
    item.name = "renamed"
    item.save()

    current = Review.objects.get()
    assert (current.version, current.item_id) == (2, item.pk)
    old_review = Review.all_versions.get(version=1)
    assert old_review.item_id == first_item_pk
    assert Review.all_versions.count() == 2
    # as_of on the referrer still returns what it pointed at then
    then = Review.objects.as_of(old_review.valid_from).get()
    assert then.item_id == first_item_pk


def test_in_memory_versioned_referrer_can_still_be_saved():
    review = ReviewFactory()
    item = Item.objects.prefetch_related("reviews").get(pk=review.item_id)
    held = item.reviews.all()[0]
    item.name = "renamed"
    item.save()
    held.text = "edited after the fixup"
    held.save()
    assert Review.objects.get().item_id == item.pk
    assert held.version == 2


def test_links_are_copied_by_the_declaring_side_and_repointed_on_the_other():
    item = ItemFactory()
    red, blue = TagFactory(name="red"), TagFactory(name="blue")
    item.tags.set([red, blue])
    bundle = Bundle.objects.create(name="b")
    bundle.items.add(item)
    old_pk = item.pk

    item.name = "renamed"
    item.save()

    old = Item.all_versions.get(pk=old_pk)
    assert sorted(t.name for t in item.tags.all()) == ["blue", "red"]
    assert sorted(t.name for t in old.tags.all()) == ["blue", "red"]
    assert list(bundle.items.all()) == [item]
    # The bundle (a plain model) declares its links: re-pointed, not copied.
    assert list(Bundle.items.through.objects.values_list("item_id", flat=True)) == [
        item.pk
    ]
    # the old version keeps its own links
    item.tags.remove(red)
    assert sorted(t.name for t in old.tags.all()) == ["blue", "red"]
    assert [t.name for t in item.tags.all()] == ["blue"]


def test_fixup_costs_one_statement_per_referrer_relation(django_assert_num_queries):
    item = ItemFactory()
    OrderFactory(item=item)
    item.name = "renamed"
    # close and insert (one statement on PostgreSQL), then one UPDATE per
    # referring key (orders, reviews) and one INSERT ... SELECT per
    # many-to-many table (tags, suppliers, bundles).
    one_statement = connection.vendor == "postgresql"
    with django_assert_num_queries(8 if one_statement else 9) as captured:
        item.save()
    assert len(data_statements(captured.captured_queries)) == (
        6 if one_statement else 7
    )


def test_failed_save_undoes_in_memory_fixups():
    from django.db.models.signals import post_save

    parent = Parent.objects.create(child=Child.objects.create(data="c1"))
    child = parent.child
    old_pk = child.pk

    def fail(**kwargs):
        raise RuntimeError("boom")

    post_save.connect(fail, sender=Child)
    try:
        child.data = "c2"
        with pytest.raises(RuntimeError):
            child.save()
    finally:
        post_save.disconnect(fail, sender=Child)
    assert parent.child_id == old_pk
    assert Parent.objects.get().child_id == old_pk
    assert Child.all_versions.count() == 1


def test_prefetched_and_plain_referrers_agree_after_many_edits():
    item = ItemFactory()
    orders = [OrderFactory(item=item) for _ in range(3)]
    for n in range(3):
        item.price = n
        item.save()
    assert set(Order.objects.values_list("item_id", flat=True)) == {item.pk}
    assert (
        len(orders)
        == Item.objects.prefetch_related(Prefetch("orders")).get().orders.count()
    )


def test_explicit_through_rows_are_copied_with_their_extra_columns():
    from tests.testapp.models import Supplier, Supply

    item = ItemFactory()
    acme = Supplier.objects.create(name="acme")
    Supply.objects.create(item=item, supplier=acme, cost=3)
    old_pk = item.pk
    item.price = 11
    item.save()
    assert list(item.suppliers.all()) == [acme]
    assert Supply.objects.get(item=item).cost == 3
    assert Supply.objects.get(item_id=old_pk).cost == 3


def test_explicit_through_with_uuid_keys_declared_elsewhere():
    from tests.factories import DocumentFactory
    from tests.testapp.models import Document, Placement, Shelf

    doc = DocumentFactory()
    shelf = Shelf.objects.create(name="top")
    Placement.objects.create(shelf=shelf, document=doc, position=4)
    old_pk = doc.pk
    doc.title = "retitled"
    doc.save()
    assert list(shelf.documents.all()) == [doc]
    assert Placement.objects.get(document=doc).position == 4
    assert not Placement.objects.filter(document_id=old_pk).exists()  # re-pointed
    Document.objects.filter(pk=doc.pk).update(title="again")
    current = doc.current_version()
    assert Placement.objects.get(document=current).position == 4
    assert Placement.objects.count() == 1


def test_generic_foreign_keys_keep_the_version_they_were_set_to():
    from tests.testapp.models import Note

    item = ItemFactory(name="first name")
    note = Note.objects.create(target=item, text="about the first name")
    item.name = "second name"
    item.save()
    note = Note.objects.get(pk=note.pk)
    assert note.target.name == "first name"
    assert note.target.version == 1


def test_a_referrer_that_reached_the_object_through_its_key_follows_in_memory():
    item = ItemFactory(price=1)
    order = Order.objects.create(item=item)
    order.item.price = 2
    order.item.save()
    assert order.item_id == order.item.pk == item.pk
    order.quantity = 3
    order.save()  # does not write the old key back
    assert Order.objects.get().item_id == Item.objects.get().pk


def test_a_lazily_loaded_target_moves_its_referrer_too():
    OrderFactory()
    order = Order.objects.get()
    first = order.item_id
    order.item.name = "renamed"
    order.item.save()
    assert order.item_id != first and order.item_id == Item.objects.get().pk
    order.save()
    assert Order.objects.get().item_id == order.item_id


def test_remembering_referrers_does_not_break_pickling_or_pinned_keys():
    import pickle

    line = OrderLineFactory()
    item = line.item
    item.price = 50
    item.save()
    assert line.item_id == item.previous_version().pk  # pinned: unmoved in memory too
    assert line.item.price == 10 and line.item.version == 1  # and shows its version
    order = Order.objects.create(item=item)
    copy = pickle.loads(pickle.dumps(order.item))
    assert copy.pk == item.pk and copy.price == 50
