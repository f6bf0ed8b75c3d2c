"""
delete() applies the referrers' on_delete as Django's delete() would, except
that versioned rows are closed rather than erased (DESIGN section 5): for
obj.delete() and QuerySet.delete(), parametrized over the relation kinds, with
CleanerVersion's delete handlers and reversion's recovery of a deleted object
with relations among them, and the admin's delete confirmation.
"""

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.db import connection, models, transaction
from django.db.models import ProtectedError, RestrictedError
from django.db.models.deletion import Collector
from django.db.models.signals import post_delete, pre_delete
from django.test import Client
from django.test.utils import CaptureQueriesContext, isolate_apps
from django.urls import reverse
from django.utils import timezone

import versioning
from tests.conftest import data_statements
from tests.factories import (
    ChildFactory,
    ExampleFactory,
    ItemFactory,
    OrderFactory,
    OrderLineFactory,
    PlayerFactory,
    ReviewFactory,
    TagFactory,
    TeamFactory,
    UserFactory,
)
from tests.test_concurrency import (
    LEVELS,
    SAVED,
    WAIT,
    assert_never_forked,
    assert_saved_or_stale,
    describe,
    isolation,
    run_in_threads,
)
from tests.test_fault_injection import FailOnStatement, InjectedFault
from tests.testapp.models import (
    Banner,
    Chant,
    City,
    Club,
    Comment,
    Directory,
    Fan,
    Item,
    Kit,
    Mascot,
    NonFan,
    Order,
    OrderLine,
    Page,
    Parent,
    Place,
    RabidFan,
    Refund,
    Restaurant,
    Review,
    Scarf,
    Seat,
    Sponsor,
    Stadium,
    Ticket,
    Trophy,
    Wine,
    WineDrinker,
    WizardFan,
    free_agents,
)
from versioning import deletion
from versioning.exceptions import HistoricalVersionError, StaleVersionError
from versioning.models import Versioned
from versioning.signals import version_created
from versioning.tracking import is_versioned

pytestmark = pytest.mark.django_db


# The relation kinds ------------------------------------------------------------


def club(name="rovers"):
    # SET() and SET_DEFAULT hand a deleted club's referrers to the free agents.
    Club.objects.get_or_create(name="free agents")
    return Club.objects.create(name=name)


def city(name="springfield"):
    return City.objects.create(name=name)


def page():
    return Page.objects.create(title="home")


def place():
    return Place.objects.create(name="corner")


def stadium(target):
    return Stadium.objects.create(name="park", city=city("elsewhere"), club=target)


@dataclass(frozen=True)
class Kind:
    target: Callable[[], Any]
    refer: Callable[[Any], Any]
    #: The key's value once its target is deleted, for the SET kinds.
    value: Callable[[], Any] = lambda: None


REFUSING = {
    "plain PROTECT (Order.item)": Kind(ItemFactory, lambda t: OrderFactory(item=t)),
    "versioned PROTECT (Review.item)": Kind(
        ItemFactory, lambda t: ReviewFactory(item=t)
    ),
    "versioned PROTECT (Comment.page)": Kind(
        page, lambda t: Comment.objects.create(page=t, text="first")
    ),
    "versioned PROTECT (Player.team)": Kind(
        TeamFactory, lambda t: PlayerFactory(team=t)
    ),
    "versioned self PROTECT (Directory.parent)": Kind(
        lambda: Directory.objects.create(name="root"),
        lambda t: Directory.objects.create(name="etc", parent=t),
    ),
    "plain one-to-one PROTECT (Restaurant.place)": Kind(
        place, lambda t: Restaurant.objects.create(place=t)
    ),
    "versioned RESTRICT (Stadium.club)": Kind(club, stadium),
    "plain RESTRICT (Trophy.club)": Kind(club, lambda t: Trophy.objects.create(club=t)),
}

CASCADING = {
    "versioned CASCADE (Mascot.club)": Kind(
        club, lambda t: Mascot.objects.create(name="bob", club=t)
    ),
    "versioned nullable CASCADE (Club.city)": Kind(
        city, lambda t: Club.objects.create(name="rovers", city=t)
    ),
    "plain CASCADE (Ticket.club)": Kind(club, lambda t: Ticket.objects.create(club=t)),
}

SETTING = {
    "versioned SET_NULL (RabidFan.club)": Kind(
        club, lambda t: RabidFan.objects.create(name="rex", club=t)
    ),
    "versioned SET_DEFAULT (Sponsor.club)": Kind(
        club, lambda t: Sponsor.objects.create(name="acme", club=t), free_agents
    ),
    "versioned SET() (Fan.club)": Kind(
        club, lambda t: Fan.objects.create(name="ann", club=t), free_agents
    ),
    "plain SET_NULL (Scarf.club)": Kind(club, lambda t: Scarf.objects.create(club=t)),
    "plain SET_DEFAULT (Kit.club)": Kind(
        club, lambda t: Kit.objects.create(club=t), free_agents
    ),
    "plain SET() (Banner.club)": Kind(
        club, lambda t: Banner.objects.create(club=t), free_agents
    ),
    "plain one-to-one SET_NULL (Parent.child)": Kind(
        ChildFactory, lambda t: Parent.objects.create(child=t)
    ),
}

