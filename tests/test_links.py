"""
Many-to-many links are versions of the model that declares them (DESIGN.md
section 6): add()/remove()/set()/clear(), from either side, make one new
version of each versioned declaring object whose links change, per call; the
other side is never versioned; a historical row's links are read-only;
fixtures are written as given; forms, the admin, history(), diff(), restore(),
the history command and as_of() all see links.

Parametrized over the relation kinds of the test app:

- ``tags``: versioned declaring -> plain target (Item.tags -> Tag)
- ``glasses``: versioned -> versioned (WineDrinker.glasses -> Wine)
- ``bundles``: plain declaring -> versioned (Bundle.items -> Item)
- ``suppliers``: explicit through with data (Item.suppliers through Supply)
- ``shelves``: explicit through on a plain model -> versioned (Shelf.documents)
"""

import datetime
import json
from dataclasses import dataclass, field
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.db.models.signals import m2m_changed
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from tests.conftest import data_statements, item_form_data, messages_of
from tests.factories import DocumentFactory, ItemFactory, TagFactory
from tests.testapp.models import (
    Bundle,
    Document,
    Item,
    Placement,
    Shelf,
    Supplier,
    Supply,
    Tag,
    Wine,
    WineDrinker,
)
from versioning.exceptions import HistoricalVersionError, StaleVersionError
from versioning.forms import (
    LOADED_VERSION_FIELD,
    REASON_FIELD,
    versionedmodelform_factory,
)
from versioning.links import Links, link_key
from versioning.signals import version_created
from versioning.tracking import is_versioned

pytestmark = pytest.mark.django_db


# The relation kinds -------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    id: str
    declaring: Any
    target: Any
    forward: str  # the ManyToManyField on the declaring model
    reverse: str  # its related_name on the target
    through_defaults: dict = field(default_factory=dict)

    @property
    def field(self):
        return self.declaring._meta.get_field(self.forward)

    @property
    def through(self):
        return self.field.remote_field.through

    @property
    def source(self):
        """The through table's key to the declaring row."""
        return self.through._meta.get_field(self.field.m2m_field_name()).attname

    @property
    def destination(self):
        """The through table's key to the target row."""
        return self.through._meta.get_field(self.field.m2m_reverse_field_name()).attname

    @property
    def extra(self):
        """The through table's own data column, if any."""
        return next(iter(self.through_defaults), None)

    @property
    def declaring_versioned(self):
        return is_versioned(self.declaring)

    @property
    def target_versioned(self):
        return is_versioned(self.target)

    @property
    def options(self):
        """through_defaults for add()/set()/create(), where the through has data."""
        return {"through_defaults": self.through_defaults} if self.extra else {}

    def owner(self, name):
        return make(self.declaring, name)

    def target_object(self, name):
        return make(self.target, name)

    def targets(self, *names):
        return [self.target_object(name) for name in names]

    def owners(self, *names):
        return [self.owner(name) for name in names]


def label_field(model):
    return "title" if model is Document else "name"


def make(model, name):
    if model is Item:
        return ItemFactory(name=name)
    if model is Tag:
        return TagFactory(name=name)
    if model is Document:
        return DocumentFactory(title=name)
    return model.objects.create(name=name)


KINDS = {
    kind.id: kind
    for kind in [
        Kind("tags", Item, Tag, "tags", "items"),
        Kind("glasses", WineDrinker, Wine, "glasses", "drinkers"),
        Kind("bundles", Bundle, Item, "items", "bundles"),
        Kind(
            "suppliers",
            Item,
            Supplier,
            "suppliers",
            "items",
            {"cost": Decimal("2.50")},
        ),
        Kind("shelves", Shelf, Document, "documents", "shelves", {"position": 3}),
    ]
}
VERSIONED_DECLARING = [k for k, kind in KINDS.items() if kind.declaring_versioned]
PLAIN_DECLARING = [k for k, kind in KINDS.items() if not kind.declaring_versioned]
VERSIONED_TARGET = [k for k, kind in KINDS.items() if kind.target_versioned]
WITH_THROUGH_DATA = [k for k, kind in KINDS.items() if kind.extra]


@pytest.fixture(params=list(KINDS))
def kind(request):
    return KINDS[request.param]


@pytest.fixture(params=VERSIONED_DECLARING)
def versioned_kind(request):
    return KINDS[request.param]


# Helpers --------------------------------------------------------------------------


class Rollback(Exception):
    pass


def name_of(obj):
    return getattr(obj, label_field(type(obj)))


def names(objs):
    return sorted(name_of(obj) for obj in objs)


def forward(kind, owner):
    """A fresh forward manager (Django's managers remember the owner's key)."""
    return getattr(owner, kind.forward)


def backward(kind, target):
    return getattr(target, kind.reverse)


def rows(model):
    manager = model.all_versions if is_versioned(model) else model.objects
    return list(manager.order_by("pk").values_list())


def state(kind):
    """Every row of the declaring, target and through tables."""
    return {m._meta.label: rows(m) for m in (kind.declaring, kind.target, kind.through)}


def link_rows(kind, row):
    """The through rows of one declaring row, exactly as stored."""
    return kind.through.objects.filter(**{kind.source: row.pk})


def row_links(kind, row):
    """Names of what one declaring row (one version) links to, as stored."""
    pks = link_rows(kind, row).values_list(kind.destination, flat=True)
    return names(kind.target._base_manager.filter(pk__in=list(pks)))


def link_history(kind, owner):
    """The links of each version of ``owner``, oldest first."""
    return [row_links(kind, version) for version in owner.history()]


def versions(obj):
    """How many versions ``obj`` has; None for a plain model."""
    if not is_versioned(type(obj)):
        return None
    return type(obj).all_versions.filter(identity=obj.identity).count()


def current(obj):
    """The current row of ``obj`` as stored (itself for a plain model)."""
    if not is_versioned(type(obj)):
        return type(obj).objects.get(pk=obj.pk)
    return type(obj).objects.get(identity=obj.identity)


