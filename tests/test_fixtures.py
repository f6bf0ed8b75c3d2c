"""
Fixtures: versioning's dumpdata and Django's loaddata reproduce versioned rows.

Each round trip writes a fixture with call_command, empties the database
(flush), loads the fixture and compares every column of every row, the link
tables and as_of() at every moment the history has. The clock advances by a
third of a millisecond per reading, so the intervals between versions are
shorter than the milliseconds Django's JSON encoder keeps.
"""

import datetime
import io
import itertools
from unittest import mock

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.core import serializers
from django.core.management import call_command, get_commands
from django.core.management.commands.dumpdata import Command as DjangosDumpdata
from django.db import models

import versioning
from tests.factories import DocumentFactory, ItemFactory, UserFactory
from tests.testapp.models import (
    Article,
    Bundle,
    Directory,
    Item,
    Note,
    Order,
    OrderLine,
    Place,
    Placement,
    Player,
    Recipe,
    Restaurant,
    Review,
    Shelf,
    Supplier,
    Tag,
    Team,
    Wine,
    WineDrinker,
)
from versioning.tracking import is_versioned

FORMATS = ["json", "jsonl", "xml"]
START = datetime.datetime(2026, 3, 1, 9, 30, 0, 1, tzinfo=datetime.UTC)
STEP = datetime.timedelta(microseconds=333)
# Django's own ContentType rows are made again by flush: refer to them by name.
DUMP = {"natural_foreign": True, "verbosity": 0}


@pytest.fixture
def clock():
    """A clock that advances by STEP at each reading."""
    ticks = (START + n * STEP for n in itertools.count())
    with mock.patch("django.utils.timezone.now", side_effect=lambda: next(ticks)):
        yield


def saved(obj, **changes):
    for name, value in changes.items():
        setattr(obj, name, value)
    obj.save()
    return obj


def build_history():
    """Every kind of row and reference, each with a few versions."""
    # Rows of plain models are written as Django writes them: to the millisecond.
    alice = UserFactory(username="alice", date_joined=START.replace(microsecond=0))
    with versioning.changes(user=alice, reason="opening"):
        red = Tag.objects.create(name="red")
        lamp = ItemFactory(name="lamp", price=10)
        lamp.tags.add(red)
        lamp.suppliers.add(Supplier.objects.create(name="acme"))
        Order.objects.create(item=lamp)
        review = Review.objects.create(item=lamp, text="fine")
        Bundle.objects.create(name="set").items.add(lamp)
    saved(lamp, price=12)
    OrderLine.objects.create(item=lamp)  # pinned to this version
    Note.objects.create(target=lamp, text="lamp at 12")
    saved(review, text="finer")
    saved(lamp, description="brighter", attributes={"watts": [40, 60]})
    gone = ItemFactory(name="gone")
    saved(gone, price=1)
    gone.delete()

    document = DocumentFactory(title="draft")
    Placement.objects.create(shelf=Shelf.objects.create(name="top"), document=document)
    saved(document, title="final", summary=None)

    article = Article.objects.create(title="news", slug="news", amount="1.50")
    saved(article, title="more news", counter=2)

    team = Team.objects.create(name="reds")
    captain = Player.objects.create(name="ann", team=team)
    saved(team, captain=captain)
    saved(captain, name="anne")

    root = Directory.objects.create(name="root")
    child = Directory.objects.create(name="child", parent=root)
    saved(child, name="kid")
    saved(root, name="/")

    wine = Wine.objects.create(name="red", vintage=2001)
    drinker = WineDrinker.objects.create(name="dee")
    drinker.glasses.add(wine)
    saved(wine, vintage=2002)
    saved(drinker, name="di")
    wine.current_version().delete()

    recipe = Recipe.objects.create(title="soup", served_at=datetime.time(12, 0, 0, 1))
    recipe.notes.create(text="too salty")
    saved(recipe, served_at=datetime.time(12, 0, 0, 2))

    place = Place.objects.create(name="corner")
    Restaurant.objects.create(place=place, rating=3)
    saved(place, name="the corner")


def dumped_models():
    return [
        *apps.get_app_config("testapp").get_models(include_auto_created=True),
        get_user_model(),
    ]