LEAVING = {
    "versioned DO_NOTHING (NonFan.club)": Kind(
        club, lambda t: NonFan.objects.create(name="ned", club=t)
    ),
    "plain DO_NOTHING (Chant.club)": Kind(club, lambda t: Chant.objects.create(club=t)),
    "pinned (OrderLine.item)": Kind(ItemFactory, lambda t: OrderLineFactory(item=t)),
}


def kinds(table):
    return pytest.mark.parametrize("kind", list(table.values()), ids=list(table))


@pytest.fixture(params=["obj.delete()", "QuerySet.delete()"])
def delete(request):
    """Both entry points: the object's delete() and its queryset's."""

    def run(obj):
        if request.param == "obj.delete()":
            return obj.delete()
        return type(obj).objects.filter(pk=obj.pk).delete()

    return run


def key_of(referrer, target):
    """The referrer's key to the target's model."""
    return next(
        field
        for field in type(referrer)._meta.concrete_fields
        if field.is_relation and field.related_model is type(target)
    )


def rows(model):
    return list(models.QuerySet(model=model).order_by("pk").values_list())


SCENARIO_MODELS = [
    City,
    Club,
    Mascot,
    Fan,
    RabidFan,
    Sponsor,
    Stadium,
    NonFan,
    WizardFan,
    Ticket,
    Seat,
    Refund,
    Scarf,
    Kit,
    Banner,
    Trophy,
    Chant,
    Item,
    Order,
    OrderLine,
    Review,
    Page,
    Comment,
    Directory,
    Place,
    Restaurant,
    Parent,
]


def database_state():
    return {model._meta.label: rows(model) for model in SCENARIO_MODELS}


def refused_by_django(target):
    """What Django's own collector says about deleting ``target`` (it only reads)."""
    with pytest.raises((ProtectedError, RestrictedError)) as refused:
        Collector(using="default", origin=target).collect([target])
    return refused.value


def message(error):
    return error.args[0]


def objects_of(error):
    if isinstance(error, ProtectedError):
        return set(error.protected_objects)
    return set(error.restricted_objects)


def label(model):
    return model._meta.label


# PROTECT and RESTRICT ------------------------------------------------------------


@kinds(REFUSING)
def test_protect_and_restrict_refuse_as_django_does_and_change_nothing(kind, delete):
    target = kind.target()
    referrer = kind.refer(target)
    django_says = refused_by_django(target)
    before = database_state()

    with pytest.raises(type(django_says)) as refused:
        delete(target)

    assert message(refused.value) == message(django_says)
    assert objects_of(refused.value) == objects_of(django_says) == {referrer}
    assert database_state() == before
    assert target.is_current


def test_restrict_allows_a_referrer_deleted_through_a_cascade():
    # Django's album-and-song example: the stadium restricts its club, but
    # deleting the city closes the club and the stadium together.
    springfield = city()
    rovers = Club.objects.create(name="rovers", city=springfield)
    park = Stadium.objects.create(name="park", city=springfield, club=rovers)
    assert springfield.delete() == (
        3,
        {label(City): 1, label(Club): 1, label(Stadium): 1},
    )
    assert not Stadium.objects.filter(identity=park.identity).exists()
    assert not Club.objects.filter(identity=rovers.identity).exists()


def test_a_protected_referrer_below_a_cascade_refuses_the_whole_delete(delete):
    # CleanerVersion's wizard fan protects its club, and so the club's city.
    springfield = city()
    rovers = Club.objects.create(name="rovers", city=springfield)
    Mascot.objects.create(name="bob", club=rovers)
    Ticket.objects.create(club=rovers)
    gandalf = WizardFan.objects.create(name="Gandalf", club=rovers)
    django_says = refused_by_django(springfield)
    before = database_state()

    with pytest.raises(ProtectedError) as refused:
        delete(springfield)

    assert message(refused.value) == message(django_says)
    assert message(refused.value) == (
        "Cannot delete some instances of model 'City' because they are "
        "referenced through protected foreign keys: 'Club.city'."
    )
    assert objects_of(refused.value) == {gandalf}
    assert database_state() == before