def historical(obj):
    """Give ``obj`` a new version and return the version it replaced."""
    name = label_field(type(obj))
    setattr(obj, name, getattr(obj, name) + " (edited)")
    obj.save()
    return obj.previous_version()


def added_and_removed(old, new, field_name):
    """Names added and removed between two versions, from diff()."""
    before, after = old.diff(new)[field_name]
    assert isinstance(before, Links)
    assert isinstance(after, Links)
    added = names(obj for obj in after.objects if link_key(obj) not in before)
    removed = names(obj for obj in before.objects if link_key(obj) not in after)
    return added, removed


def writes_in(captured, kind=None):
    """
    The statements that may change rows. Django's own remove() and clear()
    of a plain declaring model always send a DELETE, which matches nothing
    when no link is there: those count by their effect (the tables' state).
    """
    reads = (
        ("SELECT",)
        if kind is None or kind.declaring_versioned
        else ("SELECT", "DELETE")
    )
    return [
        sql
        for sql in data_statements(captured)
        if not sql.lstrip().upper().startswith(reads)
    ]


# One version per call ---------------------------------------------------------------


def test_each_forward_call_is_one_version_of_the_declaring_object(kind):
    owner = kind.owner("owner")
    a, b, c = kind.targets("a", "b", "c")

    forward(kind, owner).add(a, b, **kind.options)
    forward(kind, owner).set([b, c], **kind.options)
    forward(kind, owner).remove(b)
    forward(kind, owner).clear()

    if kind.declaring_versioned:
        assert owner.version == 5
        assert owner.is_current
        assert owner.pk == current(owner).pk
        assert link_history(kind, owner) == [[], ["a", "b"], ["b", "c"], ["c"], []]
    else:
        assert versions(owner) is None
        assert row_links(kind, owner) == []
    # The other side is never versioned, and its objects in hand stay current.
    for target in (a, b, c):
        assert versions(target) in (None, 1)
        assert current(target).pk == target.pk


def test_each_reverse_call_versions_each_declaring_object_whose_links_change(kind):
    target = kind.target_object("t")
    one, two, three = kind.owners("one", "two", "three")

    backward(kind, target).add(one, two, **kind.options)
    if kind.declaring_versioned:
        assert (one.version, two.version, three.version) == (2, 2, 1)
        assert one.pk == current(one).pk and two.pk == current(two).pk
    assert names(backward(kind, target).all()) == ["one", "two"]

    # one loses its link (loaded by the manager: only its stored row moves on),
    # two keeps it (untouched), three gains it.
    backward(kind, target).set([two, three], **kind.options)
    assert names(backward(kind, target).all()) == ["three", "two"]
    if kind.declaring_versioned:
        assert [versions(one), versions(two), versions(three)] == [3, 2, 2]
        assert two.pk == current(two).pk and three.pk == current(three).pk

    backward(kind, target).remove(two)
    backward(kind, target).clear()
    assert list(backward(kind, target).all()) == []
    if kind.declaring_versioned:
        assert [versions(one), versions(two), versions(three)] == [3, 3, 3]
        assert link_history(kind, one) == [[], ["t"], []]
        assert link_history(kind, two) == [[], ["t"], []]
        assert link_history(kind, three) == [[], ["t"], []]
        assert two.is_current and two.pk == current(two).pk
    else:
        assert [versions(one), versions(two), versions(three)] == [None] * 3
    # The object the reverse manager belongs to is never versioned.
    assert versions(target) in (None, 1)
    assert current(target).pk == target.pk


def test_primary_keys_instead_of_objects_make_one_version_per_call(kind):
    owner = kind.owner("owner")
    a, b, c = kind.targets("a", "b", "c")

    forward(kind, owner).add(a.pk, b.pk, **kind.options)
    forward(kind, owner).set([b.pk, c.pk], **kind.options)
    forward(kind, owner).remove(c.pk)
    assert names(forward(kind, owner).all()) == ["b"]
    if kind.declaring_versioned:
        assert link_history(kind, owner) == [[], ["a", "b"], ["b", "c"], ["b"]]

    other = kind.owner("other")
    backward(kind, a).add(other.pk, **kind.options)
    backward(kind, b).remove(owner.pk)
    assert names(backward(kind, a).all()) == ["other"]
    assert list(backward(kind, b).all()) == []
    if kind.declaring_versioned:
        assert link_history(kind, current(other)) == [[], ["a"]]
        assert versions(owner) == 5
    for target in (a, b, c):
        assert versions(target) in (None, 1)


def test_create_on_the_forward_manager_is_one_version(kind):
    owner = kind.owner("owner")
    created = forward(kind, owner).create(
        **{label_field(kind.target): "new"}, **kind.options
    )
    assert names(forward(kind, owner).all()) == ["new"]
    assert versions(created) in (None, 1)
    if kind.declaring_versioned:
        assert owner.version == 2
        assert link_history(kind, owner) == [[], ["new"]]


def test_create_on_the_reverse_manager_is_one_version_of_the_created_object(kind):
    target = kind.target_object("t")
    created = backward(kind, target).create(
        **{label_field(kind.declaring): "new"}, **kind.options
    )
    assert names(backward(kind, target).all()) == ["new"]
    assert versions(target) in (None, 1)
    if kind.declaring_versioned:
        # One call, one version: the new object is created with its link.
        assert created.pk == current(created).pk
        assert link_history(kind, created) == [["t"]]


@pytest.mark.parametrize("method", ["get_or_create", "update_or_create"])
def test_get_or_create_on_the_reverse_manager_is_one_version(kind, method):
    target = kind.target_object("t")
    manager = backward(kind, target)
    created, made = getattr(manager, method)(
        **{label_field(kind.declaring): "new"}, **kind.options
    )
    assert made
    assert names(backward(kind, target).all()) == ["new"]
    again, made_again = getattr(backward(kind, target), method)(
        **{label_field(kind.declaring): "new"}, **kind.options
    )
    assert not made_again and again.pk == created.pk
    if kind.declaring_versioned:
        assert created.pk == current(created).pk
        assert link_history(kind, created) == [["t"]]


