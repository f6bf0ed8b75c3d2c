"""
Real concurrency on PostgreSQL: real threads, one database connection each.

What the app promises for writes and relations: two writes from
the same loaded version never both succeed, at every isolation level; the
loser gets StaleVersionError and has written nothing; no IntegrityError,
deadlock or serialization failure leaks from save(), delete(), restore(),
update() or bulk_update(); an object never forks (at most one current row,
versions 1..n); two versioned models that point at each other and are saved
concurrently never deadlock into an unhandled error.

No assertion depends on timing. Barriers and events order the threads; where
a race has more than one legal result, every legal result is accepted and the
state it must leave is checked exactly. Timeouts are only safety nets, so that
a broken library fails a test instead of hanging it.
"""

import queue
import random
import threading
import time
import traceback
import uuid
from contextlib import contextmanager

import pytest
from django.db import connection, transaction
from django.db.backends.postgresql.psycopg_any import IsolationLevel
from django.db.models import F
from django.db.models.signals import pre_save
from django.db.transaction import TransactionManagementError

from tests.conftest import wait_until_waiting_for_a_lock
from tests.testapp.models import Example, Item, Order, Player, Review, Tag, Team
from versioning.exceptions import StaleVersionError

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

SAVED = "saved"

#: Safety net for barriers, events and joins; never reached when all is well.
WAIT = 30

LEVELS = ["READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE"]

DEADLOCK = "40P01"


# Helpers -----------------------------------------------------------------------


def run_in_threads(*targets):
    """Run each target in its own thread; "saved" or the error it raised, in order."""
    outcomes = [None] * len(targets)

    def runner(index, target):
        try:
            target()
            outcomes[index] = SAVED
        except BaseException as error:  # recorded and asserted on below
            outcomes[index] = error
        finally:
            connection.close()

    threads = [
        threading.Thread(target=runner, args=(i, t), daemon=True)
        for i, t in enumerate(targets)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=2 * WAIT)
    assert not any(thread.is_alive() for thread in threads), "a writer hung"
    return outcomes


def describe(outcomes):
    """Outcomes with the tracebacks of the errors, for assertion messages."""
    return "\n".join(
        o if o == SAVED else "".join(traceback.format_exception(o)) for o in outcomes
    )


def assert_saved_or_stale(outcomes):
    """Every write either saved or raised StaleVersionError: nothing else leaks."""
    unexpected = [
        o for o in outcomes if o != SAVED and not isinstance(o, StaleVersionError)
    ]
    assert not unexpected, describe(unexpected)


def assert_one_saved_one_stale(outcomes):
    assert_saved_or_stale(outcomes)
    assert sorted(map(type, outcomes), key=str) == sorted(
        [str, StaleVersionError], key=str
    ), describe(outcomes)


def assert_never_forked(model, identity, *, current=1):
    """
    Versions 1..n without a gap, intervals that follow each other, and
    ``current`` current rows (None: zero or one), the latest version's.
    """
    rows = list(
        model.all_versions.filter(identity=identity)
        .order_by("version")
        .values_list("version", "valid_from", "valid_to")
    )
    numbers = [version for version, _, _ in rows]
    assert numbers == list(range(1, len(numbers) + 1)), rows
    open_versions = [version for version, _, valid_to in rows if valid_to is None]
    if current is None:
        assert open_versions in ([], numbers[-1:]), rows
    else:
        assert len(open_versions) == current, rows
        assert open_versions == numbers[len(numbers) - current :], rows
    for (_, _, closed_at), (_, started_at, _) in zip(rows, rows[1:], strict=False):
        assert closed_at is not None and closed_at <= started_at, rows
    return rows


def is_deadlock(error):
    while error is not None:
        if getattr(error, "sqlstate", None) == DEADLOCK:
            return True
        error = error.__cause__
    return False


def count_deadlocks(outcomes):
    """For information only: whether a deadlock happens depends on timing."""
    return sum(1 for o in outcomes if o != SAVED and is_deadlock(o))


@contextmanager
def isolation(level, scope):
    """
    Run the block at ``level``: "session" sets the connection's default (the
    library's own transactions use it, as with Django's isolation_level
    option); "transaction" runs the block in the caller's atomic() whose first
    statement sets the level.
    """
    if scope == "session":
        with connection.cursor() as cursor:
            cursor.execute(
                f"SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL {level}"
            )
            cursor.execute("SHOW default_transaction_isolation")
            assert cursor.fetchone()[0] == level.lower()
        yield
        return
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"SET TRANSACTION ISOLATION LEVEL {level}")
            cursor.execute("SHOW transaction_isolation")
            assert cursor.fetchone()[0] == level.lower()
        yield


