"""
The app under a primary/replica database router (docs/replicas.md).

- On both databases: the hint a router gets tells history reads from every
  other read, and the write paths ask the router for no read at all: every
  read a write depends on is made on the write's database.
- On PostgreSQL: a hot standby streamed from the suite's server (started by
  tests/pgserver.py), with docs/replicas.md's router taken from the page as
  written. Its replay is paused, so the replica is deliberately stale; history
  reads then show the replica's past while saves, stale checks, deferred
  field loads, related writes, restore, delete, set-based writes and the
  fixup act on the primary, also under a router that sends every read to the
  replica. Nothing waits for a time: the tests wait until the replica has
  replayed the primary's WAL position, or until its replay is paused.
"""

import re
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

import versioning
from tests import pgserver
from tests.conftest import saved
from tests.testapp.models import (
    Child,
    City,
    Club,
    Example,
    Item,
    Parent,
    Player,
    Tag,
    Team,
)
from versioning.exceptions import StaleVersionError
from versioning.forms import LOADED_VERSION_FIELD, versionedmodelform_factory

DOCS = Path(__file__).resolve().parent.parent / "docs" / "replicas.md"
PRIMARY, REPLICA = "default", "replica"


def recipe_router():
    """docs/replicas.md's router, executed as the page shows it."""
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.DOTALL)
    (code,) = [b for b in blocks if b.startswith("# myproject/routers.py\n")]
    namespace: dict = {}
    exec(code, namespace)
    return namespace["HistoryReplicaRouter"]()


class EveryReadToReplicaRouter:
    """Django's documented primary/replica router: every read to the replica."""

    def db_for_read(self, model, **hints):
        return REPLICA

    def db_for_write(self, model, **hints):
        return PRIMARY

    def allow_relation(self, obj1, obj2, **hints):
        return True

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db == PRIMARY


class RecordingRouter:
    """Routes nothing; records what each read asked, with its hints."""

    def __init__(self):
        self.reads = []

    def db_for_read(self, model, **hints):
        self.reads.append((model, hints))


# The hints, on both databases ----------------------------------------------------


@pytest.fixture
def recorded(settings):
    router = RecordingRouter()
    settings.DATABASE_ROUTERS = [router]
    return router.reads


def history_hints(reads):
    return [hints.get("versioning_history") for model, hints in reads]


@pytest.mark.django_db
def test_history_reads_carry_the_history_hint(recorded):
    item = saved(Item.objects.create(name="lamp"), name="desk lamp")
    recorded.clear()
    list(item.history())
    list(Item.all_versions.all())
    list(Item.objects.as_of(timezone.now()))
    item.previous_version()
    assert history_hints(recorded) == [True, True, True, True]
    assert recorded[0][1]["instance"] is item  # as Django routes related objects


@pytest.mark.django_db
def test_relations_followed_as_of_a_moment_carry_the_history_hint(recorded):
    team = Team.objects.create(name="Reds")
    Player.objects.create(name="ann", team=team)
    then = timezone.now()
    (ann,) = Player.objects.as_of(then)
    (reds,) = Team.objects.as_of(then)
    recorded.clear()
    assert ann.team == reds
    assert [p.name for p in reds.player_set.all()] == ["ann"]
    assert recorded and all(history_hints(recorded))


@pytest.mark.django_db
def test_other_reads_carry_no_history_hint(recorded):
    item = Item.objects.create(name="lamp")
    recorded.clear()
    list(Item.objects.all())
    list(Item.objects.filter(name="lamp").values("pk"))
    Item._base_manager.get(pk=item.pk)
    assert len(recorded) == 3 and not any(history_hints(recorded))


@pytest.mark.django_db
def test_current_version_reads_where_writes_go(recorded):
    item = Item.objects.create(name="lamp")
    recorded.clear()
    assert item.current_version() == item
    assert recorded == []


