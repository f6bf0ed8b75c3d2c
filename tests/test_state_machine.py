"""
A hypothesis state machine drives random creates, edits, set-based updates,
deletes, restores, purges and link changes, and after every step checks the
versioning invariants against an in-memory oracle.
"""

import itertools

import pytest
from django.db import transaction
from django.db.models import F, ProtectedError
from django.utils import timezone
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests.testapp.models import Item, Order, OrderLine, Review, Tag

pytestmark = pytest.mark.django_db

names = itertools.count()


class VersioningMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.atomic = transaction.atomic()
        self.atomic.__enter__()
        self.current = {}  # identity -> {"price": int} for current items
        self.deleted = set()
        self.created = []  # identities in creation order
        self.links = {}  # item pk -> frozenset of tag names, per version
        self.orders = {}  # order pk -> item identity (follows the item)
        self.lines = {}  # order line pk -> item pk (pinned)
        self.reviews = {}  # review identity -> item identity
        # (time, {item identity: price}, {review identity: item identity})
        self.snapshots = []

    def teardown(self):
        transaction.set_rollback(True)
        self.atomic.__exit__(None, None, None)

    @initialize()
    def make_tags(self):
        self.tags = [Tag.objects.create(name=n) for n in ("red", "green", "blue")]
        self.record()

    # helpers ---------------------------------------------------------------

    def record(self):
        moment = timezone.now()
        # A versioned referrer's current row is re-pointed in place, so at
        # any moment it refers to the same object, maybe a newer version; as
        # of a moment when that object was deleted, it refers to nothing.
        review_targets = {
            review: item if item in self.current else None
            for review, item in Review.objects.values_list("identity", "item__identity")
        }
        self.snapshots.append((moment, dict(self.current), review_targets))
        while timezone.now() <= moment:  # the next write happens strictly later
            pass

    def stable(self, identities):
        # Identities are random UUIDs; creation order keeps draws replayable.
        return sorted(identities, key=self.created.index)

    def current_row(self, identity):
        return Item.objects.get(identity=identity)

    def links_of(self, item):
        return frozenset(item.tags.values_list("name", flat=True))

    def remember_links(self, identity):
        item = self.current_row(identity)
        previous = item.previous_version()
        if previous is not None and previous.pk in self.links:
            self.links[item.pk] = self.links[previous.pk]

    # rules -----------------------------------------------------------------

    @rule(price=st.integers(0, 50))
    def create(self, price):
        item = Item.objects.create(name=f"item {next(names)}", price=price)
        self.current[item.identity] = price
        self.created.append(item.identity)
        self.links[item.pk] = frozenset()
        self.record()

    @precondition(lambda self: self.current)
    @rule(data=st.data(), price=st.integers(0, 50))
    def edit(self, data, price):
        identity = data.draw(st.sampled_from(self.stable(self.current)))
        item = self.current_row(identity)
        item.price = price
        item.save()
        if price != self.current[identity]:
            self.links[item.pk] = self.links[item.previous_version().pk]
        self.current[identity] = price
        self.record()

    @precondition(lambda self: self.current)
    @rule(data=st.data(), delta=st.integers(1, 5))
    def bulk_update(self, data, delta):
        chosen = data.draw(
            st.lists(
                st.sampled_from(self.stable(self.current)), min_size=1, unique=True
            )
        )
        Item.objects.filter(identity__in=chosen).update(price=F("price") + delta)
        for identity in chosen:
            self.current[identity] += delta
            self.remember_links(identity)
        self.record()

    @precondition(lambda self: self.current)
    @rule(data=st.data())
    def delete(self, data):
        identity = data.draw(st.sampled_from(self.stable(self.current)))
        if identity in set(self.orders.values()) | set(self.reviews.values()):
            # Orders and reviews protect their item (on_delete=PROTECT); the
            # refused delete leaves this transaction usable.
            with pytest.raises(ProtectedError):
                self.current_row(identity).delete()
            return
        self.current_row(identity).delete()
        del self.current[identity]
        self.deleted.add(identity)
        self.record()

    @precondition(lambda self: self.current or self.deleted)
    @rule(data=st.data())
    def restore(self, data):
        identity = data.draw(
            st.sampled_from(self.stable(set(self.current) | self.deleted))
        )
        versions = list(Item.all_versions.filter(identity=identity).order_by("version"))
        chosen = data.draw(st.sampled_from(versions))
        latest_pk = versions[-1].pk
        restored = chosen.restore()
        # Restoring the data and links the current version has writes nothing.
        if restored.pk != latest_pk:
            self.links[restored.pk] = self.links[chosen.pk]
        self.current[identity] = int(chosen.price)
        self.deleted.discard(identity)
        self.record()

    @precondition(lambda self: self.current)
    @rule(data=st.data(), tag=st.integers(0, 2))
    def tag(self, data, tag):
        identity = data.draw(st.sampled_from(self.stable(self.current)))
        item = self.current_row(identity)
        before = self.links[item.pk]
        item.tags.add(self.tags[tag])  # a new version, if the link is new
        self.links[item.pk] = before | {self.tags[tag].name}
        self.record()

    @precondition(lambda self: self.current)
    @rule(data=st.data())
    def refer(self, data):
        identity = data.draw(st.sampled_from(self.stable(self.current)))
        item = self.current_row(identity)
        order = Order.objects.create(item=item)
        line = OrderLine.objects.create(item=item)
        review = Review.objects.create(item=item, text="ok")
        self.orders[order.pk] = identity
        self.lines[line.pk] = item.pk
        self.reviews[review.identity] = identity
        self.record()

    @precondition(lambda self: self.current or self.deleted)
    @rule(data=st.data())
    def purge(self, data):
        referred = set(self.orders.values()) | set(self.reviews.values())
        referred |= set(
            Item.all_versions.filter(pk__in=self.lines.values()).values_list(
                "identity", flat=True
            )
        )
        free = self.stable((set(self.current) | self.deleted) - referred)
        if not free:
            return
        identity = data.draw(st.sampled_from(free))
        pks = set(
            Item.all_versions.filter(identity=identity).values_list("pk", flat=True)
        )
        Item.all_versions.filter(identity=identity).purge()
        self.current.pop(identity, None)
        self.deleted.discard(identity)
        for pk in pks:
            self.links.pop(pk, None)
        # history at earlier moments no longer has this object
        self.snapshots = [
            (t, {i: p for i, p in items.items() if i != identity}, reviews)
            for t, items, reviews in self.snapshots
        ]
        self.record()

    # invariants ------------------------------------------------------------

    @invariant()
    def one_current_row_and_contiguous_versions(self):
        rows = Item.all_versions.order_by("identity", "version")
        by_identity = {}
        for row in rows:
            by_identity.setdefault(row.identity, []).append(row)
        assert set(by_identity) == set(self.current) | self.deleted
        for identity, versions in by_identity.items():
            assert [v.version for v in versions] == list(range(1, len(versions) + 1))
            open_rows = [v for v in versions if v.valid_to is None]
            assert len(open_rows) == (1 if identity in self.current else 0)
            if open_rows:
                assert open_rows[0] is versions[-1]
            for older, newer in zip(versions, versions[1:], strict=False):
                assert older.valid_to is not None
                assert older.valid_from <= older.valid_to <= newer.valid_from
                assert older.valid_from <= newer.valid_from

    @invariant()
    def current_rows_match_the_oracle(self):
        stored = dict(Item.objects.values_list("identity", "price"))
        assert {i: int(p) for i, p in stored.items()} == self.current

    @invariant()
    def as_of_matches_every_recorded_moment(self):
        for moment, items, review_targets in self.snapshots:
            stored = dict(Item.objects.as_of(moment).values_list("identity", "price"))
            assert {i: int(p) for i, p in stored.items()} == items
            reviews = dict(
                Review.objects.as_of(moment).values_list("identity", "item__identity")
            )
            assert reviews == review_targets

    @invariant()
    def referrers_follow_and_pinned_keys_stay(self):
        for order in Order.objects.all():
            identity = self.orders[order.pk]
            latest = Item.all_versions.filter(identity=identity).order_by("-version")
            if identity in self.current:
                assert order.item_id == self.current_row(identity).pk
            else:
                assert order.item_id in latest.values_list("pk", flat=True)
        for line in OrderLine.objects.all():
            assert line.item_id == self.lines[line.pk]
        for review in Review.objects.all():
            identity = self.reviews[review.identity]
            if identity in self.current:
                assert review.item_id == self.current_row(identity).pk

    @invariant()
    def every_version_keeps_its_links(self):
        for item in Item.all_versions.prefetch_related("tags"):
            assert frozenset(t.name for t in item.tags.all()) == self.links[item.pk]


def test_versioning_invariants_hold_under_random_operations():
    run_state_machine_as_test(
        VersioningMachine,
        settings=settings(max_examples=40, stateful_step_count=15, deadline=None),
    )