def new_item(**values):
    return Item.objects.create(name=f"item {uuid.uuid4()}", **values)


# Two saves from one version ----------------------------------------------------


def test_two_saves_from_the_same_version_never_both_succeed(on_postgres):
    for _ in range(10):
        obj = Example.objects.create(data="start")
        start = threading.Barrier(2, timeout=WAIT)

        def edit(text, pk=obj.pk, start=start):
            mine = Example.objects.get(pk=pk)
            start.wait()
            mine.data = text
            mine.save()

        outcomes = run_in_threads(lambda: edit("a"), lambda: edit("b"))
        assert_one_saved_one_stale(outcomes)
        history = assert_never_forked(Example, obj.identity)
        assert [version for version, _, _ in history] == [1, 2]
        winner = "a" if outcomes[0] == SAVED else "b"
        assert Example.objects.get(identity=obj.identity).data == winner


def test_a_save_waiting_on_a_lock_sees_the_committed_version_and_fails_cleanly(
    on_postgres,
):
    obj = Example.objects.create(data="start")
    first_has_lock = threading.Event()

    def slow_first():
        mine = Example.objects.get(pk=obj.pk)
        with transaction.atomic():
            mine.data = "first"
            mine.save()
            first_has_lock.set()
            time.sleep(0.3)  # makes it likely that the second waits on the lock

    def second():
        mine = Example.objects.get(pk=obj.pk)
        assert first_has_lock.wait(WAIT)
        mine.data = "second"
        mine.save()  # blocks on the row lock, then finds the row closed

    outcomes = run_in_threads(slow_first, second)
    assert outcomes[0] == SAVED, describe(outcomes)
    assert isinstance(outcomes[1], StaleVersionError), describe(outcomes)
    assert Example.objects.get(identity=obj.identity).data == "first"
    assert_never_forked(Example, obj.identity)


# What each racing write does to one loaded Item, and what it leaves if it won:
# (number of versions, current price or None when the object is deleted).
PRICES = {"save": 1, "save again": 2, "bulk_update": 3}


def write(operation, mine):
    if operation == "delete":
        mine.delete()
        return
    mine.price = PRICES[operation]
    if operation == "bulk_update":
        assert Item.objects.bulk_update([mine], ["price"]) == 1
    else:
        mine.save()


def expected_state(operation):
    return (1, None) if operation == "delete" else (2, PRICES[operation])


@pytest.mark.parametrize("scope", ["session", "transaction"])
@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize(
    "operations",
    [
        ("save", "save again"),
        ("save", "delete"),
        ("bulk_update", "save"),
        ("bulk_update", "delete"),
    ],
    ids="-vs-".join,
)
def test_two_writes_from_one_version_at_each_isolation_level(
    on_postgres, operations, level, scope
):
    """Exactly one wins, the other is stale; the state is the winner's."""
    for _ in range(3):
        item = new_item(price=0)
        start = threading.Barrier(2, timeout=WAIT)

        def racer(operation, pk=item.pk, start=start):
            with isolation(level, scope):
                mine = Item.objects.get(pk=pk)
                start.wait()
                write(operation, mine)

        outcomes = run_in_threads(*(lambda o=o: racer(o) for o in operations))
        assert_one_saved_one_stale(outcomes)
        winner = operations[outcomes.index(SAVED)]
        versions, price = expected_state(winner)
        history = assert_never_forked(
            Item, item.identity, current=0 if price is None else 1
        )
        assert len(history) == versions, (winner, history)
        if price is not None:
            assert Item.objects.get(identity=item.identity).price == price