@pytest.mark.parametrize("kind_id", WITH_THROUGH_DATA)
def test_through_defaults_are_written_from_either_side(kind_id):
    kind = KINDS[kind_id]
    owner, other = kind.owners("owner", "other")
    a, b = kind.targets("a", "b")
    value = kind.through_defaults[kind.extra]

    forward(kind, owner).add(a, **kind.options)
    forward(kind, owner).set([a, b], **kind.options)
    assert set(kind.through.objects.values_list(kind.extra, flat=True)) == {value}

    backward(kind, a).add(other, **kind.options)
    backward(kind, b).set([owner, other], **kind.options)
    backward(kind, a).create(**{label_field(kind.declaring): "new"}, **kind.options)

    current_links = kind.through.objects.filter(
        **{f"{kind.source}__in": [current(o).pk for o in (owner, other)]}
    )
    assert current_links.count() == 4
    assert set(current_links.values_list(kind.extra, flat=True)) == {value}
    assert set(kind.through.objects.values_list(kind.extra, flat=True)) == {value}


# A no-op writes nothing; what a change costs ------------------------------------------


def test_a_call_that_changes_no_link_writes_nothing(kind):
    owner = kind.owner("owner")
    a, b = kind.targets("a", "b")
    forward(kind, owner).add(a, **kind.options)
    owner_pk, version = owner.pk, versions(owner)
    before = state(kind)

    calls = {
        "add linked": lambda: forward(kind, owner).add(a, **kind.options),
        "add linked pk": lambda: forward(kind, owner).add(a.pk),
        "remove unlinked": lambda: forward(kind, owner).remove(b),
        "set same": lambda: forward(kind, owner).set([a], **kind.options),
        "reverse add linked": lambda: backward(kind, a).add(owner, **kind.options),
        "reverse remove unlinked": lambda: backward(kind, b).remove(owner),
        "reverse set same": lambda: backward(kind, a).set([owner], **kind.options),
        "reverse clear empty": lambda: backward(kind, b).clear(),
        "add nothing": lambda: forward(kind, owner).add(),
        "remove nothing": lambda: forward(kind, owner).remove(),
    }
    wrote = {}
    for label, call in calls.items():
        with CaptureQueriesContext(connection) as captured:
            call()
        if writes_in(captured, kind):
            wrote[label] = writes_in(captured, kind)
    assert wrote == {}
    assert state(kind) == before
    assert (owner.pk, versions(owner)) == (owner_pk, version)

    empty = kind.owner("empty")
    empty_before = state(kind)
    with CaptureQueriesContext(connection) as captured:
        forward(kind, empty).clear()
    assert writes_in(captured, kind) == []
    assert state(kind) == empty_before


# Pinned per kind: a no-op reads the links once. A change of a versioned
# owner's links: read the links, close, insert the version, copy each of its
# many-to-many tables, re-point its referrers, then Django's add() (read the
# links, insert). A plain owner: Django's add() alone.
NO_OP_ADD_QUERIES = {
    "tags": 1,
    "glasses": 1,
    "bundles": 1,
    "suppliers": 1,
    "shelves": 1,
}
ADD_DATA_STATEMENTS = {
    "tags": 10,
    "glasses": 6,
    "bundles": 2,
    "suppliers": 10,
    "shelves": 2,
}
#: On PostgreSQL the new version's insert closes the row it replaces.
CLOSED_BY_THE_INSERT = {"tags", "glasses", "suppliers"}


def add_data_statements(kind):
    if connection.vendor == "postgresql" and kind.id in CLOSED_BY_THE_INSERT:
        return ADD_DATA_STATEMENTS[kind.id] - 1
    return ADD_DATA_STATEMENTS[kind.id]


def test_query_count_of_a_no_op_add_is_pinned(kind, django_assert_num_queries):
    owner = kind.owner("owner")
    (a,) = kind.targets("a")
    forward(kind, owner).add(a, **kind.options)
    with django_assert_num_queries(NO_OP_ADD_QUERIES[kind.id]):
        forward(kind, owner).add(a, **kind.options)


def test_data_statements_of_a_link_change_are_pinned(kind):
    owner = kind.owner("owner")
    (a,) = kind.targets("a")
    with CaptureQueriesContext(connection) as captured:
        forward(kind, owner).add(a, **kind.options)
    assert len(data_statements(captured)) == add_data_statements(kind), "\n".join(
        data_statements(captured)
    )


def test_data_statements_of_a_set_do_not_grow_with_the_links(kind):
    owner = kind.owner("owner")
    targets = kind.targets("a", "b", "c", "d")
    with CaptureQueriesContext(connection) as captured:
        forward(kind, owner).set(targets, **kind.options)
    # One version whatever the number of links: set() is one call; Django's
    # set() reads the existing links first, then adds.
    assert len(data_statements(captured)) == add_data_statements(kind) + 1
    if kind.declaring_versioned:
        assert owner.version == 2


# The objects in hand; the previous version keeps its links ----------------------------


def test_the_objects_in_hand_become_the_new_versions_and_can_be_saved(
    versioned_kind,
):
    kind = versioned_kind
    owner = kind.owner("owner")
    other = kind.owner("other")
    a, b = kind.targets("a", "b")

    forward(kind, owner).add(a, **kind.options)
    assert (owner.version, owner.pk) == (2, current(owner).pk)
    backward(kind, b).add(owner, other, **kind.options)
    assert (owner.version, other.version) == (3, 2)
    assert other.pk == current(other).pk

    # Saved again straight away: no StaleVersionError, the links come along.
    owner.name = "renamed"
    owner.save()
    other.name = "renamed too"
    other.save()
    assert (owner.version, other.version) == (4, 3)
    assert row_links(kind, current(owner)) == ["a", "b"]
    assert row_links(kind, current(other)) == ["b"]


