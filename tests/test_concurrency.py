"""Real concurrency on PostgreSQL: two saves from one version never both succeed."""

import threading
import time

import pytest
from django.db import connection, transaction

from tests.testapp.models import Example
from versioning.exceptions import StaleVersionError

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def run_in_threads(*targets):
    outcomes = [None] * len(targets)

    def runner(index, target):
        try:
            target()
            outcomes[index] = "saved"
        except BaseException as error:  # recorded and asserted on below
            outcomes[index] = error
        finally:
            connection.close()

    threads = [
        threading.Thread(target=runner, args=(i, t)) for i, t in enumerate(targets)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return outcomes


def assert_one_saved_one_stale(outcomes):
    assert sorted(map(type, outcomes), key=str) == sorted(
        [str, StaleVersionError], key=str
    ), outcomes


def test_two_saves_from_the_same_version_never_both_succeed(on_postgres):
    for _ in range(15):
        obj = Example.objects.create(data="start")
        start = threading.Barrier(2)

        def edit(text, pk=obj.pk, start=start):
            mine = Example.objects.get(pk=pk)
            start.wait()
            mine.data = text
            mine.save()

        outcomes = run_in_threads(lambda: edit("a"), lambda: edit("b"))
        assert_one_saved_one_stale(outcomes)
        history = list(
            Example.all_versions.filter(identity=obj.identity).order_by("version")
        )
        assert [v.version for v in history] == [1, 2]
        assert Example.objects.filter(identity=obj.identity).count() == 1


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
            time.sleep(0.3)

    def second():
        mine = Example.objects.get(pk=obj.pk)
        first_has_lock.wait(5)
        mine.data = "second"
        mine.save()  # blocks on the row lock, then finds the row closed

    outcomes = run_in_threads(slow_first, second)
    assert outcomes[0] == "saved"
    assert isinstance(outcomes[1], StaleVersionError)
    assert Example.objects.get(identity=obj.identity).data == "first"


def test_concurrent_restores_of_a_deleted_object_never_fork(on_postgres):
    for _ in range(10):
        obj = Example.objects.create(data="v1")
        obj.delete()
        start = threading.Barrier(2)

        def restore(pk=obj.pk, start=start):
            old = Example.all_versions.get(pk=pk)
            start.wait()
            old.restore()

        outcomes = run_in_threads(restore, restore)
        assert_one_saved_one_stale(outcomes)
        assert Example.objects.filter(identity=obj.identity).count() == 1


def test_concurrent_update_and_save_on_the_same_rows(on_postgres):
    objs = [Example.objects.create(data=f"row {n}") for n in range(20)]
    start = threading.Barrier(2)

    def bulk():
        start.wait()
        Example.objects.filter(pk__in=[o.pk for o in objs]).update(data="bulk")

    def single():
        mine = Example.objects.get(pk=objs[10].pk)
        start.wait()
        mine.data = "single"
        mine.save()

    outcomes = run_in_threads(bulk, single)
    assert "saved" in outcomes
    assert all(o == "saved" or isinstance(o, StaleVersionError) for o in outcomes), (
        outcomes
    )
    for obj in objs:
        versions = Example.all_versions.filter(identity=obj.identity)
        assert versions.filter(valid_to__isnull=True).count() == 1
        numbers = sorted(versions.values_list("version", flat=True))
        assert numbers == list(range(1, len(numbers) + 1))


def test_mixed_writers_lose_no_update_and_never_fork(on_postgres):
    import random

    from django.db.models import F

    from tests.testapp.models import Item

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
    assert outcomes == ["saved"] * 4
    assert unexpected == []
    for identity in identities:
        versions = Item.all_versions.filter(identity=identity)
        assert versions.filter(valid_to__isnull=True).count() == 1
        numbers = sorted(versions.values_list("version", flat=True))
        assert numbers == list(range(1, len(numbers) + 1))
        assert Item.objects.get(identity=identity).price == applied[identity]