def test_a_plain_referrer_s_own_protect_refuses_the_whole_delete(delete):
    # Django's collector, deleting the ticket, meets the refund's PROTECT.
    rovers = club()
    Mascot.objects.create(name="bob", club=rovers)
    refund = Refund.objects.create(ticket=Ticket.objects.create(club=rovers))
    django_says = refused_by_django(rovers)
    before = database_state()

    with pytest.raises(ProtectedError) as refused:
        delete(rovers)

    assert message(refused.value) == message(django_says)
    assert message(refused.value) == (
        "Cannot delete some instances of model 'Club' because they are "
        "referenced through protected foreign keys: 'Ticket.club'."
    )
    assert objects_of(refused.value) == {refund}
    assert database_state() == before


def test_every_protected_referrer_is_named():
    item = ItemFactory()
    order, review = OrderFactory(item=item), ReviewFactory(item=item)
    with pytest.raises(ProtectedError) as refused:
        item.delete()
    assert message(refused.value) == (
        "Cannot delete some instances of model 'Item' because they are "
        "referenced through protected foreign keys: 'Order.item', 'Review.item'."
    )
    assert objects_of(refused.value) == {order, review}


def test_a_historical_version_of_a_referrer_does_not_protect():
    # Review version 1 still points at the lamp; the current version does not.
    lamp, desk = ItemFactory(name="lamp"), ItemFactory(name="desk")
    review = ReviewFactory(item=lamp)
    review.item = desk
    review.save()
    assert Review.all_versions.get(version=1).item_id == lamp.pk
    assert lamp.delete() == (1, {label(Item): 1})
    with pytest.raises(ProtectedError):
        desk.delete()


# CASCADE -----------------------------------------------------------------------


@kinds(CASCADING)
def test_cascade_closes_versioned_referrers_and_deletes_plain_ones(kind, delete):
    target = kind.target()
    referrer = kind.refer(target)
    model = type(referrer)

    assert delete(target) == (2, {label(type(target)): 1, label(model): 1})

    closed = type(target).all_versions.get(pk=target.pk).valid_to
    if is_versioned(model):
        row = model.all_versions.get(pk=referrer.pk)
        assert row.valid_to == closed  # closed at the same moment
        assert not model.objects.filter(identity=referrer.identity).exists()
        assert getattr(row, key_of(referrer, target).attname) == target.pk
    else:
        assert not model.objects.filter(pk=referrer.pk).exists()


def test_cascade_goes_all_the_way_down_with_each_model_s_own_on_delete(delete):
    springfield = city()
    rovers = Club.objects.create(name="rovers", city=springfield)
    bob = Mascot.objects.create(name="bob", club=rovers)
    ticket = Ticket.objects.create(club=rovers)
    Seat.objects.create(ticket=ticket)
    rex = RabidFan.objects.create(name="rex", club=rovers)
    scarf = Scarf.objects.create(club=rovers)

    assert delete(springfield) == (
        5,
        {
            label(City): 1,
            label(Club): 1,
            label(Mascot): 1,
            label(Ticket): 1,
            label(Seat): 1,
        },
    )
    assert not Mascot.objects.filter(identity=bob.identity).exists()
    assert not Ticket.objects.exists() and not Seat.objects.exists()
    assert RabidFan.objects.get(identity=rex.identity).club_id is None
    scarf.refresh_from_db()
    assert scarf.club_id is None


def test_counts_are_what_django_s_delete_would_count(delete):
    springfield = city()
    rovers = Club.objects.create(name="rovers", city=springfield)
    Mascot.objects.create(name="bob", club=rovers)
    Mascot.objects.create(name="bo", club=rovers)
    Seat.objects.create(ticket=Ticket.objects.create(club=rovers))
    Stadium.objects.create(name="park", city=springfield, club=rovers)
    RabidFan.objects.create(name="rex", club=rovers)
    with transaction.atomic():
        # Django's own delete, on a copy: it clears the pk of what it deleted.
        django_counts = models.Model.delete(City.objects.get())
        transaction.set_rollback(True)
    assert delete(springfield) == django_counts


def test_a_versioned_referrer_with_history_has_only_its_current_row_closed():
    rovers = club()
    bob = Mascot.objects.create(name="bob", club=rovers)
    bob.name = "bobby"
    bob.save()
    first = Mascot.all_versions.get(version=1)
    rovers.delete()
    assert Mascot.all_versions.get(pk=first.pk).valid_to == first.valid_to
    assert Mascot.all_versions.get(pk=bob.pk).valid_to == rovers.valid_to
    assert [m.name for m in bob.history()] == ["bob", "bobby"]