def test_a_prefetched_owner_sees_its_new_links(versioned_kind):
    kind = versioned_kind
    owner = kind.owner("owner")
    a, b = kind.targets("a", "b")
    forward(kind, owner).add(a, **kind.options)
    loaded = kind.declaring.objects.prefetch_related(kind.forward).get(
        identity=owner.identity
    )
    assert names(forward(kind, loaded).all()) == ["a"]
    forward(kind, loaded).add(b, **kind.options)
    assert names(forward(kind, loaded).all()) == ["a", "b"]
    assert loaded.version == 3


def test_a_manager_kept_in_a_variable_follows_the_new_versions(versioned_kind):
    kind = versioned_kind
    owner = kind.owner("owner")
    a, b = kind.targets("a", "b")
    links = forward(kind, owner)
    links.add(a, **kind.options)
    links.add(b, **kind.options)
    links.remove(a)
    assert names(forward(kind, owner).all()) == ["b"]
    assert link_history(kind, owner) == [[], ["a"], ["a", "b"], ["b"]]


def test_the_previous_version_keeps_its_links_and_through_data(versioned_kind):
    kind = versioned_kind
    owner = kind.owner("owner")
    a, b = kind.targets("a", "b")
    forward(kind, owner).add(a, b, **kind.options)
    forward(kind, owner).remove(a)
    previous = owner.previous_version()
    assert names(forward(kind, previous).all()) == ["a", "b"]
    assert list(forward(kind, previous.previous_version()).all()) == []

    # A data change copies the links, with the through table's own data.
    owner.name = "renamed"
    owner.save()
    assert link_history(kind, owner) == [[], ["a", "b"], ["b"], ["b"]]
    if kind.extra:
        value = kind.through_defaults[kind.extra]
        for version in owner.history():
            assert set(link_rows(kind, version).values_list(kind.extra, flat=True)) <= {
                value
            }


@pytest.mark.parametrize("kind_id", VERSIONED_TARGET)
def test_saves_of_the_other_side_repoint_current_links_in_place(kind_id):
    kind = KINDS[kind_id]
    owner = kind.owner("owner")
    a, b = kind.targets("a", "b")
    forward(kind, owner).add(a, **kind.options)
    forward(kind, owner).add(b, **kind.options)
    first_a = a.pk
    links_before = kind.through.objects.count()

    for n in range(3):
        setattr(a, label_field(kind.target), f"a{n}")
        a.save()
        setattr(b, label_field(kind.target), f"b{n}")
        b.save()

    # The link table grows only with versions of the declaring side.
    assert kind.through.objects.count() == links_before
    assert sorted(t.pk for t in forward(kind, current(owner)).all()) == sorted(
        [a.pk, b.pk]
    )
    assert names(forward(kind, current(owner)).all()) == ["a2", "b2"]
    assert list(backward(kind, a).all()) == [current(owner)]
    # Joins across the link return each current object once.
    joined = kind.declaring._default_manager.filter(
        **{f"{kind.forward}__{label_field(kind.target)}": "a2"}
    )
    assert list(joined) == [current(owner)]
    for old_name in ("a", "a0", "a1"):
        assert not kind.declaring._default_manager.filter(
            **{f"{kind.forward}__{label_field(kind.target)}": old_name}
        ).exists()
    if kind.extra:
        assert set(kind.through.objects.values_list(kind.extra, flat=True)) == {
            kind.through_defaults[kind.extra]
        }
    if kind.declaring_versioned:
        # The historical version keeps pointing at the row it saw.
        second = owner.history().get(version=2)
        assert list(
            link_rows(kind, second).values_list(kind.destination, flat=True)
        ) == [first_a]


# History, diff() and restore(): simple-history's m2m history --------------------------


def test_link_changes_are_in_history_and_diff_like_a_poll_over_time(versioned_kind):
    kind = versioned_kind
    poll = kind.owner("what?")
    a, b = kind.targets("a", "b")

    forward(kind, poll).add(a, **kind.options)  # v2
    forward(kind, poll).add(b, **kind.options)  # v3
    forward(kind, poll).remove(a)  # v4
    poll.name = "what now?"
    poll.save()  # v5
    forward(kind, poll).clear()  # v6

    history = list(poll.history())
    assert [v.version for v in history] == [1, 2, 3, 4, 5, 6]
    assert [names(forward(kind, v).all()) for v in history] == [
        [],
        ["a"],
        ["a", "b"],
        ["b"],
        ["b"],
        [],
    ]
    changes = [
        added_and_removed(old, new, kind.forward)
        for old, new in zip(history, history[1:], strict=False)
        if kind.forward in old.diff(new)
    ]
    assert changes == [(["a"], []), (["b"], []), ([], ["a"]), ([], ["b"])]
    # A data change alone shows no link change; a link change shows no data.
    assert set(history[3].diff(history[4])) == {"name"}
    assert set(history[1].diff(history[2])) == {kind.forward}
    assert history[0].diff(history[2])[kind.forward] == (Links([]), Links([a, b]))


def test_restore_brings_links_back_even_with_equal_data(versioned_kind):
    kind = versioned_kind
    owner = kind.owner("owner")
    a, b = kind.targets("a", "b")
    forward(kind, owner).add(a, b, **kind.options)  # v2
    linked = owner.history().get(version=2)
    forward(kind, owner).clear()  # v3: the same data, no links

    # The current version is not restored over itself.
    assert owner.restore().version == 3

    restored = linked.restore()
    assert restored.version == 4
    assert restored.pk == current(owner).pk
    assert names(forward(kind, restored).all()) == ["a", "b"]
    assert link_history(kind, owner) == [[], ["a", "b"], [], ["a", "b"]]
    assert owner.history().get(version=3).diff(restored) == {
        kind.forward: (Links([]), Links([a, b]))
    }
    if kind.extra:
        value = kind.through_defaults[kind.extra]
        assert set(link_rows(kind, restored).values_list(kind.extra, flat=True)) == {
            value
        }
    # Restoring the version that is now equal in data and links does nothing.
    assert linked.restore().pk == restored.pk