@pytest.mark.django_db
def test_writes_ask_the_router_for_no_read(recorded):
    tag, other = Tag.objects.create(name="red"), Tag.objects.create(name="blue")
    item = Item.objects.create(name="lamp", description="brass")
    item.tags.add(tag)
    child = Child.objects.create(data="c1")
    Parent.objects.create(child=child)
    deferred = Item.objects.only("name").get(pk=item.pk)
    recorded.clear()

    saved(deferred, name="floor lamp")  # loads the deferred fields first
    saved(child, data="c2")  # re-points the parent
    deferred.tags.add(other)
    deferred.tags.remove(tag)
    other.items.set([])
    Item.objects.filter(name="floor lamp").update(price=10)
    first = Item.all_versions.using(PRIMARY).get(identity=item.identity, version=1)
    recorded.clear()
    first.restore()
    child.delete()  # the parent's key is cleared (SET_NULL)
    Item.objects.filter(name="lamp").delete()

    assert recorded == []


def selects(captured):
    return [q["sql"] for q in captured if q["sql"].startswith("SELECT")]


@pytest.mark.django_db
def test_a_deferred_objects_bookkeeping_is_read_once_on_the_write_database(recorded):
    example = Example.objects.create(data="e1")
    partial = Example.objects.only("data").get(pk=example.pk)
    recorded.clear()
    with CaptureQueriesContext(connection) as saving:
        saved(partial, data="e2")  # its bookkeeping, then the rest of its data
    partial = Example.objects.only("data").get(pk=partial.pk)
    with CaptureQueriesContext(connection) as deleting:
        partial.delete()  # identity, version, valid_from, valid_to: one read
    assert len(selects(saving.captured_queries)) == 2
    assert len(selects(deleting.captured_queries)) == 1
    assert [model for model, hints in recorded] == [Example]  # the second only()


# A streaming replica, on PostgreSQL ------------------------------------------------


@pytest.fixture(scope="module")
def replica_server(django_db_setup, django_db_blocker):
    """
    A hot standby of the test database's server, made once the test database
    exists; the "replica" alias (a mirror of default elsewhere) points at it.
    """
    if connection.vendor != "postgresql":
        pytest.skip(
            "needs PostgreSQL streaming replication: run `make test`, which "
            "starts a throwaway primary this module streams a replica from"
        )
    bindir = pgserver.find_bindir()
    if bindir is None:
        pytest.skip("needs PostgreSQL's server programs here to start a replica")
    primary = connections[PRIMARY].settings_dict
    server = pgserver.start_replica(bindir, primary)
    replica = connections[REPLICA]
    mirrored = replica.settings_dict
    replica.close()
    # Still a test mirror for Django: never flushed, never wrapped in a
    # test transaction.
    replica.settings_dict = {
        **primary,
        "PORT": server.port,
        "TEST": {**primary["TEST"], "MIRROR": PRIMARY},
    }
    try:
        yield server
    finally:
        with django_db_blocker.unblock():
            replica.close()
        replica.settings_dict = mirrored
        server.stop()


def value(alias, sql, params=()):
    with connections[alias].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]


def wait_until(condition, what, seconds=60):
    """Poll a condition on the servers' state; no test relies on a delay."""
    for _ in range(seconds * 100):
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError(f"the replica did not {what} within {seconds} s")


def wait_for_replay():
    """Until the replica has replayed everything the primary has written."""
    written = value(PRIMARY, "SELECT pg_current_wal_lsn()::text")
    wait_until(
        lambda: value(
            REPLICA, "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [written]
        ),
        "replay the primary's WAL",
    )


@contextmanager
def replay_paused():
    """
    The replica stops replaying once it has caught up: what the primary
    writes inside the block is not on the replica until the block ends.
    """
    wait_for_replay()
    value(REPLICA, "SELECT pg_wal_replay_pause()::text")
    # Replay checks for a pause before each record, so nothing written from
    # now on is replayed, even before the state reads "paused".
    try:
        yield
    finally:
        value(REPLICA, "SELECT pg_wal_replay_resume()::text")
        wait_for_replay()