def test_plain_referrers_are_deleted_through_django_s_collector_with_signals():
    rovers = club()
    ticket = Ticket.objects.create(club=rovers)
    Seat.objects.create(ticket=ticket)
    Mascot.objects.create(name="bob", club=rovers)
    received = []

    def record(sender, instance, **kwargs):
        received.append((kwargs["signal"], sender, instance.pk, kwargs["origin"]))

    pre_delete.connect(record)
    post_delete.connect(record)
    try:
        rovers.delete()
    finally:
        pre_delete.disconnect(record)
        post_delete.disconnect(record)
    # Only rows really deleted are announced: closed versions are not.
    assert {(signal, sender) for signal, sender, _, _ in received} == {
        (pre_delete, Ticket),
        (pre_delete, Seat),
        (post_delete, Ticket),
        (post_delete, Seat),
    }
    assert {origin for *_, origin in received} == {rovers}


# SET_NULL, SET_DEFAULT, SET() ------------------------------------------------------


@kinds(SETTING)
def test_set_gives_versioned_referrers_a_new_version_and_updates_plain_ones(
    kind, delete
):
    target = kind.target()
    referrer = kind.refer(target)
    model = type(referrer)
    key = key_of(referrer, target)
    expected = kind.value()

    assert delete(target) == (1, {label(type(target)): 1})

    if is_versioned(model):
        current = model.objects.get(identity=referrer.identity)
        assert (current.version, getattr(current, key.attname)) == (2, expected)
        closed = model.all_versions.get(pk=referrer.pk)
        assert getattr(closed, key.attname) == target.pk  # history keeps its key
        assert closed.valid_to == current.valid_from
    else:
        referrer.refresh_from_db()
        assert getattr(referrer, key.attname) == expected


def test_set_null_leaves_historical_versions_alone():
    rovers = club()
    rex = RabidFan.objects.create(name="rex", club=rovers)
    rex.name = "rexie"
    rex.save()
    first = RabidFan.all_versions.get(version=1)
    rovers.delete()
    assert list(rex.history().values_list("version", "name", "club_id")) == [
        (1, "rex", rovers.pk),
        (2, "rexie", rovers.pk),
        (3, "rexie", None),
    ]
    assert RabidFan.all_versions.get(pk=first.pk).valid_to == first.valid_to


def test_a_referrer_whose_keys_are_both_cleared_gets_one_new_version(delete):
    rovers, united = club(), club("united")
    rex = RabidFan.objects.create(name="rex", club=rovers, rival=rovers)
    ray = RabidFan.objects.create(name="ray", club=rovers, rival=united)
    delete(rovers)
    assert list(rex.history().values_list("version", "club", "rival")) == [
        (1, rovers.pk, rovers.pk),
        (2, None, None),
    ]
    assert list(ray.history().values_list("version", "club", "rival")) == [
        (1, rovers.pk, united.pk),
        (2, None, united.pk),
    ]
    Club.objects.filter(pk__in=[united.pk]).delete()
    assert RabidFan.objects.get(identity=ray.identity).version == 3


def test_keys_to_several_deleted_objects_make_one_version_per_referrer():
    rovers, united = club(), club("united")
    ray = RabidFan.objects.create(name="ray", club=rovers, rival=united)
    assert Club.objects.filter(pk__in=[rovers.pk, united.pk]).delete() == (
        2,
        {label(Club): 2},
    )
    assert list(ray.history().values_list("version", "club", "rival")) == [
        (1, rovers.pk, united.pk),
        (2, None, None),
    ]


def test_new_versions_record_who_and_why_and_send_no_version_created():
    user = UserFactory()
    rovers = club()
    rex = RabidFan.objects.create(name="rex", club=rovers)
    received = []

    def record(sender, **kwargs):
        received.append(sender)

    version_created.connect(record)
    try:
        with versioning.changes(user=user, reason="the club folded"):
            rovers.delete()
    finally:
        version_created.disconnect(record)
    current = RabidFan.objects.get(identity=rex.identity)
    assert (current.changed_by, current.change_reason) == (user, "the club folded")
    # Like update(), the versions are built in the database: no per-row signal.
    assert received == []


@pytest.mark.skipif(
    not hasattr(models, "DB_CASCADE"), reason="database-level on_delete: Django 6.1+"
)
@isolate_apps("tests.testapp")
def test_database_level_on_delete_applies_as_its_python_counterpart():
    # A close deletes no row, so the database would never act on its own.
    class Target(Versioned):
        __module__ = "tests.testapp.models"

    class Referrer(Versioned):
        __module__ = "tests.testapp.models"
        cascade = models.ForeignKey(
            Target, on_delete=models.DB_CASCADE, related_name="+"
        )
        set_null = models.ForeignKey(
            Target, null=True, on_delete=models.DB_SET_NULL, related_name="+"
        )
        set_default = models.ForeignKey(
            Target,
            null=True,
            db_default=None,
            on_delete=models.DB_SET_DEFAULT,
            related_name="+",
        )

    applied = {
        field.name: deletion.on_delete_of(field)
        for field in Referrer._meta.local_fields
        if field.related_model is Target
    }
    assert applied == {
        "cascade": models.CASCADE,
        "set_null": models.SET_NULL,
        "set_default": deletion.set_database_default,
    }