def test_restored_links_point_at_the_current_versions_of_their_targets():
    kind = KINDS["glasses"]
    owner = kind.owner("owner")
    barolo, chianti = kind.targets("barolo", "chianti")
    forward(kind, owner).add(barolo, chianti)
    linked = owner.history().get(version=2)
    forward(kind, owner).clear()
    barolo.vintage = 2010
    barolo.save()

    restored = linked.restore()
    assert sorted(w.pk for w in forward(kind, restored).all()) == sorted(
        [barolo.pk, chianti.pk]
    )
    stored = Wine.all_versions.filter(
        pk__in=link_rows(kind, restored).values_list(kind.destination, flat=True)
    )
    assert all(wine.valid_to is None for wine in stored)
    assert names(barolo.drinkers.all()) == ["owner"]


# Signals ------------------------------------------------------------------------------


def test_version_created_is_sent_for_each_link_change(kind):
    owner, other = kind.owners("owner", "other")
    a, b = kind.targets("a", "b")
    received = []

    def receiver(sender, instance, previous, using, **kwargs):
        received.append((sender, instance, instance.version, previous.version, using))
        assert previous.valid_to is not None

    version_created.connect(receiver)
    try:
        forward(kind, owner).add(a, **kind.options)
        forward(kind, owner).add(a, **kind.options)  # no change, no signal
        backward(kind, b).add(owner, other, **kind.options)
        forward(kind, owner).set([b], **kind.options)
    finally:
        version_created.disconnect(receiver)

    if not kind.declaring_versioned:
        assert received == []
        return
    assert [(r[0], r[2], r[3], r[4]) for r in received] == [
        (kind.declaring, 2, 1, "default"),
        (kind.declaring, 3, 2, "default"),
        (kind.declaring, 2, 1, "default"),
        (kind.declaring, 4, 3, "default"),
    ]
    assert received[0][1] is owner
    assert {received[1][1].identity, received[2][1].identity} == {
        owner.identity,
        other.identity,
    }


def test_m2m_changed_is_still_sent_for_every_link_written(kind):
    owner, other = kind.owners("owner", "other")
    a, b = kind.targets("a", "b")
    seen = []

    def receiver(sender, instance, action, reverse, pk_set, **kwargs):
        if reverse:
            pairs = {(pk, instance.pk) for pk in pk_set or ()}
        else:
            pairs = {(instance.pk, pk) for pk in pk_set or ()}
        seen.append((action, pairs))

    m2m_changed.connect(receiver, sender=kind.through)
    try:
        forward(kind, owner).add(a, **kind.options)
        owner_then = current(owner).pk
        backward(kind, b).add(other, **kind.options)
        other_then = current(other).pk
        forward(kind, owner).remove(a)
        owner_now = current(owner).pk
        forward(kind, other).clear()
    finally:
        m2m_changed.disconnect(receiver, sender=kind.through)

    actions = [action for action, _ in seen]
    assert actions == [
        "pre_add",
        "post_add",
        "pre_add",
        "post_add",
        "pre_remove",
        "post_remove",
        "pre_clear",
        "post_clear",
    ]
    # Each signal names the declaring row that holds the links afterwards.
    assert seen[1][1] == {(owner_then, a.pk)}
    assert seen[3][1] == {(other_then, b.pk)}
    assert seen[5][1] == {(owner_now, a.pk)}


# Historical rows are read-only --------------------------------------------------------


def refusals(calls):
    """The labels of calls that did not raise HistoricalVersionError."""
    accepted = []
    for label, call in calls.items():
        try:
            call()
        except HistoricalVersionError:
            continue
        accepted.append(label)
    return accepted


def test_links_of_a_historical_owner_are_read_only(versioned_kind):
    kind = versioned_kind
    owner = kind.owner("owner")
    a, b = kind.targets("a", "b")
    forward(kind, owner).add(a, **kind.options)
    old = owner.previous_version()  # version 1, no links
    linked_old = historical(owner)  # version 2, linked to a
    before = state(kind)

    calls = {
        "add": lambda: forward(kind, old).add(b, **kind.options),
        "add pk": lambda: forward(kind, old).add(b.pk, **kind.options),
        "remove": lambda: forward(kind, linked_old).remove(a),
        "set": lambda: forward(kind, linked_old).set([b], **kind.options),
        "clear": lambda: forward(kind, linked_old).clear(),
        "reverse add": lambda: backward(kind, b).add(old, **kind.options),
        "reverse add pk": lambda: backward(kind, b).add(old.pk, **kind.options),
        "reverse remove": lambda: backward(kind, a).remove(linked_old),
        "reverse set": lambda: backward(kind, b).set([old], **kind.options),
    }
    assert refusals(calls) == []
    assert not connection.needs_rollback
    assert state(kind) == before
    assert (old.version, linked_old.version) == (1, 2)
    assert row_links(kind, linked_old) == ["a"]


@pytest.mark.parametrize("kind_id", VERSIONED_TARGET)
def test_historical_rows_of_the_other_side_are_refused(kind_id):
    kind = KINDS[kind_id]
    owner, other = kind.owners("owner", "other")
    a, b = kind.targets("a", "b")
    forward(kind, owner).add(a, **kind.options)
    old_a = historical(a)  # linked to owner while it was current
    old_b = historical(b)
    before = state(kind)

    calls = {
        "add historical": lambda: forward(kind, other).add(old_b, **kind.options),
        "set historical": lambda: forward(kind, other).set([old_b], **kind.options),
        "reverse add on historical": lambda: backward(kind, old_b).add(
            other, **kind.options
        ),
        "reverse remove on historical": lambda: backward(kind, old_a).remove(owner),
        "reverse set on historical": lambda: backward(kind, old_a).set([other]),
        "reverse clear on historical": lambda: backward(kind, old_a).clear(),
    }
    assert refusals(calls) == []
    assert not connection.needs_rollback
    assert state(kind) == before