replica_test = pytest.mark.django_db(transaction=True, databases=[PRIMARY, REPLICA])


@pytest.fixture
def recipe(replica_server, settings):
    """docs/replicas.md's router: history to the replica, the rest to the primary."""
    settings.DATABASE_ROUTERS = [recipe_router()]
    wait_for_replay()


@pytest.fixture
def reads_on_replica(replica_server, settings):
    """A router that sends every read, history or not, to the replica."""
    settings.DATABASE_ROUTERS = [EveryReadToReplicaRouter()]
    wait_for_replay()


def versions_on(alias, obj):
    rows = type(obj).all_versions.using(alias).filter(identity=obj.identity)
    return list(rows.order_by("version").values_list("version", flat=True))


@replica_test
def test_the_replica_streams_the_test_database(recipe):
    assert value(REPLICA, "SELECT pg_is_in_recovery()") is True
    assert value(REPLICA, "SELECT current_database()") == value(
        PRIMARY, "SELECT current_database()"
    )


@replica_test
def test_history_reads_the_replica_and_current_rows_the_primary(recipe):
    item = Item.objects.create(name="lamp")
    with replay_paused():
        saved(item, name="desk lamp")
        assert versions_on(PRIMARY, item) == [1, 2]

        assert [v.version for v in item.history()] == [1]
        assert Item.all_versions.filter(identity=item.identity).count() == 1
        (then,) = Item.objects.as_of(timezone.now()).filter(identity=item.identity)
        assert then.name == "lamp" and then._state.db == REPLICA
        assert Item.objects.get(identity=item.identity).name == "desk lamp"
        # The retry after a StaleVersionError loads what a save accepts.
        assert item.history().first().current_version().version == 2
    assert [v.version for v in item.history()] == [1, 2]


@replica_test
def test_admin_history_pages_read_the_replica(recipe, admin_client):
    item = Item.objects.create(name="lamp")
    url = reverse("admin:testapp_item_history", args=[item.pk])
    with replay_paused():
        with versioning.changes(reason="renamed while the replica lags"):
            saved(item, name="desk lamp")
        with CaptureQueriesContext(connections[REPLICA]) as on_replica:
            page = admin_client.get(url).content.decode()
        assert on_replica.captured_queries
        assert "renamed while the replica lags" not in page
    page = admin_client.get(url).content.decode()
    assert "renamed while the replica lags" in page


@replica_test
def test_the_admin_restores_a_version_the_replica_has_not_replayed(
    recipe, admin_client
):
    item = Item.objects.create(name="lamp", description="brass")
    with replay_paused():
        saved(item, description="copper")
        saved(item, description="steel")
        second = Item.all_versions.using(PRIMARY).get(identity=item.identity, version=2)
        admin_client.post(
            reverse("admin:testapp_item_restore", args=[second.pk]),
            {"version": "2", "latest": "3"},
        )
        assert versions_on(PRIMARY, item) == [1, 2, 3, 4]
        assert Item.objects.get(identity=item.identity).description == "copper"


@replica_test
def test_a_stale_save_is_refused_though_the_replica_says_current(reads_on_replica):
    loaded = Item.objects.create(name="lamp")
    with replay_paused():
        saved(Item.objects.using(PRIMARY).get(pk=loaded.pk), name="desk lamp")
        assert Item.objects.get(identity=loaded.identity).version == 1  # replica

        with pytest.raises(StaleVersionError):
            saved(loaded, name="floor lamp")
        assert loaded.version == 1

        current = loaded.current_version()
        saved(current, name="floor lamp")
        assert versions_on(PRIMARY, loaded) == [1, 2, 3]