@pytest.mark.parametrize("level", LEVELS)
def test_a_save_racing_update_keeps_both_or_one_never_forks(on_postgres, level):
    """
    update() is set-based (no loaded version): both may succeed, but only if
    the save committed first; the state says exactly which ones did. The
    plain referrer always ends up on the current row.
    """
    for _ in range(4):
        item = new_item(price=0)
        order = Order.objects.create(item=item)
        start = threading.Barrier(2, timeout=WAIT)

        def save(pk=item.pk, start=start):
            with isolation(level, "session"):
                mine = Item.objects.get(pk=pk)
                start.wait()
                mine.price = 1
                mine.save()

        def update(identity=item.identity, start=start):
            with isolation(level, "session"):
                start.wait()
                changed = Item.objects.filter(identity=identity).update(
                    price=F("price") + 10
                )
                assert changed == 1

        outcomes = run_in_threads(save, update)
        assert_saved_or_stale(outcomes)
        saved, updated = (o == SAVED for o in outcomes)
        assert saved or updated, describe(outcomes)
        history = assert_never_forked(Item, item.identity)
        assert len(history) == 1 + saved + updated, (outcomes, history)
        current = Item.objects.get(identity=item.identity)
        assert current.price == 1 * saved + 10 * updated
        order.refresh_from_db()
        assert order.item_id == current.pk


def stale_write(operation, mine):
    if operation == "save":
        mine.data = "mine"
        mine.save()
    elif operation == "delete":
        mine.delete()
    elif operation == "restore":
        mine.restore()
    elif operation == "bulk_update":
        mine.data = "mine"
        Example.objects.bulk_update([mine], ["data"])
    elif operation == "update":
        Example.objects.filter(identity=mine.identity).update(data="mine")
    else:
        Example.objects.filter(identity=mine.identity).delete()


@pytest.mark.parametrize(
    "operation",
    [
        "save",
        "bulk_update",
        "update",
        "restore",
        "delete",
        "queryset delete",
    ],
)
def test_a_stale_write_in_the_callers_repeatable_read_transaction_keeps_it_usable(
    on_postgres, operation
):
    """
    The caller's REPEATABLE READ transaction (the level Django's OPTIONS
    name) loaded the object; another connection saves it; the caller's write
    then meets a serialization failure. It is a StaleVersionError, nothing
    was written, and the caller's transaction can go on (as after any error
    inside a savepoint).
    """

    def after_stale(mine):
        return Example.all_versions.filter(identity=mine.identity).count()

    # The caller's snapshot, from before the other save.
    assert stale_in_repeatable_read(operation, after_stale, django_told=True) == 1


def test_a_stale_save_at_an_isolation_level_django_was_not_told_aborts_the_transaction(
    on_postgres,
):
    """
    A REPEATABLE READ set by SQL inside the caller's atomic(), not through
    OPTIONS: the one-statement save has no savepoint, so its serialization
    failure aborts the caller's transaction, as it would a plain save's. The
    error is still a StaleVersionError and nothing was written.
    """

    def after_stale(mine):
        with pytest.raises(TransactionManagementError):
            Example.all_versions.count()
        return mine.version

    # The object is as it was loaded.
    assert stale_in_repeatable_read("save", after_stale, django_told=False) == 1


def stale_in_repeatable_read(operation, after_stale, *, django_told):
    """
    In the caller's REPEATABLE READ transaction, load an object, let another
    connection save it, then write it (stale): what ``after_stale(mine)``
    returns inside that transaction. Also checks nothing was written.
    """
    obj = Example.objects.create(data="start")
    loaded = threading.Event()
    other_saved = threading.Event()
    seen = []

    def caller():
        if django_told:
            # What OPTIONS {"isolation_level": ...} tells this thread's
            # connection (Django sets the attribute when it connects).
            connection.ensure_connection()
            connection.isolation_level = IsolationLevel.REPEATABLE_READ
        try:
            with isolation("REPEATABLE READ", "transaction"):
                mine = Example.objects.get(pk=obj.pk)
                loaded.set()
                assert other_saved.wait(WAIT)
                with pytest.raises(StaleVersionError):
                    stale_write(operation, mine)
                seen.append(after_stale(mine))
        finally:
            loaded.set()

    def other():
        try:
            assert loaded.wait(WAIT)
            theirs = Example.objects.get(pk=obj.pk)
            theirs.data = "theirs"
            theirs.save()
        finally:
            other_saved.set()

    outcomes = run_in_threads(caller, other)
    assert outcomes == [SAVED, SAVED], describe(outcomes)
    assert len(assert_never_forked(Example, obj.identity)) == 2
    assert Example.objects.get(identity=obj.identity).data == "theirs"
    (result,) = seen
    return result