def test_create_on_a_historical_owners_manager_writes_nothing(kind):
    owner = kind.owner("owner")
    (a,) = kind.targets("a")
    calls = {}
    if kind.declaring_versioned:
        old_owner = historical(owner)
        calls["forward create"] = lambda: forward(kind, old_owner).create(
            **{label_field(kind.target): "new"}, **kind.options
        )
    if kind.target_versioned:
        old_a = historical(a)
        calls["reverse create"] = lambda: backward(kind, old_a).create(
            **{label_field(kind.declaring): "new"}, **kind.options
        )
    before = state(kind)
    assert refusals(calls) == []
    # Refused before the new object is created, not after.
    assert state(kind) == before


@pytest.mark.parametrize("kind_id", VERSIONED_TARGET)
def test_a_primary_key_of_a_historical_target_is_refused(kind_id):
    kind = KINDS[kind_id]
    owner = kind.owner("owner")
    (a,) = kind.targets("a")
    old_a = historical(a)
    before = state(kind)
    assert (
        refusals({"add pk": lambda: forward(kind, owner).add(old_a.pk, **kind.options)})
        == []
    )
    assert state(kind) == before
    assert list(forward(kind, current(owner)).all()) == []


# Fixtures: links as given -------------------------------------------------------------


IDENTITY = {
    "item": "11111111-1111-4111-8111-111111111111",
    "wine": "22222222-2222-4222-8222-222222222222",
    "drinker": "33333333-3333-4333-8333-333333333333",
    "document": "44444444-4444-4444-8444-444444444444",
}
DOCUMENT_PK = "55555555-5555-4555-8555-555555555555"
T0, T1 = "2024-01-01T00:00:00.000001Z", "2024-02-01T00:00:00.000002Z"


def bookkeeping(identity, version, valid_from, valid_to):
    return {
        "identity": identity,
        "version": version,
        "valid_from": valid_from,
        "valid_to": valid_to,
        "changed_by": None,
        "change_reason": "",
    }


def fixture_objects():
    item = {"price": "1.00", "description": "", "attributes": {}}
    return [
        {"model": "testapp.tag", "pk": 801, "fields": {"name": "red"}},
        {"model": "testapp.tag", "pk": 802, "fields": {"name": "blue"}},
        {"model": "testapp.supplier", "pk": 801, "fields": {"name": "acme"}},
        {
            "model": "testapp.wine",
            "pk": 801,
            "fields": {
                "name": "barolo",
                "vintage": 2000,
                **bookkeeping(IDENTITY["wine"], 1, T0, T1),
            },
        },
        {
            "model": "testapp.wine",
            "pk": 802,
            "fields": {
                "name": "barolo",
                "vintage": 2001,
                **bookkeeping(IDENTITY["wine"], 2, T1, None),
            },
        },
        {
            "model": "testapp.item",
            "pk": 801,
            "fields": {
                "name": "lamp",
                **item,
                "tags": [801],
                **bookkeeping(IDENTITY["item"], 1, T0, T1),
            },
        },
        {
            "model": "testapp.item",
            "pk": 802,
            "fields": {
                "name": "lamp",
                **item,
                "tags": [801, 802],
                **bookkeeping(IDENTITY["item"], 2, T1, None),
            },
        },
        {
            "model": "testapp.winedrinker",
            "pk": 801,
            "fields": {
                "name": "ann",
                "glasses": [801],
                **bookkeeping(IDENTITY["drinker"], 1, T0, T1),
            },
        },
        {
            "model": "testapp.winedrinker",
            "pk": 802,
            "fields": {
                "name": "ann",
                "glasses": [802],
                **bookkeeping(IDENTITY["drinker"], 2, T1, None),
            },
        },
        {
            "model": "testapp.document",
            "pk": DOCUMENT_PK,
            "fields": {
                "title": "manual",
                "body": "",
                "summary": None,
                **bookkeeping(IDENTITY["document"], 1, T0, None),
            },
        },
        {"model": "testapp.bundle", "pk": 801, "fields": {"name": "b", "items": [802]}},
        {"model": "testapp.shelf", "pk": 801, "fields": {"name": "top"}},
        {
            "model": "testapp.supply",
            "pk": 801,
            "fields": {"item": 801, "supplier": 801, "cost": "1.25"},
        },
        {
            "model": "testapp.supply",
            "pk": 802,
            "fields": {"item": 802, "supplier": 801, "cost": "1.50"},
        },
        {
            "model": "testapp.placement",
            "pk": "66666666-6666-4666-8666-666666666666",
            "fields": {"shelf": 801, "document": DOCUMENT_PK, "position": 7},
        },
    ]