def rows():
    """
    Every column of every row. Link tables as their pairs, owner first (their
    ids are not part of a fixture); content types by name (flush makes them
    again).
    """
    content_types = {ct.pk: ct.natural_key() for ct in ContentType.objects.all()}
    found = {}
    for model in dumped_models():
        queryset = models.QuerySet(model=model)
        if model._meta.auto_created:
            found[model._meta.label] = sorted(
                queryset.values_list(*link_columns(model))
            )
            continue
        found[model._meta.label] = list(queryset.order_by("pk").values())
        for field in model._meta.concrete_fields:
            if field.is_relation and field.related_model is ContentType:
                for row in found[model._meta.label]:
                    row[field.attname] = content_types[row[field.attname]]
    return found


def link_columns(through):
    """The owner's and the target's column of an automatic link table."""
    [m2m] = [
        field
        for field in through._meta.auto_created._meta.local_many_to_many
        if field.remote_field.through is through
    ]
    return [
        through._meta.get_field(m2m.m2m_field_name()).attname,
        through._meta.get_field(m2m.m2m_reverse_field_name()).attname,
    ]


def as_of_answers():
    """as_of() of every versioned model, at and around every moment of history."""
    versioned = [model for model in dumped_models() if is_versioned(model)]
    moments = set()
    for model in versioned:
        for start, end in model.all_versions.values_list("valid_from", "valid_to"):
            moments.update(m for m in (start, end) if m is not None)
    tick = datetime.timedelta(microseconds=1)
    moments = sorted({m + d for m in moments for d in (-tick, 0 * tick, tick)})
    return {
        (model._meta.label, moment): list(
            model.objects.as_of(moment).order_by("pk").values_list("pk", flat=True)
        )
        for model in versioned
        for moment in moments
    }


def reload(path):
    call_command("flush", interactive=False, verbosity=0)
    ContentType.objects.clear_cache()  # flush made them again, with new ids
    assert not Item.all_versions.exists()
    call_command("loaddata", str(path), verbosity=0)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("format", FORMATS)
def test_dumpdata_all_and_loaddata_reproduce_every_row(clock, tmp_path, format):
    build_history()
    before, answers = rows(), as_of_answers()
    assert len(answers) > 1000
    path = tmp_path / f"history.{format}"

    call_command(
        "dumpdata",
        "testapp",
        "auth.user",
        all=True,
        format=format,
        output=str(path),
        **DUMP,
    )
    stamp = Item.all_versions.order_by("pk").first().valid_to.strftime("%S.%f")
    assert not stamp.endswith("000") and stamp in path.read_text()  # all of it
    reload(path)

    assert rows() == before
    assert as_of_answers() == answers


@pytest.mark.django_db(transaction=True)
def test_djangos_own_dumpdata_loses_these_intervals(clock, tmp_path):
    """The round trip above would catch the loss it guards against."""
    build_history()
    answers = as_of_answers()
    path = tmp_path / "history.json"
    call_command(
        DjangosDumpdata(), "testapp", "auth.user", all=True, output=str(path), **DUMP
    )
    reload(path)
    assert as_of_answers() != answers


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("format", FORMATS)
def test_plain_dumpdata_loads_with_the_versions_its_rows_point_at(
    clock, tmp_path, format
):
    build_history()
    before = rows()
    pinned = OrderLine.objects.get()
    noted = Note.objects.get(text="lamp at 12")
    noted_version = (noted.target.pk, noted.target.version)
    drinker = WineDrinker.objects.get().pk
    path = tmp_path / f"current.{format}"

    call_command(
        "dumpdata", "testapp", "auth.user", format=format, output=str(path), **DUMP
    )
    reload(path)

    after = rows()
    for model in dumped_models():
        label = model._meta.label
        if is_versioned(model):
            current = [row for row in before[label] if row["valid_to"] is None]
            assert [row for row in after[label] if row["valid_to"] is None] == current
            # The historical rows that came along are exact copies.
            assert all(row in before[label] for row in after[label])
        elif model._meta.auto_created:  # the links of the rows written
            owners = {row["id"] for row in after[model._meta.auto_created._meta.label]}
            assert after[label] == [p for p in before[label] if p[0] in owners], label
        else:
            assert after[label] == before[label], label
    assert OrderLine.objects.get().item_id == pinned.item_id
    assert OrderLine.objects.get().item.price == 12
    target = Note.objects.get(pk=noted.pk).target
    assert (target.pk, target.version) == noted_version
    assert target.valid_to is not None
    # The drinker's link to the deleted wine's last row came along with it.
    assert after["testapp.Wine"] == before["testapp.Wine"][-1:]
    assert after["testapp.WineDrinker_glasses"] == [
        (drinker, before["testapp.Wine"][-1]["id"])
    ]
    # Nothing points at the lamp's first version: a dump of current rows skips it.
    assert not Item.all_versions.filter(name="lamp", version=1).exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "labels, excludes",
    [(["testapp.OrderLine"], []), (["testapp"], ["testapp.Item"])],
)
def test_versions_of_models_left_out_of_a_dump_stay_out(labels, excludes):
    item = ItemFactory()
    OrderLine.objects.create(item=item)
    saved(item, price=99)
    out = io.StringIO()
    call_command("dumpdata", *labels, exclude=excludes, stdout=out)
    assert '"testapp.item"' not in out.getvalue()