def test_concurrent_update_and_save_on_the_same_rows(on_postgres):
    objs = [Example.objects.create(data=f"row {n}") for n in range(20)]
    start = threading.Barrier(2, timeout=WAIT)

    def bulk():
        start.wait()
        Example.objects.filter(pk__in=[o.pk for o in objs]).update(data="bulk")

    def single():
        mine = Example.objects.get(pk=objs[10].pk)
        start.wait()
        mine.data = "single"
        mine.save()

    outcomes = run_in_threads(bulk, single)
    assert SAVED in outcomes, describe(outcomes)
    assert_saved_or_stale(outcomes)
    for obj in objs:
        assert_never_forked(Example, obj.identity)


# Restore -----------------------------------------------------------------------


def restore_twice(level, *, one_after_the_other):
    """
    Two restores of version 1 of a deleted object, loaded before either runs:
    together (after a barrier), or the second only once the first committed.
    Both may succeed (the second finds the data already current and returns
    the current version, by design) or one may be stale; never a fork.
    """
    obj = Example.objects.create(data="v1")
    obj.data = "v2"
    obj.save()
    obj.delete()
    loaded = threading.Barrier(2, timeout=WAIT)
    first_done = threading.Event()
    returned = [None, None]

    def restore(index):
        try:
            with isolation(level, "session"):
                old = Example.all_versions.get(identity=obj.identity, version=1)
                loaded.wait()
                if one_after_the_other and index == 1:
                    assert first_done.wait(WAIT)
                returned[index] = old.restore()
        finally:
            if index == 0:
                first_done.set()

    outcomes = run_in_threads(lambda: restore(0), lambda: restore(1))
    assert_saved_or_stale(outcomes)
    assert SAVED in outcomes, describe(outcomes)
    if one_after_the_other:
        assert outcomes == [SAVED, SAVED], describe(outcomes)
    history = assert_never_forked(Example, obj.identity)
    assert [version for version, _, _ in history] == [1, 2, 3]
    current = Example.objects.get(identity=obj.identity)
    assert current.data == "v1"
    for outcome, version in zip(outcomes, returned, strict=True):
        if outcome == SAVED:
            assert (version.pk, version.version, version.data) == (current.pk, 3, "v1")
            assert version.is_current
        else:
            assert version is None


@pytest.mark.parametrize("level", LEVELS)
def test_concurrent_restores_of_a_deleted_object_never_fork(on_postgres, level):
    for _ in range(4):
        restore_twice(level, one_after_the_other=False)


@pytest.mark.parametrize("level", LEVELS)
def test_a_restore_that_finds_the_data_already_restored_returns_it(on_postgres, level):
    restore_twice(level, one_after_the_other=True)


@pytest.mark.parametrize(
    "model, field",
    [
        (Example, "data"),
        (Item, "name"),
    ],
    ids=["no data constraint", "scoped unique name"],
)
def test_a_restore_that_waited_for_a_concurrent_restore_is_stale_or_returns_it(
    on_postgres, model, field
):
    """
    The second restore of a deleted object runs while the first one's
    transaction holds its locks (it provably waits), then goes on after the
    first commits: it returns the restored version or is stale; a lost race
    is never an IntegrityError, even when the data has its own scoped unique
    constraint (the colliding row is the same object's).
    """
    obj = model.objects.create(**{field: f"restored {uuid.uuid4()}"})
    setattr(obj, field, f"changed {uuid.uuid4()}")
    obj.save()
    obj.delete()
    second_pid = []
    second_ready = threading.Event()
    first_holds_locks = threading.Event()
    second_done = threading.Event()

    def first():
        try:
            old = model.all_versions.get(identity=obj.identity, version=1)
            assert second_ready.wait(WAIT)
            with transaction.atomic():
                old.restore()
                first_holds_locks.set()
                wait_until_waiting_for_a_lock(second_pid[0], second_done)
        finally:
            first_holds_locks.set()

    def second():
        try:
            old = model.all_versions.get(identity=obj.identity, version=1)
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                second_pid.append(cursor.fetchone()[0])
            second_ready.set()
            assert first_holds_locks.wait(WAIT)
            old.restore()
        finally:
            second_ready.set()
            second_done.set()

    outcomes = run_in_threads(first, second)
    assert outcomes[0] == SAVED, describe(outcomes)
    assert_saved_or_stale(outcomes)
    history = assert_never_forked(model, obj.identity)
    assert len(history) == 3
    restored = model.objects.get(identity=obj.identity)
    assert getattr(restored, field) == getattr(
        model.all_versions.get(identity=obj.identity, version=1), field
    )