# DO_NOTHING, pinned keys, many-to-many links -----------------------------------


@kinds(LEAVING)
def test_do_nothing_and_pinned_keys_leave_the_referrer(kind, delete):
    target = kind.target()
    referrer = kind.refer(target)
    model = type(referrer)
    key = key_of(referrer, target)
    before = rows(model)

    assert delete(target) == (1, {label(type(target)): 1})

    assert rows(model) == before
    assert getattr(model._base_manager.get(pk=referrer.pk), key.attname) == target.pk


def test_many_to_many_links_stay_with_the_closed_version():
    wine = Wine.objects.create(name="barolo")
    ann = WineDrinker.objects.create(name="ann")
    ann.glasses.add(wine)
    ann = WineDrinker.objects.get()
    item = ItemFactory()
    item.tags.add(TagFactory())
    links = WineDrinker.glasses.through, Item.tags.through
    before = [rows(through) for through in links]

    wine.delete()
    item.delete()

    assert [rows(through) for through in links] == before
    assert list(WineDrinker.objects.get().glasses.all()) == []
    assert WineDrinker.objects.get().pk == ann.pk  # links are not referrers


# Both entry points, set-based --------------------------------------------------


def club_world(name, city=None):
    rovers = Club.objects.create(name=name, city=city)
    Mascot.objects.create(name=f"{name} mascot", club=rovers)
    Seat.objects.create(ticket=Ticket.objects.create(club=rovers))
    RabidFan.objects.create(name=f"{name} fan", club=rovers)
    Scarf.objects.create(club=rovers)
    return rovers


def test_queryset_delete_handles_every_matched_row_at_once():
    worlds = [club_world(f"club {n}") for n in range(3)]
    keep = club_world("keep")
    assert Club.objects.exclude(pk=keep.pk).delete() == (
        12,
        {label(Club): 3, label(Mascot): 3, label(Ticket): 3, label(Seat): 3},
    )
    assert list(Club.objects.all()) == [keep]
    assert list(Mascot.objects.values_list("club_id", flat=True)) == [keep.pk]
    assert list(RabidFan.objects.exclude(club=None).values_list("club", flat=True)) == [
        keep.pk
    ]
    assert RabidFan.objects.filter(club=None).count() == len(worlds)
    assert Scarf.objects.filter(club=None).count() == len(worlds)


def test_queryset_delete_ignores_what_only_shapes_the_results():
    springfield = city()
    rovers = club_world("rovers", city=springfield)
    matched = (
        Club.objects.filter(pk=rovers.pk)
        .select_related("city")
        .prefetch_related("mascots")
        .order_by("-name")
    )
    assert matched.delete()[1][label(Club)] == 1
    assert not Mascot.objects.exists()


def statements_of(action):
    with CaptureQueriesContext(connection) as captured:
        action()
    return data_statements(captured.captured_queries)


def test_queryset_delete_is_a_few_statements_however_many_rows_match():
    one = [club_world("single")]
    few = [club_world(f"club {n}") for n in range(4)]
    single = statements_of(lambda: Club.objects.filter(pk=one[0].pk).delete())
    many = statements_of(
        lambda: Club.objects.filter(pk__in=[c.pk for c in few]).delete()
    )
    assert len(single) == len(many)


def test_delete_statement_counts(django_assert_num_queries):
    # A model without referrers: the close alone, as before.
    example = ExampleFactory()
    with django_assert_num_queries(3) as captured:  # in the test's savepoint
        example.delete()
    assert len(data_statements(captured.captured_queries)) == 1

    # Referrer keys without referrers: the close, then one select per key
    # whose on_delete must look (PROTECT: orders, reviews).
    item = ItemFactory()
    with django_assert_num_queries(5) as captured:
        item.delete()
    assert len(data_statements(captured.captured_queries)) == 3

    # A club with a mascot (versioned CASCADE), a ticket with a seat (plain
    # CASCADE, through Django's collector), a rabid fan (SET_NULL, two keys)
    # and a scarf (plain SET_NULL): the club's close; one select per key
    # whose on_delete reads its rows (the club's 9 such keys, then the
    # ticket's refunds); the mascot's close; the rabid fan's two keys, its
    # close and its new version; the scarf's update; the seat's and the
    # ticket's deletes. Each a statement per batch, whatever the row count.
    rovers = club_world("rovers")
    with django_assert_num_queries(21) as captured:
        rovers.delete()
    assert len(data_statements(captured.captured_queries)) == 19


# Today's guarantees ------------------------------------------------------------


def test_a_stale_delete_changes_nothing(delete):
    rovers = club_world("rovers")
    stale = Club.objects.get(pk=rovers.pk)
    rovers.name = "renamed"
    rovers.save()
    before = database_state()
    with pytest.raises(StaleVersionError):
        stale.delete()
    assert database_state() == before
    assert Mascot.objects.get().club_id == rovers.pk