@pytest.mark.django_db
def test_models_without_versions_are_written_exactly_as_django_writes_them(clock):
    build_history()
    labels = ["auth", "testapp.Tag", "testapp.Supplier", "testapp.Order"]
    ours, djangos = io.StringIO(), io.StringIO()
    call_command("dumpdata", *labels, indent=2, stdout=ours)
    call_command(DjangosDumpdata(), *labels, indent=2, stdout=djangos)
    assert ours.getvalue() == djangos.getvalue()


@pytest.mark.django_db
def test_dumpdata_is_versionings_and_leaves_the_serializers_as_they_were():
    assert get_commands()["dumpdata"] == "versioning"
    json_serializer = serializers.get_serializer("json")
    call_command("dumpdata", "testapp.Item", stdout=io.StringIO())
    with pytest.raises(Exception, match="Unknown model"):
        call_command("dumpdata", "testapp.Nope", stdout=io.StringIO())
    with pytest.raises(Exception, match="Unknown serialization format: nope"):
        call_command("dumpdata", format="nope", stdout=io.StringIO())
    assert serializers.get_serializer("json") is json_serializer
    assert json_serializer.__module__ == "django.core.serializers.json"


@pytest.mark.django_db
def test_the_serializers_can_be_a_projects_own(settings):
    """Named in SERIALIZATION_MODULES: exact times everywhere, no rows added."""
    settings.SERIALIZATION_MODULES = {"json": "versioning.serializers.json"}
    item = ItemFactory()
    OrderLine.objects.create(item=item)
    saved(item, price=2)
    assert '"testapp.item"' not in serializers.serialize(
        "json", OrderLine.objects.all()
    )
    exact = item.valid_from.isoformat().removesuffix("+00:00") + "Z"
    assert exact in serializers.serialize("json", Item.all_versions.all())
    # dumpdata keeps the project's choice, and adds the pinned version.
    out = io.StringIO()
    call_command("dumpdata", "testapp.Item", "testapp.OrderLine", stdout=out)
    assert f'"pk": {OrderLine.objects.get().item_id}' in out.getvalue()
    assert (
        serializers.get_serializer("json").__module__ == "versioning.serializers.json"
    )


@pytest.mark.django_db
def test_links_are_read_once_per_chunk_not_once_per_row(django_assert_num_queries):
    red = Tag.objects.create(name="red")
    for n in range(30):
        item = ItemFactory(name=f"item {n}")
        item.tags.add(red)
        Bundle.objects.create(name=f"set {n}").items.add(item)
    # Items, their links, the tags; bundles, their links, the items linked.
    with django_assert_num_queries(6):
        call_command("dumpdata", "testapp.Item", "testapp.Bundle", stdout=io.StringIO())


@pytest.mark.django_db
def test_a_dump_naming_more_versions_than_a_query_can_take():
    items = Item.objects.bulk_create(Item(name=f"item {n}") for n in range(1100))
    OrderLine.objects.bulk_create(OrderLine(item=item) for item in items)
    Item.objects.update(price=2)
    out = io.StringIO()
    call_command("dumpdata", "testapp.Item", "testapp.OrderLine", stdout=out)
    assert out.getvalue().count('"valid_to": "') == 1100