# Two versioned models pointing at each other: Team.captain and Player.team -----


def version_counts(team_identity, player_identity):
    """How many versions the team and the player have now."""
    return (
        Team.all_versions.filter(identity=team_identity).count(),
        Player.all_versions.filter(identity=player_identity).count(),
    )


def team_with_captain():
    """A current team whose captain plays for it; (team identity, player identity)."""
    team = Team.objects.create(name="team")
    captain = Player.objects.create(name="captain", team=team)
    team.captain = captain
    team.save()
    assert_pointers_current(team.identity, captain.identity)
    return team.identity, captain.identity


def assert_pointers_current(team_identity, player_identity):
    """Each current row points at the other's current row, never at a closed one."""
    team = Team.objects.get(identity=team_identity)
    player = Player.objects.get(identity=player_identity)
    assert (team.captain_id, player.team_id) == (player.pk, team.pk), (
        list(Team.all_versions.values_list("pk", "version", "valid_to", "captain_id")),
        list(Player.all_versions.values_list("pk", "version", "valid_to", "team_id")),
    )


def assert_team_and_player_intact(team_identity, player_identity, versions):
    """Each identity has one current row and ``versions`` contiguous versions."""
    team_rows = assert_never_forked(Team, team_identity)
    player_rows = assert_never_forked(Player, player_identity)
    assert (len(team_rows), len(player_rows)) == versions


def test_a_team_and_its_captain_saved_concurrently(on_postgres):
    """
    Saving a team re-points its players, saving a player re-points the teams
    it captains: the two saves take the same two row locks in opposite orders
    and may deadlock. Either way each write is saved or stale.
    """
    deadlocks = 0
    for _ in range(6):
        team_identity, player_identity = team_with_captain()
        before = version_counts(team_identity, player_identity)
        start = threading.Barrier(2, timeout=WAIT)

        def save_team(start=start, identity=team_identity):
            team = Team.objects.get(identity=identity)
            start.wait()
            team.name = "saved by team writer"
            team.save()

        def save_player(start=start, identity=player_identity):
            player = Player.objects.get(identity=identity)
            start.wait()
            player.name = "saved by player writer"
            player.save()

        outcomes = run_in_threads(save_team, save_player)
        deadlocks += count_deadlocks(outcomes)
        assert_saved_or_stale(outcomes)
        assert SAVED in outcomes, describe(outcomes)
        team_saved, player_saved = (o == SAVED for o in outcomes)
        assert_team_and_player_intact(
            team_identity,
            player_identity,
            (before[0] + team_saved, before[1] + player_saved),
        )
        team = Team.objects.get(identity=team_identity)
        player = Player.objects.get(identity=player_identity)
        assert (team.name == "saved by team writer") == team_saved
        assert (player.name == "saved by player writer") == player_saved
    print(f"team/captain saves: {deadlocks} deadlock(s) in 6 rounds")


class PauseBeforeNewRow:
    """
    A pre_save receiver that holds the armed objects' next save after its
    loaded row is closed (and locked) and before the new row is inserted and
    its referrers re-pointed, until every party has got there. So both writers
    hold their first lock before either asks for its second one.
    """

    def __init__(self, parties):
        self.barrier = threading.Barrier(parties, timeout=WAIT)
        self.armed = {}
        self.lock = threading.Lock()

    def arm(self, instance):
        with self.lock:
            self.armed[id(instance)] = instance

    def release(self):
        """A writer that will never get there lets the others go on."""
        self.barrier.abort()

    def __call__(self, sender, instance, **kwargs):
        with self.lock:
            if self.armed.get(id(instance)) is not instance:
                return
            del self.armed[id(instance)]
        try:
            self.barrier.wait()
        except threading.BrokenBarrierError:
            pass  # the other writer failed before getting here: go on

    @contextmanager
    def connected(self):
        pre_save.connect(self, weak=False, dispatch_uid=id(self))
        try:
            yield self
        finally:
            pre_save.disconnect(dispatch_uid=id(self))