def test_historical_rows_refuse_and_nothing_changes():
    rovers = club_world("rovers")
    rovers.name = "renamed"
    rovers.save()
    before = database_state()
    with pytest.raises(HistoricalVersionError):
        Club.all_versions.get(version=1).delete()
    with pytest.raises(HistoricalVersionError):
        Club._base_manager.filter(identity=rovers.identity).delete()
    assert database_state() == before


def test_a_delete_through_an_object_whose_save_was_rolled_back_is_refused():
    rovers = club_world("rovers")

    class Rollback(Exception):
        pass

    with pytest.raises(Rollback), transaction.atomic():
        rovers.name = "never committed"
        rovers.save()
        raise Rollback
    before = database_state()
    with pytest.raises(StaleVersionError):
        rovers.delete()
    assert database_state() == before


def test_a_refused_delete_leaves_the_caller_s_transaction_usable():
    item = ItemFactory()
    order = OrderFactory(item=item)
    with transaction.atomic():
        with pytest.raises(ProtectedError):
            item.delete()
        assert Item.objects.filter(pk=item.pk).exists()
        order.delete()
        assert item.delete() == (1, {label(Item): 1})
    assert not Item.objects.exists()


def test_a_failure_anywhere_in_a_cascade_writes_nothing():
    springfield = city()
    club_world("rovers", city=springfield)
    before = database_state()
    counter = FailOnStatement(k=-1)
    with transaction.atomic():
        with connection.execute_wrapper(counter):
            City.objects.get().delete()
        transaction.set_rollback(True)
    assert counter.seen > 5
    for k in range(counter.seen):
        with connection.execute_wrapper(FailOnStatement(k)):
            with pytest.raises(InjectedFault):
                City.objects.get().delete()
        assert database_state() == before, f"statement {k} left a write"


def test_the_deleted_object_is_closed_in_memory():
    rovers = club_world("rovers")
    rovers.delete()
    assert rovers.valid_to == Club.all_versions.get(pk=rovers.pk).valid_to
    assert not rovers.is_current


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("level", LEVELS)
def test_a_cascading_delete_racing_saves_of_its_referrers(on_postgres, level):
    # Real threads: the delete closes the club and its mascot and clears the
    # rabid fan's key while both referrers are saved. Each write is saved or
    # stale, nothing forks, and no current referrer is left on a closed club.
    for round_number in range(5):
        rovers = Club.objects.create(name=f"club {round_number}")
        bob = Mascot.objects.create(name="bob", club=rovers)
        rex = RabidFan.objects.create(name="rex", club=rovers)
        start = threading.Barrier(3, timeout=WAIT)

        def delete_club(pk=rovers.pk, start=start):
            with isolation(level, "session"):
                mine = Club.objects.get(pk=pk)
                start.wait()
                mine.delete()

        def rename(model, pk, start=start):
            with isolation(level, "session"):
                mine = model.objects.get(pk=pk)
                start.wait()
                mine.name += " again"
                mine.save()

        outcomes = run_in_threads(
            delete_club,
            lambda pk=bob.pk: rename(Mascot, pk),
            lambda pk=rex.pk: rename(RabidFan, pk),
        )
        assert_saved_or_stale(outcomes)
        deleted = outcomes[0] == SAVED
        assert Club.objects.filter(identity=rovers.identity).exists() != deleted
        assert_never_forked(Mascot, bob.identity, current=0 if deleted else 1)
        assert_never_forked(RabidFan, rex.identity)
        current_clubs = set(Club.objects.values_list("pk", flat=True))
        for mascot in Mascot.objects.all():
            assert mascot.club_id in current_clubs, describe(outcomes)
        fan = RabidFan.objects.get(identity=rex.identity)
        assert (fan.club_id is None) == deleted, describe(outcomes)
        assert fan.club_id is None or fan.club_id in current_clubs


# The peers' scenarios ----------------------------------------------------------


def assert_history_kept(model, before, history):
    """Rows of ``before`` are unchanged in ``history``, except a current one closed."""
    after = list(history.values_list())
    valid_to = [f.attname for f in model._meta.concrete_fields].index("valid_to")
    assert len(after) >= len(before)
    for old, new in zip(before, after, strict=False):
        if old != new:
            assert old[valid_to] is None and new[valid_to] is not None
            assert old[:valid_to] + old[valid_to + 1 :] == (
                new[:valid_to] + new[valid_to + 1 :]
            )


