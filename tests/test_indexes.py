"""
The indexes behind every read, pinned by the database's own plans, and the
index of current rows only that users declare on their data fields.

On PostgreSQL the plans are taken with sequential scans disabled: a test
table holds a handful of rows, where a scan is always cheapest, and the
question is whether an index can answer the query at all.
"""

import datetime
import json

import pytest
from django.db import connection, models
from django.db.migrations.writer import MigrationWriter
from django.test.utils import isolate_apps
from django.utils import timezone

from tests.factories import ExampleFactory
from tests.testapp.models import Example
from versioning import CurrentIndex
from versioning.models import Versioned
from versioning.schema import constraint_name

IN_TEST_APP = "tests.testapp.models"


def index_lookups(queryset):
    """
    The indexes the database reads the queryset's rows through, each with
    the columns it looks up, e.g. [("example_current", "identity")]; a
    table scan adds ("scan", table).
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # Statistics of the rows at hand, as autovacuum would gather them.
            cursor.execute(f"ANALYZE {queryset.model._meta.db_table}")
            cursor.execute("SET LOCAL enable_seqscan = off")
        return list(postgresql_lookups(json.loads(queryset.explain(format="json"))))
    return list(sqlite_lookups(queryset.explain()))


def postgresql_lookups(plan):
    for node in plan if isinstance(plan, list) else [plan]:
        node = node.get("Plan", node)
        if node["Node Type"] == "Seq Scan":
            yield ("scan", node["Relation Name"])
        elif "Index Name" in node:
            yield (node["Index Name"], node.get("Index Cond", ""))
        yield from postgresql_lookups(node.get("Plans", []))


def sqlite_lookups(plan):
    # Lines such as "2 0 0 SEARCH t USING INDEX name (identity=?)" or "SCAN t".
    for line in plan.splitlines():
        detail = line.split(" ", 3)[-1]
        if detail.startswith("SCAN"):
            yield ("scan", detail.split()[1])
        elif " INDEX " in detail:
            name, _, condition = detail.partition(" INDEX ")[2].partition(" ")
            yield (name, condition)


def index_columns(queryset, name):
    table = queryset.model._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            # A unique constraint of CREATE TABLE is an index of SQLite's naming.
            cursor.execute(f"PRAGMA index_info({connection.ops.quote_name(name)})")
            return [row[2] for row in cursor.fetchall()]
        return connection.introspection.get_constraints(cursor, table)[name]["columns"]


def assert_index_lookup(queryset, columns):
    """The rows are found through one index on exactly these columns, by its first."""
    [(name, condition)] = index_lookups(queryset)
    assert name != "scan", condition
    assert index_columns(queryset, name) == columns
    assert columns[0] in condition, condition
    return name


@pytest.mark.django_db
def test_a_versioned_table_has_the_indexes_of_its_reads_and_no_others():
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(
            cursor, Example._meta.db_table
        )
    indexes = sorted(
        tuple(info["columns"])
        for info in constraints.values()
        if info["index"] or info["unique"] or info["primary_key"]
    )
    assert indexes == [
        ("id",),
        ("identity",),
        ("identity", "version"),
        ("valid_from", "valid_to"),
    ]


@pytest.fixture
def edited():
    """An object of three versions, and a moment while its second was current."""
    obj = ExampleFactory(data="one")
    obj.data = "two"
    obj.save()
    moment = timezone.now()
    obj.data = "three"
    obj.save()
    return obj, moment


@pytest.mark.django_db
def test_the_current_row_of_an_object_is_read_through_the_current_index(edited):
    obj, _ = edited
    name = assert_index_lookup(
        Example.objects.filter(identity=obj.identity), ["identity"]
    )
    assert name == constraint_name(Example, "current")


@pytest.mark.django_db
def test_the_history_of_an_object_is_read_through_the_version_index(edited):
    obj, _ = edited
    assert_index_lookup(obj.history(), ["identity", "version"])


@pytest.mark.django_db
def test_an_object_as_of_a_moment_is_read_through_the_version_index(edited):
    obj, moment = edited
    assert_index_lookup(
        Example.objects.as_of(moment).filter(identity=obj.identity),
        ["identity", "version"],
    )
    assert Example.objects.as_of(moment).get(identity=obj.identity).data == "two"


@pytest.mark.django_db
def test_a_table_as_of_a_moment_is_read_through_the_as_of_index(edited):
    _, moment = edited
    name = assert_index_lookup(
        Example.objects.as_of(moment), ["valid_from", "valid_to"]
    )
    assert name == constraint_name(Example, "asof")


@pytest.mark.django_db
def test_the_as_of_index_is_brin_on_postgresql_and_a_b_tree_elsewhere():
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(
            cursor, Example._meta.db_table
        )
    as_of = constraints[constraint_name(Example, "asof")]
    assert as_of["columns"] == ["valid_from", "valid_to"]
    expected = "brin" if connection.vendor == "postgresql" else "idx"
    assert as_of["type"] == expected


@pytest.fixture
def data_indexed_for_current_rows():
    """
    Example.data indexed with CurrentIndex, as a migration would create it;
    before any row, which PostgreSQL requires inside a transaction.
    """
    index = CurrentIndex(fields=["data"], name="example_data_current")
    statement = index.create_sql(Example, connection.schema_editor())
    with connection.cursor() as cursor:
        cursor.execute(str(statement))
    return index


@pytest.mark.django_db
def test_a_current_lookup_by_a_data_field_uses_its_current_index(
    data_indexed_for_current_rows, edited
):
    name = assert_index_lookup(Example.objects.filter(data="three"), ["data"])
    assert name == "example_data_current"
    # History is not in it: a lookup among all versions cannot use it.
    lookups = index_lookups(Example.all_versions.filter(data="two"))
    assert "example_data_current" not in [name for name, _ in lookups]


def test_current_index_holds_current_rows_only():
    index = CurrentIndex(fields=["email"], name="person_email_current")
    assert index.condition == models.Q(valid_to__isnull=True)
    with pytest.raises(TypeError, match="has its own condition"):
        CurrentIndex(
            fields=["email"], name="x", condition=models.Q(valid_to__isnull=True)
        )


def test_current_index_is_written_into_migrations_as_declared():
    index = CurrentIndex(fields=["email"], name="person_email_current")
    path, args, kwargs = index.deconstruct()
    assert (path, args, kwargs) == (
        "versioning.CurrentIndex",
        (),
        {"fields": ["email"], "name": "person_email_current"},
    )
    assert index.clone() == index
    code, imports = MigrationWriter.serialize(index)
    assert code == (
        "versioning.CurrentIndex(fields=['email'], name='person_email_current')"
    )
    assert imports == {"import versioning"}


@isolate_apps("tests.testapp")
def test_an_unnamed_current_index_is_named_after_its_model_and_fields():
    class Person(Versioned):
        __module__ = IN_TEST_APP
        email = models.EmailField()

        class Meta:
            indexes = [CurrentIndex(fields=["email"])]

    [index] = [i for i in Person._meta.indexes if isinstance(i, CurrentIndex)]
    assert index.name.startswith("testapp_per_email_")
    assert index.name.endswith("_cur")
    assert index.name != models.Index(fields=["email"], name="").name


@pytest.mark.django_db
def test_as_of_before_the_first_version_finds_nothing_through_the_index(edited):
    obj, _ = edited
    before = obj.history().first().valid_from - datetime.timedelta(seconds=1)
    assert list(Example.objects.as_of(before)) == []


@isolate_apps("tests.testapp")
def test_the_readme_example_indexes_current_rows_and_passes_the_checks():
    from tests.test_readme import section_blocks

    [block] = section_blocks("### Indexes")
    namespace = {"__name__": IN_TEST_APP, "models": models, "Versioned": Versioned}
    exec(block, namespace)
    person = namespace["Person"]
    assert CurrentIndex(fields=["email"], name="person_email_current") in (
        person._meta.indexes
    )
    assert [m.id for m in person.check() if m.id.startswith("versioning.")] == []
