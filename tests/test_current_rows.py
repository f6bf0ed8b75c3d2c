"""
The default manager's current rows: each new queryset gets the condition
filter(valid_to__isnull=True) builds, added to its own query without
resolving the lookup by name, and nothing of one queryset reaches another.
"""

import pickle

import pytest
from django.db import connection
from django.db.models import Count, Exists, OuterRef, Q
from django.test.utils import CaptureQueriesContext

from tests.conftest import data_statements, edited
from tests.factories import ExampleFactory, ItemFactory, ReviewFactory, UserFactory
from tests.testapp.models import Example, Item, Page, PageQuerySet, Review
from versioning.managers import VersionedQuerySet

pytestmark = pytest.mark.django_db


def by_name(model, queryset_class=VersionedQuerySet):
    """The current rows as the manager used to build them: filter() by name."""
    return queryset_class(model).filter(valid_to__isnull=True)


def sql(queryset):
    return queryset.query.sql_with_params()


CHAINS = {
    "all": lambda current: current(Example),
    "filter": lambda current: current(Example).filter(data="x"),
    "exclude": lambda current: current(Example).exclude(data="x").order_by("pk"),
    "or": lambda current: (
        current(Example).filter(data="x") | current(Example).filter(data="y")
    ),
    "and": lambda current: (
        current(Example).filter(data="x") & current(Example).exclude(version=2)
    ),
    "Q": lambda current: current(Example).filter(Q(data="x") | Q(version=1)),
    "get": lambda current: current(Example).filter(identity=None)[:21],
    "values": lambda current: current(Example).values_list("data", flat=True),
    "count": lambda current: current(Example).annotate(n=Count("pk")).values("n"),
    "subquery": lambda current: current(Example).filter(
        pk__in=current(Example).filter(data="x").values("pk")
    ),
    "exists": lambda current: current(Example).filter(
        Exists(current(Example).filter(identity=OuterRef("identity"), data="x"))
    ),
    "join": lambda current: current(Item).filter(reviews__text="x"),
    "reverse count": lambda current: current(Item).annotate(n=Count("reviews")),
    "exclude across": lambda current: current(Item).exclude(reviews__text="x"),
    "select_related": lambda current: current(Review).select_related("item"),
    "as subquery of a join": lambda current: current(Review).filter(
        item__in=current(Item).filter(name="x")
    ),
}


@pytest.mark.parametrize("chain", CHAINS.values(), ids=CHAINS.keys())
def test_the_condition_is_the_one_filter_builds(chain):
    via_manager = chain(lambda model: model.objects.all())
    via_filter = chain(by_name)
    assert sql(via_manager) == sql(via_filter)


def test_a_manager_built_on_your_queryset_gets_the_same_condition():
    assert type(Page.objects.all()) is type(by_name(Page, PageQuerySet))
    assert sql(Page.objects.published()) == sql(by_name(Page, PageQuerySet).published())


def test_a_lookup_reads_one_current_row_in_one_statement():
    obj = edited(ExampleFactory(data="v1"), "data", "v2", "v3")
    with CaptureQueriesContext(connection) as captured:
        found = Example.objects.get(identity=obj.identity)
    [statement] = data_statements(captured)
    assert (found.pk, found.data) == (obj.pk, "v3")
    table = connection.ops.quote_name(Example._meta.db_table)
    column = connection.ops.quote_name("valid_to")
    assert statement.count(f"{table}.{column} IS NULL") == 1


def test_history_reads_every_version_in_one_statement(django_assert_num_queries):
    obj = edited(ExampleFactory(data="v1"), "data", "v2", "v3")
    with django_assert_num_queries(1):
        assert [v.data for v in obj.history()] == ["v1", "v2", "v3"]


def test_chaining_never_changes_another_queryset():
    old = edited(ExampleFactory(data="x"), "data", "y")
    other = ExampleFactory(data="z")
    current = Example.objects.all()
    fresh_sql = sql(current)

    assert list(current.filter(data="y")) == [old]
    assert list(current.exclude(data="y")) == [other]
    assert set(current.filter(data="y") | current.filter(data="z")) == {old, other}
    assert not current.filter(data="x").exists()
    assert list(Example.objects.filter(pk__in=current.values("pk"))) != []
    assert list(Example.all_versions.filter(data="x")) != []

    assert sql(current) == fresh_sql
    assert sql(Example.objects.all()) == fresh_sql
    assert sorted(current.values_list("data", flat=True)) == ["y", "z"]


def test_each_model_gets_its_own_table():
    review = ReviewFactory(text="first")
    edited(review, "text", "second")
    ItemFactory(name="lamp")
    assert list(Review.objects.values_list("text", flat=True)) == ["second"]
    items = Item.objects.all()
    assert Review._meta.db_table not in str(items.query)
    assert sorted(items.values_list("name", flat=True)) == sorted(
        [review.item.name, "lamp"]
    )


def test_a_pickled_queryset_still_reads_current_rows():
    obj = edited(ExampleFactory(data="v1"), "data", "v2")
    queryset = Example.objects.filter(identity=obj.identity)
    restored = pickle.loads(pickle.dumps(queryset))
    assert sql(restored) == sql(queryset)
    assert [v.data for v in restored] == ["v2"]
    assert [v.data for v in restored.exclude(data="v1")] == ["v2"]
    assert [v.data for v in Example.objects.filter(identity=obj.identity)] == ["v2"]


def test_a_new_key_drops_the_cached_user_and_the_same_key_keeps_it():
    alice, bob = UserFactory(), UserFactory()
    obj = ExampleFactory(data="v1")
    obj.changed_by = alice
    obj.changed_by_id = alice.pk
    assert obj.changed_by is alice
    obj.changed_by_id = bob.pk
    assert obj.changed_by == bob