def test_cleanerversion_delete_handlers():
    # CleanerVersion's DeletionHandlerTest: a city, its club and everything
    # that points at the club, each with the on_delete CleanerVersion uses.
    free = Club.objects.create(name="free agents")
    springfield = City.objects.create(name="c.v1")
    team = Club.objects.create(name="t.v1", city=springfield)
    team.name = "t.v2"
    team.save()
    mascots = [Mascot.objects.create(name=f"m{n}.v1", club=team) for n in (1, 2)]
    fans = [Fan.objects.create(name=f"f{n}.v1", club=team) for n in (1, 2, 3)]
    rabid = RabidFan.objects.create(name="rf1.v1", club=team)
    non_fan = NonFan.objects.create(name="nf1.v1", club=team)
    everyone = [springfield, team, *mascots, *fans, rabid, non_fan]
    histories = {obj.identity: list(obj.history().values_list()) for obj in everyone}
    before = timezone.now()

    springfield.delete()

    # Cascading deletes close the club and its mascots.
    assert not Club.objects.filter(identity=team.identity).exists()
    assert not Mascot.objects.exists()
    # The fans picked another club (SET(free_agents)), as new versions.
    assert {fan.club_id for fan in Fan.objects.all()} == {free.pk}
    assert {fan.version for fan in Fan.objects.all()} == {2}
    # The rabid fan keeps being one, without a club (SET_NULL).
    current = RabidFan.objects.get()
    assert current.club is None
    assert current.previous_version().club_id == team.pk
    # The non-fan is not affected (DO_NOTHING): it names the club's last row.
    assert NonFan.objects.get().club_id == team.pk
    # No row of any history changed, except that the current ones were closed.
    for obj in everyone:
        assert_history_kept(type(obj), histories[obj.identity], obj.history())
    # As of a moment before the delete, everything is as it was.
    city_then = City.objects.as_of(before).get()
    assert [c.name for c in city_then.clubs.all()] == ["t.v2"]
    team_then = Club.objects.as_of(before).get(identity=team.identity)
    assert sorted(m.name for m in team_then.mascots.all()) == ["m1.v1", "m2.v1"]
    assert {f.club_id for f in Fan.objects.as_of(before)} == {team.pk}
    assert RabidFan.objects.as_of(before).get().club_id == team.pk


def test_reversion_recover_a_deleted_object_with_relations():
    # django-reversion's "recover deleted object" with its relations: the
    # object comes back; what its delete cascaded to comes back one by one.
    rovers = club()
    mascots = [Mascot.objects.create(name=n, club=rovers) for n in ("bob", "bo")]
    rex = RabidFan.objects.create(name="rex", club=rovers)
    Ticket.objects.create(club=rovers)
    rovers.delete()

    restored = Club.all_versions.get(pk=rovers.pk).restore()
    assert restored.is_current and restored.version == 2
    assert Club.objects.get(identity=rovers.identity).pk == restored.pk
    # Restoring the club does not undo its delete's consequences: the
    # mascots stay closed, the plain ticket is gone for good, and the rabid
    # fan keeps the version that cleared its key.
    assert not Mascot.objects.exists()
    assert not Ticket.objects.exists()
    assert RabidFan.objects.get(identity=rex.identity).club_id is None
    # Each closed mascot comes back with its own restore(), to the club.
    back = [Mascot.all_versions.get(pk=m.pk).restore() for m in mascots]
    assert {m.version for m in back} == {2}
    assert {m.club.identity for m in back} == {rovers.identity}
    assert sorted(
        Mascot.objects.filter(club__identity=rovers.identity).values_list(
            "name", flat=True
        )
    ) == ["bo", "bob"]


# The admin's delete confirmation -----------------------------------------------


def admin_url(obj, view):
    return reverse(
        f"admin:testapp_{obj._meta.model_name}_{view}",
        args=() if view == "changelist" else (obj.pk,),
    )


def flattened(nested):
    for entry in nested:
        if isinstance(entry, list):
            yield from flattened(entry)
        else:
            yield str(entry)