def test_loaddata_writes_links_as_given_and_makes_no_version(tmp_path):
    path = tmp_path / "links.json"
    path.write_text(json.dumps(fixture_objects()))
    received = []

    def receiver(**kwargs):
        received.append(kwargs["instance"])

    version_created.connect(receiver)
    try:
        for _ in range(2):  # loading the same fixture again changes nothing
            call_command("loaddata", str(path), verbosity=0)
    finally:
        version_created.disconnect(receiver)

    assert received == []
    assert list(Item.all_versions.order_by("pk").values_list("pk", "version")) == [
        (801, 1),
        (802, 2),
    ]
    assert list(
        WineDrinker.all_versions.order_by("pk").values_list("pk", "version")
    ) == [(801, 1), (802, 2)]
    assert Wine.all_versions.count() == 2
    assert Document.all_versions.count() == 1
    # Exactly the link rows of the fixture, historical rows included.
    assert sorted(Item.tags.through.objects.values_list("item_id", "tag_id")) == [
        (801, 801),
        (802, 801),
        (802, 802),
    ]
    assert sorted(
        WineDrinker.glasses.through.objects.values_list("winedrinker_id", "wine_id")
    ) == [(801, 801), (802, 802)]
    assert list(Bundle.items.through.objects.values_list("bundle_id", "item_id")) == [
        (801, 802)
    ]
    assert sorted(Supply.objects.values_list("item_id", "cost")) == [
        (801, Decimal("1.25")),
        (802, Decimal("1.50")),
    ]
    assert list(Placement.objects.values_list("position", flat=True)) == [7]
    lamp = Item.objects.get()
    assert names(lamp.tags.all()) == ["blue", "red"]
    assert names(lamp.previous_version().tags.all()) == ["red"]
    assert names(WineDrinker.objects.get().glasses.all()) == ["barolo"]
    assert [w.vintage for w in WineDrinker.objects.get().glasses.all()] == [2001]
    # Loaded objects are versioned as usual afterwards.
    lamp.tags.remove(Tag.objects.get(name="red"))
    assert lamp.version == 3
    assert sorted(Item.tags.through.objects.values_list("item_id", flat=True)) == [
        801,
        802,
        802,
        lamp.pk,
    ]


# Forms and the admin ------------------------------------------------------------------


FORM_KINDS = ["tags", "glasses"]


def form_data(kind, owner, links, **changes):
    data = {
        "name": owner.name,
        kind.forward: [str(t.pk) for t in links],
        LOADED_VERSION_FIELD: str(owner.version),
        REASON_FIELD: "",
    }
    data.update(changes)
    return data


@pytest.mark.parametrize("kind_id", FORM_KINDS)
def test_a_form_saving_data_and_links_makes_one_version(kind_id):
    kind = KINDS[kind_id]
    Form = versionedmodelform_factory(kind.declaring, fields=["name", kind.forward])
    owner = kind.owner("owner")
    a, b = kind.targets("a", "b")

    form = Form(form_data(kind, owner, [a], name="renamed"), instance=owner)
    assert form.is_valid(), form.errors
    saved = form.save()
    assert (saved.version, saved.name) == (2, "renamed")
    assert link_history(kind, owner) == [[], ["a"]]

    # Links only: one version, with the form's reason.
    form = Form(form_data(kind, saved, [a, b], **{REASON_FIELD: "why"}), instance=saved)
    assert form.is_valid(), form.errors
    saved = form.save()
    assert saved.version == 3
    assert current(owner).change_reason == "why"
    assert link_history(kind, owner) == [[], ["a"], ["a", "b"]]

    # Nothing changed: no version, nothing written.
    before = state(kind)
    form = Form(form_data(kind, saved, [b, a]), instance=saved)
    assert form.is_valid(), form.errors
    with CaptureQueriesContext(connection) as captured:
        saved = form.save()
    assert writes_in(captured) == []
    assert saved.version == 3
    assert state(kind) == before
    assert versions(a) in (None, 1)


@pytest.mark.parametrize("kind_id", FORM_KINDS)
def test_a_form_creating_an_object_with_links_makes_one_version(kind_id):
    kind = KINDS[kind_id]
    Form = versionedmodelform_factory(kind.declaring, fields=["name", kind.forward])
    a, b = kind.targets("a", "b")
    form = Form({"name": "new", kind.forward: [a.pk, b.pk], REASON_FIELD: ""})
    assert form.is_valid(), form.errors
    created = form.save()
    assert created.version == 1
    assert link_history(kind, created) == [["a", "b"]]


def admin_url(view, obj=None):
    args = () if obj is None else (obj.pk,)
    return reverse(f"admin:testapp_item_{view}", args=args)


def test_the_admin_saving_links_only_makes_a_version_shown_in_history(admin_client):
    item = ItemFactory(name="lamp")
    red, blue = TagFactory(name="red"), TagFactory(name="blue")

    response = admin_client.post(
        admin_url("change", item), item_form_data(item, [red]), follow=True
    )
    assert "saved as version 2." in messages_of(response)[0]
    item = Item.objects.get()
    assert (item.version, names(item.tags.all())) == (2, ["red"])

    response = admin_client.post(
        admin_url("change", item),
        item_form_data(item, [blue], price="12"),
        follow=True,
    )
    assert "saved as version 3." in messages_of(response)[0]
    item = Item.objects.get()
    assert (item.version, item.price, names(item.tags.all())) == (3, 12, ["blue"])

    response = admin_client.post(
        admin_url("change", item), item_form_data(item, [blue]), follow=True
    )
    assert "no new version was made." in messages_of(response)[0]
    assert Item.objects.get().version == 3

    page = admin_client.get(admin_url("history", item)).content.decode()
    assert "<strong>Tags</strong>: <del>-</del> → <ins>red</ins>" in page
    assert "<strong>Tags</strong>: <del>red</del> → <ins>blue</ins>" in page
    assert page.count("No field changed") == 0


def test_the_admin_version_and_compare_pages_show_links(admin_client):
    # DESIGN section 6: "the admin's history, version and compare pages ...
    # show added and removed links".
    item = ItemFactory(name="lamp")
    item.tags.add(TagFactory(name="red"))
    first, second = item.history()
    compare = admin_client.get(
        admin_url("compare", item), {"a": first.pk, "b": second.pk}
    )
    assert compare.status_code == 200
    assert '<th scope="row">Tags</th>' in compare.content.decode()
    assert "red" in compare.content.decode()
    version = admin_client.get(admin_url("version", second))
    assert version.status_code == 200
    assert "red" in version.content.decode()


# The history command ------------------------------------------------------------------