def test_a_team_and_its_captain_whose_lock_orders_cross(on_postgres):
    """
    Each save closes its own row, then (paused there until the other has
    closed its row too) re-points the other's current row, which is locked:
    a deadlock that PostgreSQL breaks after deadlock_timeout. The victim is
    stale and wrote nothing, the other saved, and the rows still point at
    each other's current versions.
    """
    deadlocks = 0
    for _ in range(2):
        team_identity, player_identity = team_with_captain()
        before = version_counts(team_identity, player_identity)
        pause = PauseBeforeNewRow(2)

        def save(model, identity, pause=pause):
            mine = model.objects.get(identity=identity)
            pause.arm(mine)
            mine.name = f"saved by {model.__name__} writer"
            try:
                mine.save()
            finally:
                pause.release()

        with pause.connected():
            outcomes = run_in_threads(
                lambda t=team_identity: save(Team, t),
                lambda p=player_identity: save(Player, p),
            )
        deadlocks += count_deadlocks(outcomes)
        assert_saved_or_stale(outcomes)
        assert SAVED in outcomes, describe(outcomes)
        team_saved, player_saved = (o == SAVED for o in outcomes)
        assert_team_and_player_intact(
            team_identity,
            player_identity,
            (before[0] + team_saved, before[1] + player_saved),
        )
        assert_pointers_current(team_identity, player_identity)
    print(f"crossed lock orders: {deadlocks} deadlock(s) in 2 rounds")


def test_team_then_captain_and_captain_then_team_in_two_transactions(on_postgres):
    """
    Each writer saves both objects in one transaction, in opposite orders.
    Both close both loaded rows, so exactly one transaction commits (the
    other is stale, whether it waited, found the rows closed or was chosen as
    a deadlock victim) and the rows point at each other's current versions.
    """
    deadlocks = 0
    for _ in range(5):
        team_identity, player_identity = team_with_captain()
        before = version_counts(team_identity, player_identity)
        start = threading.Barrier(2, timeout=WAIT)

        def team_then_captain(start=start, identity=team_identity):
            team = Team.objects.get(identity=identity)
            captain = team.captain
            captain.team = team  # each follows the other's new version in memory
            start.wait()
            with transaction.atomic():
                team.name = captain.name = "team writer"
                team.save()
                captain.save()

        def captain_then_team(start=start, identity=player_identity):
            captain = Player.objects.get(identity=identity)
            team = captain.team
            team.captain = captain
            start.wait()
            with transaction.atomic():
                team.name = captain.name = "captain writer"
                captain.save()
                team.save()

        outcomes = run_in_threads(team_then_captain, captain_then_team)
        deadlocks += count_deadlocks(outcomes)
        assert_one_saved_one_stale(outcomes)
        winner = ["team writer", "captain writer"][outcomes.index(SAVED)]
        assert_team_and_player_intact(
            team_identity, player_identity, (before[0] + 1, before[1] + 1)
        )
        assert_pointers_current(team_identity, player_identity)
        assert Team.objects.get(identity=team_identity).name == winner
        assert Player.objects.get(identity=player_identity).name == winner
    print(f"two saves per transaction: {deadlocks} deadlock(s) in 5 rounds")


def test_a_captain_saved_after_its_team_got_a_new_version_follows_it(on_postgres):
    """
    A referrer written at the same moment as its
    versioned target's new version never ends up on a closed row: it follows
    the new version or its write is stale.
    """
    team_identity, player_identity = team_with_captain()
    loaded = threading.Event()
    team_saved = threading.Event()

    def save_player():
        player = Player.objects.get(identity=player_identity)
        loaded.set()
        assert team_saved.wait(WAIT)
        player.name = "renamed"
        player.save()

    def save_team():
        try:
            assert loaded.wait(WAIT)
            team = Team.objects.get(identity=team_identity)
            team.name = "renamed"
            team.save()
        finally:
            team_saved.set()

    outcomes = run_in_threads(save_player, save_team)
    assert_saved_or_stale(outcomes)
    assert outcomes[1] == SAVED, describe(outcomes)
    assert_never_forked(Team, team_identity)
    assert_never_forked(Player, player_identity)
    assert_pointers_current(team_identity, player_identity)


# Many writers ------------------------------------------------------------------


