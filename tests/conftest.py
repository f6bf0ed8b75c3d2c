import time

import pytest
from django.db import connection


@pytest.fixture
def on_postgres():
    if connection.vendor != "postgresql":
        pytest.skip(
            "needs PostgreSQL: run `make test`, which starts a throwaway server"
        )


VERSIONED_FACTORIES = ["example", "item", "document"]


@pytest.fixture(params=VERSIONED_FACTORIES)
def versioned_factory(request):
    """A factory and its data field for each variant: int pk, own Meta, UUID pk."""
    from tests import factories

    return {
        "example": (factories.ExampleFactory, "data"),
        "item": (factories.ItemFactory, "name"),
        "document": (factories.DocumentFactory, "title"),
    }[request.param]


def data_statements(captured):
    """The SQL of captured queries without transaction control."""
    control = (
        "SAVEPOINT",
        "RELEASE SAVEPOINT",
        "ROLLBACK TO SAVEPOINT",
        "BEGIN",
        "COMMIT",
    )
    return [q["sql"] for q in captured if not q["sql"].upper().startswith(control)]


def wait_until_waiting_for_a_lock(pid, done, seconds=30):
    """
    Return once PostgreSQL backend ``pid`` waits for a lock, or ``done`` is set
    (it never had to wait). pg_locks shows live state, also inside a
    transaction; this orders threads by what they do, not by how long it takes.
    """
    with connection.cursor() as cursor:
        for _ in range(seconds * 100):
            cursor.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = %s AND NOT granted)",
                [pid],
            )
            if cursor.fetchone()[0] or done.is_set():
                return
            time.sleep(0.01)
    raise AssertionError(f"backend {pid} neither waited for a lock nor finished")


# Shared by the test modules ------------------------------------------------------


def saved(obj, **values):
    """Set ``values`` on ``obj`` and save it as a new version."""
    for name, value in values.items():
        setattr(obj, name, value)
    obj.save()
    return obj


def edited(obj, field, *values):
    """Save ``obj`` once per value of ``field``, in order."""
    for value in values:
        setattr(obj, field, value)
        obj.save()
    return obj


def item_form_data(item, tags=None, **changes):
    """What the admin's change form for ``item`` posts, with ``changes``."""
    data = {
        "name": item.name,
        "price": str(item.price),
        "description": item.description,
        "attributes": "{}",
        "versioning_loaded_version": str(item.version),
        "versioning_reason": "",
    }
    if tags is not None:
        data["tags"] = [str(tag.pk) for tag in tags]
    data.update(changes)
    return data


def messages_of(response):
    return [str(m) for m in response.context["messages"]] if response.context else []