def test_delete_page_lists_what_will_be_closed_deleted_and_set(admin_client):
    rovers = club()
    bob = Mascot.objects.create(name="bob", club=rovers)
    ticket = Ticket.objects.create(club=rovers)
    seat = Seat.objects.create(ticket=ticket)
    RabidFan.objects.create(name="rex", club=rovers)
    Fan.objects.create(name="ann", club=rovers)
    Scarf.objects.create(club=rovers)
    NonFan.objects.create(name="ned", club=rovers)

    response = admin_client.get(admin_url(rovers, "delete"))
    assert response.status_code == 200
    listed = response.context["deleted_objects"]
    assert str(listed[0]).startswith("Club: <a href=")
    assert "rovers</a> — will be closed (history kept)" in listed[0]
    below = list(flattened(listed[1]))
    assert len(below) == 6  # mascot, ticket, seat, rabid fan, fan, scarf
    text = " | ".join(below)
    assert f'{admin_url(bob, "change")}">bob</a> — will be closed (history kept)' in (
        text
    )
    assert f"Ticket: {ticket} — will be deleted" in text
    assert f"Seat: {seat} — will be deleted" in text
    assert "Rabid fan: rex — club will be set to NULL (as a new version)" in text
    assert "Fan: ann — club will be set to “free agents” (as a new version)" in text
    assert "Scarf: scarf" in text and "club will be set to NULL" in text
    assert "ned" not in text  # DO_NOTHING: nothing happens to it
    assert dict(response.context["model_count"]) == {
        "clubs closed (history kept)": 1,
        "mascots closed (history kept)": 1,
        "tickets deleted": 1,
        "seats deleted": 1,
        "rabid fans changed": 1,
        "fans changed": 1,
        "scarves changed": 1,
    }
    html = response.content.decode()
    assert "keeps its history, so it can be restored" in html
    assert "All of the following related items will be deleted" not in html

    admin_client.post(admin_url(rovers, "delete"), {"post": "yes"})
    assert not Club.objects.filter(identity=rovers.identity).exists()
    assert not Mascot.objects.exists() and not Ticket.objects.exists()
    assert RabidFan.objects.get().club_id is None


def test_delete_page_names_the_protected_objects_and_deletes_nothing(admin_client):
    springfield = city()
    rovers = Club.objects.create(name="rovers", city=springfield)
    WizardFan.objects.create(name="Gandalf", club=rovers)
    Trophy.objects.create(club=rovers)
    ticket = Ticket.objects.create(club=rovers)
    refund = Refund.objects.create(ticket=ticket)
    response = admin_client.get(admin_url(springfield, "delete"))
    protected = " | ".join(map(str, response.context["protected"]))
    assert "Wizard fan: Gandalf — protects club “rovers”" in protected
    assert "Trophy: trophy" in protected
    assert f"Refund: {refund} — protects ticket “{ticket}”" in protected
    assert len(response.context["protected"]) == 3
    html = response.content.decode()
    assert "cannot be deleted" in html and "Gandalf" in html
    before = database_state()
    admin_client.post(admin_url(springfield, "delete"), {"post": "yes"})
    assert database_state() == before


def test_delete_page_escapes_what_it_lists(admin_client):
    rovers = club("<b>rovers</b>")
    Mascot.objects.create(name="<script>alert(1)</script>", club=rovers)
    RabidFan.objects.create(name="<i>rex</i>", club=rovers)
    WizardFan.objects.create(name="<img src=x>", club=rovers)
    html = admin_client.get(admin_url(rovers, "delete")).content.decode()
    assert "<script>alert(1)" not in html and "<img src=x>" not in html
    assert "<b>rovers</b>" not in html and "&lt;img src=x&gt;" in html
    WizardFan.objects.all().delete()
    html = admin_client.get(admin_url(rovers, "delete")).content.decode()
    assert "<script>alert(1)" not in html and "<i>rex</i>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_delete_selected_lists_every_selected_object_and_its_referrers(admin_client):
    first, second = club_world("first"), club_world("second")
    data = {"action": "delete_selected", "_selected_action": [first.pk, second.pk]}
    response = admin_client.post(admin_url(first, "changelist"), data)
    assert response.status_code == 200
    [listed] = response.context["deletable_objects"]
    text = " | ".join(flattened(listed))
    assert text.count("will be closed (history kept)") == 4  # 2 clubs, 2 mascots
    assert text.count("will be deleted") == 4  # 2 tickets, 2 seats
    assert text.count("club will be set to NULL") == 4  # 2 rabid fans, 2 scarves
    assert dict(response.context["model_count"])["clubs closed (history kept)"] == 2
    html = response.content.decode()
    assert "keep their history, so they can be restored" in html

    admin_client.post(admin_url(first, "changelist"), {**data, "post": "yes"})
    assert not Club.objects.filter(pk__in=[first.pk, second.pk]).exists()
    assert Ticket.objects.count() == 0
    assert {fan.changed_by.username for fan in RabidFan.objects.all()} == {"admin"}


def test_delete_page_asks_for_the_permissions_the_cascade_needs():
    user = UserFactory(is_staff=True)
    for codename in ("view_club", "delete_club"):
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client = Client()
    client.force_login(user)
    rovers = club()
    Mascot.objects.create(name="bob", club=rovers)
    response = client.get(admin_url(rovers, "delete"))
    assert list(response.context["perms_lacking"]) == ["mascot"]


def test_the_deletion_preview_says_what_a_one_to_one_referrer_protects():
    from versioning.deletion_preview import DeletionPreview

    mill = Place.objects.create(name="mill")
    restaurant = Restaurant.objects.create(place=mill)
    preview = DeletionPreview("default", origin=[mill])
    preview.collect([mill])
    assert preview.protects(restaurant) == [mill]