def test_mixed_writers_lose_no_update_and_never_fork(on_postgres):
    items = [Item.objects.create(name=f"row {n}", price=0) for n in range(8)]
    identities = [item.identity for item in items]
    applied = {identity: 0 for identity in identities}
    lock = threading.Lock()
    unexpected = []

    def writer(seed):
        rng = random.Random(seed)
        for _ in range(15):
            chosen = rng.sample(identities, rng.randint(1, 4))
            try:
                if rng.random() < 0.5:
                    Item.objects.filter(identity__in=chosen).update(
                        price=F("price") + 1
                    )
                else:
                    chosen = chosen[:1]
                    item = Item.objects.get(identity=chosen[0])
                    item.price += 1
                    item.save()
            except StaleVersionError:
                continue  # retryable: someone else wrote first; nothing was written
            except Exception as error:  # recorded: must never happen
                unexpected.append(error)
                continue
            with lock:
                for identity in chosen:
                    applied[identity] += 1

    outcomes = run_in_threads(*(lambda s=seed: writer(s) for seed in range(4)))
    assert outcomes == [SAVED] * 4, describe(outcomes)
    assert not unexpected, describe(unexpected)
    for identity in identities:
        assert_never_forked(Item, identity)
        assert Item.objects.get(identity=identity).price == applied[identity]


def test_mixed_writers_with_delete_restore_and_bulk_update(on_postgres):
    """
    Writers at different isolation levels save, update(), bulk_update(),
    delete() and restore() overlapping objects. Each write is saved or stale;
    afterwards no object forked, no increment was lost, and the referrers and
    links of the objects that were never deleted are on their current rows.
    """
    tag = Tag.objects.create(name="kept")
    keepers = []
    for n in range(6):
        item = Item.objects.create(name=f"keeper {n}", price=0)
        Order.objects.create(item=item)
        item.tags.add(tag)
        keepers.append(item.identity)
    deletables = [
        Item.objects.create(name=f"deletable {n}", price=0).identity for n in range(3)
    ]
    everything = keepers + deletables
    applied = {identity: 0 for identity in keepers}
    lock = threading.Lock()
    unexpected = []
    stale = []

    def save(rng):
        item = Item.objects.filter(identity=rng.choice(everything)).first()
        if item is None:
            return []
        item.price += 1
        item.save()
        return [item.identity]

    def update(rng):
        chosen = rng.sample(everything, rng.randint(2, 5))
        kept = [identity for identity in chosen if identity in applied]
        changed = Item.objects.filter(identity__in=chosen).update(price=F("price") + 1)
        assert changed >= len(kept), (changed, chosen)
        return kept

    def bulk_update(rng):
        chosen = rng.sample(everything, rng.randint(2, 5))
        objs = list(Item.objects.filter(identity__in=chosen))
        for obj in objs:
            obj.price += 1
        assert Item.objects.bulk_update(objs, ["price"]) == len(objs)
        return [obj.identity for obj in objs]

    def delete(rng):
        item = Item.objects.filter(identity=rng.choice(deletables)).first()
        if item is not None:
            item.delete()
        return []

    def restore(rng):
        latest = (
            Item.all_versions.filter(identity=rng.choice(deletables))
            .order_by("-version")
            .first()
        )
        if latest.valid_to is not None:
            assert latest.restore().valid_to is None
        return []

    operations = [save, save, update, bulk_update, bulk_update, delete]

    def writer(seed, level):
        rng = random.Random(seed)
        # One writer restores: two restores of one Item racing each other hit
        # the bug that test_a_restore_that_waited_for_a_concurrent_restore_...
        # pins down (an IntegrityError on the scoped unique name).
        mine = [*operations, restore] if seed == 0 else operations
        with isolation(level, "session"):
            for _ in range(12):
                operation = rng.choice(mine)
                try:
                    incremented = operation(rng)
                except StaleVersionError:
                    with lock:
                        stale.append(operation.__name__)
                    continue  # retryable: nothing was written
                except Exception as error:  # recorded: must never happen
                    unexpected.append(error)
                    continue
                with lock:
                    for identity in incremented:
                        if identity in applied:
                            applied[identity] += 1

    levels = [*LEVELS, "READ COMMITTED"]
    outcomes = run_in_threads(
        *(lambda s=seed, lv=level: writer(s, lv) for seed, level in enumerate(levels))
    )
    assert outcomes == [SAVED] * len(levels), describe(outcomes)
    assert not unexpected, describe(unexpected)
    for identity in keepers:
        assert_never_forked(Item, identity)
        current = Item.objects.get(identity=identity)
        assert current.price == applied[identity]
        assert list(current.orders.values_list("item_id", flat=True)) == [current.pk]
        assert list(current.tags.all()) == [tag]
    for identity in deletables:
        assert_never_forked(Item, identity, current=None)
    print(f"mixed writers: {len(stale)} stale write(s): {sorted(set(stale))}")