def test_the_history_command_shows_link_changes(versioned_kind):
    kind = versioned_kind
    owner = kind.owner("owner")
    a, b = kind.targets("a", "b")
    forward(kind, owner).add(a, **kind.options)
    forward(kind, owner).add(b, **kind.options)
    forward(kind, owner).remove(a)
    label = kind.declaring._meta.label

    out = StringIO()
    call_command("history", label, str(owner.identity), stdout=out)
    table = out.getvalue()
    assert f"{kind.forward}: — → a" in table
    assert f"{kind.forward}: a → a, b" in table
    assert f"{kind.forward}: a, b → b" in table

    out = StringIO()
    call_command("history", label, str(owner.identity), format="json", stdout=out)
    records = json.loads(out.getvalue())
    assert [r["changes"] for r in records] == [
        {},
        {kind.forward: [[], ["a"]]},
        {kind.forward: [["a"], ["a", "b"]]},
        {kind.forward: [["a", "b"], ["b"]]},
    ]


# Transactions belong to the caller ----------------------------------------------------


def test_a_rolled_back_link_change_leaves_the_object_as_before(versioned_kind):
    kind = versioned_kind
    owner = kind.owner("owner")
    a, b = kind.targets("a", "b")
    before = state(kind)

    with pytest.raises(Rollback), transaction.atomic():
        forward(kind, owner).add(a, **kind.options)
        assert owner.version == 2
        raise Rollback

    assert state(kind) == before
    stored = current(owner)
    assert (stored.version, row_links(kind, stored)) == (1, [])
    # Another object may now take the rolled-back key (SQLite reuses keys).
    other = kind.owner("other")
    # Later writes through the object in hand say it is stale and write nothing.
    after_rollback = state(kind)
    with pytest.raises(StaleVersionError), transaction.atomic():
        forward(kind, owner).add(b, **kind.options)
    with pytest.raises(StaleVersionError), transaction.atomic():
        backward(kind, b).add(owner, **kind.options)
    owner.name = "edited"
    with pytest.raises(StaleVersionError), transaction.atomic():
        owner.save()
    assert state(kind) == after_rollback
    assert row_links(kind, other) == []

    fresh = owner.current_version()
    forward(kind, fresh).add(b, **kind.options)
    assert link_history(kind, fresh) == [[], ["b"]]


def test_a_rolled_back_reverse_link_change_leaves_the_objects_as_before(
    versioned_kind,
):
    kind = versioned_kind
    one, two = kind.owners("one", "two")
    (a,) = kind.targets("a")
    before = state(kind)

    with pytest.raises(Rollback), transaction.atomic():
        backward(kind, a).add(one, two, **kind.options)
        raise Rollback

    assert state(kind) == before
    assert [current(one).version, current(two).version] == [1, 1]
    one.name = "edited"
    with pytest.raises(StaleVersionError), transaction.atomic():
        one.save()
    assert state(kind) == before


# Time travel --------------------------------------------------------------------------


def test_as_of_shows_the_links_of_that_moment_from_both_sides(versioned_kind):
    kind = versioned_kind
    owner = kind.owner("owner")
    a, b = kind.targets("a", "b")
    moments = [timezone.now()]
    forward(kind, owner).add(a, **kind.options)
    moments.append(timezone.now())
    forward(kind, owner).add(b, **kind.options)
    moments.append(timezone.now())
    forward(kind, owner).remove(a)
    moments.append(timezone.now())
    if kind.target_versioned:
        a.name = "a renamed"
        a.save()

    expected = [[], ["a"], ["a", "b"], ["b"]]
    then = [
        kind.declaring.objects.as_of(t).get(identity=owner.identity) for t in moments
    ]
    assert [names(forward(kind, o).all()) for o in then] == expected
    assert [o.version for o in then] == [1, 2, 3, 4]

    # The other side: who linked to a at each moment, as they were then.
    def linked_to_a(t):
        if kind.target_versioned:
            a_then = kind.target.objects.as_of(t).get(identity=a.identity)
            return list(backward(kind, a_then).all())
        return list(backward(kind, a).as_of(t))

    assert [[o.version for o in linked_to_a(t)] for t in moments] == [
        [],
        [2],
        [3],
        [],
    ]
    assert list(backward(kind, a).all()) == []
    assert names(backward(kind, b).all()) == ["owner"]


def test_as_of_a_moment_before_any_link_and_between_calls_is_exact():
    kind = KINDS["tags"]
    item = kind.owner("lamp")
    red, blue = kind.targets("red", "blue")
    item.tags.set([red, blue])
    between = timezone.now()
    item.tags.set([blue])
    later = timezone.now() + datetime.timedelta(seconds=1)

    assert names(Item.objects.as_of(between).get().tags.all()) == ["blue", "red"]
    assert names(Item.objects.as_of(later).get().tags.all()) == ["blue"]
    assert [i.version for i in red.items.as_of(between)] == [2]
    assert list(red.items.as_of(later)) == []


@pytest.mark.parametrize("kind_id", PLAIN_DECLARING)
def test_plain_declaring_links_never_version_anything(kind_id):
    kind = KINDS[kind_id]
    owner = kind.owner("owner")
    a, b = kind.targets("a", "b")
    forward(kind, owner).add(a, b, **kind.options)
    backward(kind, a).remove(owner)
    backward(kind, b).clear()
    assert [versions(a), versions(b)] == [1, 1]
    assert kind.through.objects.count() == 0


def test_version_created_for_a_link_change_sees_the_new_links():
    seen = []

    def record(sender, instance, **kwargs):
        seen.append((instance.version, sorted(t.name for t in instance.tags.all())))

    item = ItemFactory()
    version_created.connect(record, sender=Item)
    try:
        item.tags.add(TagFactory(name="red"))
        item.tags.set([])
    finally:
        version_created.disconnect(record, sender=Item)
    assert seen == [(2, ["red"]), (3, [])]