@replica_test
def test_a_form_opened_on_a_lagging_replica_is_refused(reads_on_replica):
    item = Item.objects.create(name="lamp", price=1)
    with replay_paused():
        saved(Item.objects.using(PRIMARY).get(pk=item.pk), price=2)
        opened = Item.objects.get(identity=item.identity)  # version 1, there
        assert (opened.version, opened.valid_to) == (1, None)
        data = {"name": "lamp", "price": "3", LOADED_VERSION_FIELD: "1"}
        form = versionedmodelform_factory(Item, fields=["name", "price"])(
            data, instance=opened
        )
        assert not form.is_valid() and form.has_conflict
        assert form.current_version.version == 2
        assert versions_on(PRIMARY, item) == [1, 2]


@replica_test
def test_a_save_loads_deferred_fields_from_the_primary(reads_on_replica):
    item = Item.objects.create(name="lamp", description="brass")
    with replay_paused():
        saved(item, description="copper")  # version 2: not on the replica
        partial = Item.objects.using(PRIMARY).only("name").get(pk=item.pk)
        saved(partial, name="desk lamp")
        newest = Item.objects.using(PRIMARY).get(identity=item.identity)
        assert (newest.version, newest.description) == (3, "copper")


@replica_test
def test_an_object_read_from_the_replica_is_saved_and_fixed_up_on_the_primary(
    reads_on_replica,
):
    child = Child.objects.create(data="c1")
    with replay_paused():
        parent = Parent.objects.create(child=child)  # only on the primary
        read = Child.objects.get(pk=child.pk)
        assert read._state.db == REPLICA
        saved(read, data="c2")
        assert read._state.db == PRIMARY
        assert Parent.objects.using(PRIMARY).get(pk=parent.pk).child_id == read.pk


@replica_test
def test_link_changes_compare_with_the_primarys_links(reads_on_replica):
    red, blue = Tag.objects.create(name="red"), Tag.objects.create(name="blue")
    item = Item.objects.create(name="lamp")
    with replay_paused():
        item.tags.add(red)  # version 2, linked to red: not on the replica
        item.tags.add(red)  # already linked: no new version
        assert versions_on(PRIMARY, item) == [1, 2]

        blue.items.add(item)
        red.items.set([])  # from the other side: the primary's links count
        current = Item.objects.using(PRIMARY).get(identity=item.identity)
        assert {t.name for t in current.tags.using(PRIMARY)} == {"blue"}
        assert versions_on(PRIMARY, item) == [1, 2, 3, 4]


@replica_test
def test_restore_reads_the_primary(reads_on_replica):
    item = Item.objects.create(name="lamp", description="brass")
    with replay_paused():
        saved(item, description="copper")
        first = Item.all_versions.get(identity=item.identity, version=1)
        assert first._state.db == REPLICA
        restored = first.restore()
        assert (restored.version, restored.description) == (3, "brass")
        assert versions_on(PRIMARY, item) == [1, 2, 3]


@replica_test
def test_delete_applies_on_delete_to_referrers_only_the_primary_has(
    reads_on_replica,
):
    city = City.objects.create(name="Ghent")
    with replay_paused():
        club = Club.objects.create(name="AA Gent", city=city)  # not on the replica
        City.objects.get(pk=city.pk).delete()
        assert not Club.objects.using(PRIMARY).filter(identity=club.identity).exists()
        assert versions_on(PRIMARY, club) == [1]


@replica_test
def test_set_based_writes_match_rows_on_the_primary(reads_on_replica):
    with replay_paused():
        lamp = Item.objects.create(name="lamp")  # only on the primary
        chair = Item.objects.create(name="chair")
        assert Item.objects.filter(name__in=["lamp", "chair"]).update(price=5) == 2
        lamp = Item.objects.using(PRIMARY).get(identity=lamp.identity)
        lamp.price = 7
        assert Item.objects.bulk_update([lamp], ["price"]) == 1
        assert Item.objects.filter(name="chair").delete()[0] == 1
        assert versions_on(PRIMARY, lamp) == [1, 2, 3]
        assert not Item.objects.using(PRIMARY).filter(name="chair").exists()
        Item.all_versions.filter(identity=chair.identity).purge()
        assert versions_on(PRIMARY, chair) == []