# A referrer written while its target gets a new version ------------------------


REFERRERS = {
    # A plain referrer created, and a versioned one created or saved.
    "plain referrer created": lambda item: Order.objects.create(item_id=item.pk),
    "versioned referrer created": lambda item: Review.objects.create(
        item_id=item.pk, text="new"
    ),
    "versioned referrer saved": lambda item: saved_review_of(item),
}


def saved_review_of(item):
    review = Review.objects.get(text=f"review of {item.identity}")
    review.text = "edited"
    review.save()
    return review


def referrer_world():
    item = new_item()
    Review.objects.create(item=item, text=f"review of {item.identity}")
    return item


def backend_pid():
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def assert_on_the_current_row(item, referrer):
    current = Item.objects.get(identity=item.identity)
    stored = type(referrer)._base_manager.get(pk=referrer.pk)
    assert (referrer.item_id, stored.item_id) == (current.pk, current.pk)


@pytest.mark.parametrize("write_referrer", list(REFERRERS))
def test_a_referrer_written_while_its_target_closes_follows_the_new_version(
    on_postgres, write_referrer
):
    """The target's save holds its row first; the referrer waits, then follows."""
    item = referrer_world()
    target_pid, referrer_written = [], threading.Event()
    referrers = []

    def save_target():
        with transaction.atomic():
            loaded = Item.objects.get(pk=item.pk)
            loaded.price = 5
            loaded.save()  # the old row is closed and stays locked
            target_pid.append(backend_pid())
            referrer_pid = pids.get(WAIT)
            wait_until_waiting_for_a_lock(referrer_pid, referrer_written)

    pids = queue.Queue()

    def write():
        while not target_pid:
            time.sleep(0.001)  # the target's transaction has closed the row
        pids.put(backend_pid())
        referrers.append(REFERRERS[write_referrer](item))
        referrer_written.set()

    outcomes = run_in_threads(save_target, write)
    assert outcomes == [SAVED, SAVED], describe(outcomes)
    assert_on_the_current_row(item, referrers[0])


@pytest.mark.parametrize("write_referrer", list(REFERRERS))
def test_a_target_saved_while_a_referrer_is_written_re_points_it(
    on_postgres, write_referrer
):
    """The referrer's transaction holds the target's row first; the save waits."""
    item = referrer_world()
    referrer_pid, target_saved = [], threading.Event()
    pids = queue.Queue()
    referrers = []

    def write():
        with transaction.atomic():
            referrers.append(REFERRERS[write_referrer](item))  # locks the item row
            referrer_pid.append(backend_pid())
            wait_until_waiting_for_a_lock(pids.get(WAIT), target_saved)

    def save_target():
        while not referrer_pid:
            time.sleep(0.001)
        pids.put(backend_pid())
        try:
            loaded = Item.objects.get(pk=item.pk)
            loaded.price = 5
            loaded.save()
        finally:
            target_saved.set()

    outcomes = run_in_threads(write, save_target)
    assert outcomes == [SAVED, SAVED], describe(outcomes)
    referrer = referrers[0]
    referrer.refresh_from_db()  # re-pointed in the database by the target's save
    assert_on_the_current_row(item, referrer)


def race_referrers_and_their_target(item):
    """One round: the target's save and each kind of referrer start together."""
    start = threading.Barrier(1 + len(REFERRERS), timeout=WAIT)

    def save_target():
        start.wait()
        loaded = Item.objects.get(pk=item.pk)
        loaded.price = 5
        loaded.save()

    def referrer(kind):
        def write():
            start.wait()
            REFERRERS[kind](item)

        return write

    return run_in_threads(save_target, *(referrer(kind) for kind in REFERRERS))


def test_referrers_racing_their_target_never_stay_on_a_closed_row(on_postgres):
    """Free-running rounds: whatever the order, every referrer ends current."""
    for _ in range(10):
        item = referrer_world()
        assert_saved_or_stale(race_referrers_and_their_target(item))
        current = Item.objects.get(identity=item.identity)
        assert not Order.objects.filter(item__valid_to__isnull=False).exists()
        mine = Review.objects.filter(item__identity=item.identity)
        assert set(mine.values_list("item_id", flat=True)) == {current.pk}
