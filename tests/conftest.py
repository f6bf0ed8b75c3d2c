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
