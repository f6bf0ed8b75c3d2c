"""
One write engine: every path (save, restore, delete, update, bulk_update and
the managers Django uses behind related objects) versions the same way, and
every error says what really happened.
"""

import datetime
from decimal import Decimal

import pytest
from django.core.exceptions import FieldError, ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import F, QuerySet, Value
from django.db.models.functions import Concat
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.conftest import data_statements
from tests.factories import (
    ArticleFactory,
    ItemFactory,
    OrderFactory,
    PlayerFactory,
    TagFactory,
    TeamFactory,
    UserFactory,
)
from tests.testapp.models import Article, Example, Item, Order, Player, Review, Team
from versioning import changes
from versioning.exceptions import HistoricalVersionError, StaleVersionError
from versioning.signals import version_created
from versioning.tracking import loaded_values

pytestmark = pytest.mark.django_db


def rows(model):
    """Every stored row, for comparing the table before and after a call."""
    return list(QuerySet(model).order_by("pk").values_list())


def bookkeeping(obj):
    return (obj.pk, obj.version, obj.valid_from, obj.valid_to, dict(loaded_values(obj)))


# Errors tell the truth ---------------------------------------------------------

VIOLATIONS = {
    # name: (what to assign on a fresh article, setup making it a violation)
    "scoped unique": ("slug", "taken"),
    "check": ("counter", -1),
    "not null": ("title", None),
}


@pytest.fixture(params=sorted(VIOLATIONS))
def violation(request):
    ArticleFactory(slug="taken")
    return VIOLATIONS[request.param]


def test_a_data_violation_on_save_is_the_databases_own_error(violation):
    field, value = violation
    article = Article.objects.get(pk=ArticleFactory().pk)
    before, state = rows(Article), bookkeeping(article)
    setattr(article, field, value)
    # As for a plain save(), a failed statement spoils the test's transaction
    # unless an inner atomic() holds it.
    with pytest.raises(IntegrityError) as raised, transaction.atomic():
        article.save()
    assert not isinstance(raised.value, StaleVersionError)
    assert rows(Article) == before
    assert bookkeeping(article) == state
    # The object stays usable: fix the value and save.
    setattr(article, field, {"slug": "free", "counter": 1, "title": "t"}[field])
    article.save()
    assert article.version == 2


def test_a_data_violation_is_the_same_error_on_every_write_path(violation):
    field, value = violation
    with pytest.raises(IntegrityError), transaction.atomic():
        ArticleFactory(**{field: value})
    article = ArticleFactory()
    before = rows(Article)
    with pytest.raises(IntegrityError):
        Article.objects.filter(pk=article.pk).update(**{field: value})
    setattr(article, field, value)
    with pytest.raises(IntegrityError):
        Article.objects.bulk_update([article], [field])
    assert rows(Article) == before


def test_restoring_into_a_taken_scoped_unique_value_names_the_field():
    article = ArticleFactory(slug="mine")
    old = Article.objects.get(pk=article.pk)
    article.slug = "renamed"
    article.save()
    ArticleFactory(slug="mine")
    before = rows(Article)
    with pytest.raises(ValidationError) as raised:
        old.restore()
    assert raised.value.message_dict == {
        "slug": ["Article with this Slug already exists."]
    }
    assert rows(Article) == before


def test_a_lost_race_is_still_a_stale_version_error():
    article = ArticleFactory()
    first = Article.objects.get(pk=article.pk)
    second = Article.objects.get(pk=article.pk)
    first.title = "first"
    first.save()
    second.title = "second"
    with pytest.raises(StaleVersionError, match="no longer current"):
        second.save()
    deleted = Article.objects.get(pk=first.pk)
    first.delete()
    deleted.title = "late"
    with pytest.raises(StaleVersionError):
        deleted.save()


def test_scoped_unique_constraints_are_reported_like_unique_fields():
    ArticleFactory(slug="taken")
    article = Article(title="new", slug="taken")
    with pytest.raises(ValidationError) as raised:
        article.full_clean()
    assert raised.value.message_dict == {
        "slug": ["Article with this Slug already exists."]
    }
    # Its own current row is not a duplicate of itself.
    saved = ArticleFactory(slug="mine")
    saved.title = "renamed"
    saved.full_clean()
    # A historical holder of the value is no obstacle.
    old = ArticleFactory(slug="old")
    old.slug = "moved"
    old.save()
    Article(title="x", slug="old").full_clean()


# Django's own machinery makes versions ----------------------------------------


def test_reverse_manager_add_makes_a_new_version_of_each_object():
    team = TeamFactory()
    player = PlayerFactory()
    first_pk = player.pk
    team.player_set.add(player)
    assert player.pk != first_pk and player.version == 2
    assert player.team_id == team.pk
    assert Player.all_versions.get(pk=first_pk).team_id is None
    assert list(team.player_set.all()) == [player]
    # The object in hand is the new version: editing it again just works.
    player.name = "renamed"
    player.save()
    assert player.version == 3


def test_reverse_manager_set_remove_and_clear_never_rewrite_history():
    team = TeamFactory()
    keep, leave, join = PlayerFactory(), PlayerFactory(), PlayerFactory()
    team.player_set.add(keep, leave)
    first_versions = Player.all_versions.filter(version=1).order_by("pk")
    data_before = list(first_versions.values_list("pk", "name", "team", "valid_from"))
    team.player_set.set([keep, join])
    assert set(team.player_set.all()) == {keep, join}
    team.player_set.remove(keep)
    assert list(team.player_set.all()) == [join]
    team.player_set.clear()
    assert not team.player_set.exists()
    # Rows are closed, never rewritten.
    assert (
        list(first_versions.values_list("pk", "name", "team", "valid_from"))
        == data_before
    )
    for player in Player.objects.all():
        versions = list(player.history().values_list("version", "valid_to"))
        assert [v for v, _ in versions] == list(range(1, len(versions) + 1))
        assert [t is None for _, t in versions] == [False] * (len(versions) - 1) + [
            True
        ]
    assert keep.team_id is None and keep.is_current


def test_reverse_manager_add_refuses_a_historical_object():
    team = TeamFactory()
    player = PlayerFactory()
    first_pk = player.pk
    player.name = "v2"
    player.save()
    old = Player.all_versions.get(pk=first_pk)
    before = rows(Player)
    with pytest.raises(HistoricalVersionError):
        team.player_set.add(old)
    assert rows(Player) == before


def test_the_base_manager_versions_current_rows_and_refuses_history():
    player = PlayerFactory(name="v1")
    old_pk = player.pk
    assert Player._base_manager.filter(pk=old_pk).update(name="v2") == 1
    assert Player.objects.get(identity=player.identity).version == 2
    before = rows(Player)
    with pytest.raises(HistoricalVersionError):
        Player._base_manager.filter(pk=old_pk).update(name="v3")
    with pytest.raises(HistoricalVersionError):
        Player._base_manager.filter(pk=old_pk).delete()
    assert rows(Player) == before


# bulk_update --------------------------------------------------------------------


def test_bulk_update_leaves_edits_of_other_fields_pending():
    article = ArticleFactory(counter=1)
    article.title = "listed"
    article.counter = 99
    Article.objects.bulk_update([article], ["title"])
    stored = Article.objects.get(identity=article.identity)
    assert (stored.title, stored.counter, stored.version) == ("listed", 1, 2)
    article.save()  # the counter edit is still a change
    stored = Article.objects.get(identity=article.identity)
    assert (stored.counter, stored.version) == (99, 3)


def test_bulk_update_moves_in_memory_referrers_like_save():
    order = OrderFactory()
    item = order.item
    item.price = 5
    Item.objects.bulk_update([item], ["price"])
    assert order.item_id == item.pk
    order.quantity = 3
    order.save()
    assert Order.objects.get(pk=order.pk).item_id == item.pk


def test_bulk_update_sends_version_created_for_each_object():
    items = [ItemFactory(price=1), ItemFactory(price=2)]
    old_pks = [item.pk for item in items]
    received = []

    def receiver(sender, instance, previous, using, **kwargs):
        received.append((instance.pk, previous.pk, previous.valid_to, using))

    for item in items:
        item.price += 10
    version_created.connect(receiver, sender=Item)
    try:
        Item.objects.bulk_update(items, ["price"])
    finally:
        version_created.disconnect(receiver, sender=Item)
    assert received == [
        (item.pk, old_pk, item.valid_from, "default")
        for item, old_pk in zip(items, old_pks, strict=True)
    ]


def test_bulk_update_of_nulls_only(django_assert_max_num_queries):
    articles = [ArticleFactory(amount=Decimal("1.00")) for _ in range(3)]
    for article in articles:
        article.amount = None
    assert Article.objects.bulk_update(articles, ["amount"]) == 3
    assert list(Article.objects.values_list("amount", flat=True)) == [None] * 3


def test_bulk_update_records_who_and_why_per_object():
    alice, bob = UserFactory(), UserFactory()
    mine, theirs = ArticleFactory(), ArticleFactory()
    mine.title, theirs.title = "a", "b"
    theirs.changed_by = bob
    with changes(user=alice, reason="batch"):
        Article.objects.bulk_update([mine, theirs], ["title"])
    assert (mine.changed_by_id, mine.change_reason) == (alice.pk, "batch")
    assert (theirs.changed_by_id, theirs.change_reason) == (bob.pk, "batch")
    stored = dict(Article.objects.values_list("pk", "changed_by"))
    assert stored == {mine.pk: alice.pk, theirs.pk: bob.pk}


# Columns Django or the database fill in -----------------------------------------


def test_auto_now_add_keeps_the_first_value_and_auto_now_moves():
    article = ArticleFactory()
    created, modified = article.created, article.modified
    article.title = "saved"
    article.save()
    assert article.created == created
    assert article.modified > modified
    Article.objects.filter(pk=article.pk).update(title="updated")
    updated = Article.objects.get(identity=article.identity)
    assert updated.created == created
    assert updated.modified > article.modified
    updated.title = "bulk"
    Article.objects.bulk_update([updated], ["title"])
    stored = Article.objects.get(identity=article.identity)
    assert stored.created == created
    assert stored.modified > updated.modified
    assert [v.created for v in stored.history()] == [created] * 4


def test_generated_and_db_default_columns_on_every_path():
    article = ArticleFactory(title="four")
    article.refresh_from_db()
    assert (article.title_length, article.rating) == (4, 3)
    article.title = "seven!!"
    article.save()
    assert Article.objects.get(identity=article.identity).title_length == 7
    Article.objects.filter(pk=article.pk).update(title=Concat(F("title"), Value("x")))
    current = Article.objects.get(identity=article.identity)
    assert (current.title_length, current.rating) == (8, 3)
    current.title = "ab"
    Article.objects.bulk_update([current], ["title"])
    assert Article.objects.get(identity=article.identity).title_length == 2
    with pytest.raises(FieldError, match="generated"):
        Article.objects.update(title_length=1)
    with pytest.raises(FieldError, match="generated"):
        Article.objects.bulk_update([current], ["title_length"])


# Change detection, who and why, save() options -----------------------------------


def test_a_value_equal_after_normalisation_is_not_a_change(django_assert_num_queries):
    article = Article.objects.get(pk=ArticleFactory(amount=Decimal("1.50")).pk)
    article.amount = "1.50"
    with django_assert_num_queries(0):
        article.save()
    article.amount = "1.5"
    with django_assert_num_queries(0):
        article.save()
    article.amount = "1.51"
    article.save()
    assert article.version == 2


def test_the_same_rule_decides_for_bulk_update_and_restore(django_assert_num_queries):
    article = Article.objects.get(pk=ArticleFactory(amount=Decimal("1.50")).pk)
    article.amount = "1.50"
    with django_assert_num_queries(0):
        assert Article.objects.bulk_update([article], ["amount"]) == 0
    current = article.restore()
    assert current.pk == article.pk and current.version == 1


def test_an_assigned_user_wins_even_when_equal_to_the_previous_one():
    author, editor = UserFactory(), UserFactory()
    article = ArticleFactory(changed_by=author)
    article = Article.objects.get(pk=article.pk)
    article.title = "edited"
    article.changed_by = author
    with changes(user=editor):
        article.save()
    assert Article.objects.get(identity=article.identity).changed_by == author
    article.title = "again"
    with changes(user=editor):
        article.save()
    assert Article.objects.get(identity=article.identity).changed_by == editor


def test_an_assigned_reason_wins_even_when_equal_to_the_previous_one():
    article = ArticleFactory(change_reason="import")
    article = Article.objects.get(pk=article.pk)
    article.title = "edited"
    article.change_reason = "import"
    with changes(reason="manual"):
        article.save()
    assert article.change_reason == "import"
    article.title = "again"
    with changes(reason="manual"):
        article.save()
    assert article.change_reason == "manual"


def test_save_update_fields_options_behave_as_in_django(django_assert_num_queries):
    article = ArticleFactory()
    article.title = "changed"
    with django_assert_num_queries(0):
        article.save(update_fields=[])
    with pytest.raises(ValueError, match="do not exist"):
        article.save(update_fields=["title", "nope"])
    assert article.version == 1
    article.save(update_fields=["slug"])  # still a complete version
    assert Article.objects.get(identity=article.identity).title == "changed"


# update() ----------------------------------------------------------------------


def test_update_across_a_to_many_join_versions_each_row_once():
    item = ItemFactory()
    item.tags.add(TagFactory(name="tall"), TagFactory(name="thin"))  # version 2
    matched = Item.objects.filter(tags__name__startswith="t")
    assert matched.update(price=7) == 1
    assert list(item.history().values_list("version", flat=True)) == [1, 2, 3]
    assert Item.objects.get(identity=item.identity).price == 7


def test_update_refuses_an_expression_that_reaches_across_a_join():
    item = ItemFactory()
    item.tags.add(TagFactory(name="tag"))
    before = rows(Item)
    with pytest.raises(FieldError, match="Joined field references"):
        Item.objects.update(name=F("tags__name"))
    assert rows(Item) == before


# Transactions belong to the caller --------------------------------------------


class Rollback(Exception):
    pass


def test_after_an_outer_rollback_no_write_touches_another_objects_row():
    item = ItemFactory(name="mine")
    order = Order.objects.create(item=item)
    order.item  # noqa: B018 - the order follows the item in memory from here on
    with pytest.raises(Rollback), transaction.atomic():
        item.name = "never committed"
        item.save()
        raise Rollback
    assert order.item_id == item.pk  # followed in memory, but never committed
    # Another object may now get that key (SQLite reuses rolled-back keys).
    other = ItemFactory(name="other")
    before = rows(Item), list(Order.objects.values_list())
    with pytest.raises(StaleVersionError):
        item.delete()
    item.name = "again"
    with pytest.raises((StaleVersionError, IntegrityError)):
        item.save()
    with pytest.raises(StaleVersionError, match="rolled back"):
        order.save()
    assert (rows(Item), list(Order.objects.values_list())) == before
    assert Item.objects.get(pk=other.pk).name == "other"
    assert Order.objects.get(pk=order.pk).item.name == "mine"


def test_a_referrer_following_inside_a_committed_transaction_saves_normally():
    item = ItemFactory()
    order = Order.objects.create(item=item)
    order.item  # noqa: B018
    with transaction.atomic():
        item.price = 3
        item.save()
        order.quantity = 2
        order.save()  # still inside: the new version exists
    order.quantity = 4
    order.save()
    assert Order.objects.get(pk=order.pk).item_id == item.pk


def test_versioned_referrers_follow_only_their_current_rows():
    item = ItemFactory()
    review = Review.objects.create(item=item, text="ok")
    old_review = Review.all_versions.get(pk=review.pk)
    review.text = "better"
    review.save()
    item.price = 11
    item.save()
    assert Review.all_versions.get(pk=old_review.pk).item_id == old_review.item_id
    assert Review.objects.get(identity=review.identity).item_id == item.pk


# Statement counts ----------------------------------------------------------------


def test_a_changed_save_without_referrers_is_one_statement_on_postgresql(
    django_assert_num_queries,
):
    article = ArticleFactory()
    article.title = "changed"
    # Inside the caller's transaction: PostgreSQL closes and inserts in one
    # statement and needs no savepoint at READ COMMITTED; SQLite sends the
    # close and the insert inside one.
    expected = 1 if connection.vendor == "postgresql" else 4
    with django_assert_num_queries(expected):
        article.save()


def test_the_clock_never_goes_back_across_paths(monkeypatch):
    example = Example.objects.create(data="a")
    past = example.valid_from - datetime.timedelta(hours=1)
    monkeypatch.setattr(timezone, "now", lambda: past)
    example.data = "b"
    example.save()
    assert example.valid_from >= example.history().first().valid_from
    Example.objects.filter(pk=example.pk).update(data="c")
    versions = list(example.history())
    assert all(
        a.valid_to == b.valid_from and a.valid_from <= b.valid_from
        for a, b in zip(versions, versions[1:], strict=False)
    )


def test_the_engine_reports_stale_only_for_its_own_constraints():
    from versioning.writes import violates_version_constraints

    article = ArticleFactory(slug="one")
    with pytest.raises(IntegrityError) as data_error, transaction.atomic():
        ArticleFactory(slug="one")
    assert not violates_version_constraints(Article, data_error.value)
    with pytest.raises(IntegrityError) as fork, transaction.atomic():
        QuerySet(Article).bulk_create(
            [Article(identity=article.identity, version=2, title="x", slug="two")]
        )
    assert violates_version_constraints(Article, fork.value)
    assert connection.vendor in {"sqlite", "postgresql"}


# Every path over the model variants (int pk, UUID pk, own Meta with referrers
# and many-to-many links) ------------------------------------------------------


def test_bulk_update_makes_each_object_its_new_version(versioned_factory):
    factory, field = versioned_factory
    objs = [factory(), factory()]
    old_pks = [obj.pk for obj in objs]
    for n, obj in enumerate(objs):
        setattr(obj, field, f"bulk {n}")
    assert type(objs[0]).objects.bulk_update(objs, [field]) == 2
    for n, (obj, old_pk) in enumerate(zip(objs, old_pks, strict=True)):
        assert obj.pk != old_pk and obj.version == 2 and obj.is_current
        stored = type(obj).objects.get(identity=obj.identity)
        assert (stored.pk, getattr(stored, field)) == (obj.pk, f"bulk {n}")
        setattr(obj, field, f"then saved {n}")
        obj.save()
        assert obj.version == 3


def test_the_base_manager_versions_every_variant(versioned_factory):
    factory, field = versioned_factory
    obj = factory()
    model = type(obj)
    assert model._base_manager.filter(pk=obj.pk).update(**{field: "via base"}) == 1
    current = model.objects.get(identity=obj.identity)
    assert (current.version, getattr(current, field)) == (2, "via base")
    assert model.all_versions.get(pk=obj.pk).valid_to == current.valid_from


def test_outer_rollback_never_touches_another_object(versioned_factory):
    factory, field = versioned_factory
    obj = factory()
    with pytest.raises(Rollback), transaction.atomic():
        setattr(obj, field, "rolled back")
        obj.save()
        raise Rollback
    other = factory()
    before = rows(type(obj))
    with pytest.raises(StaleVersionError):
        obj.delete()
    setattr(obj, field, "again")
    with pytest.raises((StaleVersionError, IntegrityError)):
        obj.save()
    assert rows(type(obj)) == before
    assert type(obj).objects.filter(identity=other.identity).exists()


def test_version_created_from_every_python_path(versioned_factory):
    factory, field = versioned_factory
    obj = factory()
    model = type(obj)
    received = []

    def receiver(sender, instance, previous, using, **kwargs):
        received.append((instance.version, previous.version))

    version_created.connect(receiver, sender=model)
    try:
        setattr(obj, field, "saved")
        obj.save()
        obj = model.all_versions.get(identity=obj.identity, version=1).restore()
        setattr(obj, field, "bulk")
        model.objects.bulk_update([obj], [field])
        model.objects.filter(pk=obj.pk).update(**{field: "set-based"})
    finally:
        version_created.disconnect(receiver, sender=model)
    # update() sends none, like Django's own update().
    assert received == [(2, 1), (3, 2), (4, 3)]


def test_failed_data_write_leaves_every_variant_unchanged(versioned_factory):
    factory, field = versioned_factory
    obj = factory()
    model = type(obj)
    state, before = bookkeeping(obj), rows(model)
    setattr(obj, field, None)  # a NOT NULL column
    with pytest.raises(IntegrityError) as raised, transaction.atomic():
        obj.save()
    assert not isinstance(raised.value, StaleVersionError)
    assert (bookkeeping(obj), rows(model)) == (state, before)


def test_bulk_update_after_an_outer_rollback_touches_no_other_object():
    article = ArticleFactory(title="mine")
    with pytest.raises(Rollback), transaction.atomic():
        article.title = "rolled back"
        Article.objects.bulk_update([article], ["title"])
        raise Rollback
    other = ArticleFactory(title="other")
    before = rows(Article)
    article.title = "again"
    with pytest.raises(StaleVersionError):
        Article.objects.bulk_update([article], ["title"])
    assert rows(Article) == before
    assert Article.objects.get(identity=other.identity).title == "other"


def test_bulk_update_refuses_the_same_object_twice():
    article = ArticleFactory()
    twin = Article.objects.get(pk=article.pk)
    article.title, twin.title = "a", "b"
    with pytest.raises(ValueError, match="same object twice"):
        Article.objects.bulk_update([article, twin], ["title"])
    assert article.version == 1


def test_links_in_a_table_with_python_made_keys_stay_with_their_object():
    from tests.factories import DocumentFactory
    from tests.testapp.models import Document, Shelf

    documents = [DocumentFactory(title=name) for name in "abc"]
    for document in documents:
        Shelf.objects.create(name=document.title.upper()).documents.add(document)
    for document in documents:
        document.title += "2"
    Document.objects.bulk_update(documents, ["title"])
    documents[0].title = "a3"
    documents[0].save()
    shelves = {
        d.title: sorted(s.name for s in d.shelves.all()) for d in Document.objects.all()
    }
    assert shelves == {"a3": ["A"], "b2": ["B"], "c2": ["C"]}


def test_a_rolled_back_key_reused_by_the_objects_next_version_is_stale():
    mine = ItemFactory(name="a", description="original")
    with pytest.raises(Rollback), transaction.atomic():
        mine.name = "rolled back"
        mine.save()
        raise Rollback
    # Someone else saves the object; on SQLite their version gets the same key.
    theirs = Item.objects.get(identity=mine.identity)
    theirs.description = "their edit"
    theirs.save()
    before = rows(Item)
    mine.name = "mine"
    with pytest.raises(StaleVersionError):
        mine.save()
    with pytest.raises(StaleVersionError):
        mine.delete()
    with pytest.raises(StaleVersionError):
        Item.objects.bulk_update([mine], ["name"])
    assert rows(Item) == before


def test_bulk_update_after_a_rollback_never_swaps_objects():
    a, b = ItemFactory(name="a"), ItemFactory(name="b")
    with pytest.raises(Rollback), transaction.atomic():
        b.name = "b rolled back"
        b.save()
        a.name = "a rolled back"
        a.save()
        raise Rollback
    # Fresh saves take the rolled-back keys the other way round on SQLite.
    for name in "ab":
        fresh = Item.objects.get(name=name)
        fresh.description = "fresh"
        fresh.save()
    before = rows(Item)
    a.name, b.name = "a again", "b again"
    with pytest.raises(StaleVersionError):
        Item.objects.bulk_update([a, b], ["name"])
    assert rows(Item) == before


def test_after_a_rollback_links_new_referrers_and_refresh_never_reach_another_row():
    mine = ItemFactory(name="mine")
    with pytest.raises(Rollback), transaction.atomic():
        mine.name = "rolled back"
        mine.save()
        raise Rollback
    other = ItemFactory(name="other")  # SQLite: takes the rolled-back key
    tag = TagFactory()
    # Django's add() runs in atomic(savepoint=False): give it a savepoint.
    with pytest.raises(StaleVersionError), transaction.atomic():
        mine.tags.add(tag)
    assert not other.tags.exists()
    with pytest.raises(StaleVersionError):
        Order.objects.create(item=mine)
    assert not Order.objects.exists()
    with pytest.raises(Item.DoesNotExist, match="rolled back"):
        mine.refresh_from_db()
    assert mine.current_version().name == "mine"


def test_inside_an_open_transaction_the_new_version_is_used_freely(
    django_assert_num_queries,
):
    item = ItemFactory()
    tag = TagFactory()
    with transaction.atomic():
        item.name = "renamed"
        item.save()
        # No check query: the version is pending in this very transaction.
        # The link change is a new version: read the links, close, insert,
        # copy the tags and supplies, re-point orders, reviews and bundles'
        # links; then Django's add(): select existing links, insert.
        with CaptureQueriesContext(connection) as captured:
            item.tags.add(tag)
        closed_apart = connection.vendor != "postgresql"
        assert len(data_statements(captured)) == 9 + closed_apart
        Order.objects.create(item=item)
        item.refresh_from_db()
    assert Order.objects.get().item_id == item.pk
    assert list(item.tags.all()) == [tag]


def test_deleting_a_user_who_made_versions_clears_who_in_place():
    user = UserFactory()
    with changes(user=user):
        article = ArticleFactory()
        article.title = "edited"
        article.save()
    user.delete()
    assert list(Article.all_versions.values_list("changed_by", flat=True)) == [
        None,
        None,
    ]
    assert article.history().count() == 2


def test_deleting_a_plain_target_with_set_null_clears_the_key_on_every_version():
    tag = TagFactory()
    article = ArticleFactory(category=tag)
    article.title = "edited"
    article.save()
    tag.delete()
    assert list(Article.all_versions.values_list("category", flat=True)) == [
        None,
        None,
    ]
    assert Article.objects.get(identity=article.identity).version == 2


def test_expressions_assigned_on_the_instance_are_computed_from_the_loaded_row(
    versioned_factory,
):
    article = ArticleFactory(counter=1)
    article.counter = F("counter") + 1
    article.save()
    assert (article.counter, article.version) == (2, 2)
    assert Article.objects.get(identity=article.identity).counter == 2
    article.counter = F("counter") + 10
    article.title = "both"
    Article.objects.bulk_update([article], ["counter", "title"])
    stored = Article.objects.get(identity=article.identity)
    assert (stored.counter, stored.title, stored.version) == (12, "both", 3)
    assert (article.counter, article.pk) == (12, stored.pk)
    # A failed write leaves the expression in place, for a retry.
    expression = F("counter") - 100
    article.counter = expression
    with pytest.raises(IntegrityError), transaction.atomic():
        article.save()
    assert article.counter is expression and article.version == 3
    factory, field = versioned_factory
    obj = factory()
    setattr(obj, field, Concat(F(field), Value("!")))
    obj.save()
    assert getattr(type(obj).objects.get(identity=obj.identity), field).endswith("!")


def test_reverse_manager_add_accepts_the_same_object_twice_like_django():
    team = TeamFactory()
    player = PlayerFactory()
    twin = Player.objects.get(pk=player.pk)
    team.player_set.add(player, player, twin)
    assert player.version == twin.version == 2
    assert player.pk == twin.pk == Player.objects.get(identity=player.identity).pk
    twin.name = "twin edits"
    twin.save()
    assert twin.version == 3


def test_nothing_is_added_to_a_historical_version():
    team = TeamFactory()
    first_pk = team.pk
    team.name = "renamed"
    team.save()
    old = Team.all_versions.get(pk=first_pk)
    player = PlayerFactory()
    with pytest.raises(HistoricalVersionError):
        old.player_set.add(player)
    assert Player.objects.get(pk=player.pk).team_id is None


def test_bulk_update_reads_back_generated_columns():
    article = ArticleFactory(title="abcd")
    article.title = "ab"
    Article.objects.bulk_update([article], ["title"])
    assert article.title_length == 2


def test_a_rolled_back_delete_says_so_instead_of_calling_the_row_historical():
    article = ArticleFactory()
    with pytest.raises(Rollback), transaction.atomic():
        article.delete()
        raise Rollback
    article.title = "edited"
    with pytest.raises(StaleVersionError, match="deleted in a transaction that was"):
        article.save()
    assert article.current_version().is_current
    closed = ArticleFactory()
    closed.delete()
    with pytest.raises(HistoricalVersionError):
        closed.save()


def test_a_versioned_referrer_loaded_before_its_target_moved_follows_it():
    team = TeamFactory()
    player = PlayerFactory(team=team)
    loaded = Player.objects.get(pk=player.pk)
    team.name = "renamed"
    team.save()  # re-points the player's current row in place
    loaded.name = "renamed too"
    loaded.save()
    assert loaded.team_id == team.pk
    assert Player.objects.get(identity=player.identity).team_id == team.pk
    # A key the caller changed is written as given.
    other = TeamFactory()
    loaded.team = other
    loaded.save()
    assert Player.objects.get(identity=player.identity).team_id == other.pk


def test_bulk_update_reads_back_keys_re_pointed_in_place():
    team = TeamFactory()
    player = PlayerFactory(team=team)
    loaded = Player.objects.get(pk=player.pk)
    team.name = "renamed"
    team.save()
    loaded.name = "bulk"
    Player.objects.bulk_update([loaded], ["name"])
    assert loaded.team_id == team.pk


@pytest.mark.django_db(transaction=True)
def test_delete_in_autocommit_is_one_statement(django_assert_num_queries):
    article = ArticleFactory()
    with django_assert_num_queries(1):
        article.delete()
    other = ArticleFactory()
    with django_assert_num_queries(1):
        Article.objects.filter(pk=other.pk).delete()


def test_a_stale_instance_is_not_a_duplicate_of_its_own_newer_version():
    article = ArticleFactory(slug="mine")
    stale = Article.objects.get(pk=article.pk)
    article.title = "newer"
    article.save()
    stale.title = "from an old form"
    stale.full_clean()  # the newer version of the same object is no clash
    ArticleFactory(slug="theirs")
    stale.slug = "theirs"
    with pytest.raises(ValidationError) as raised:
        stale.full_clean()
    assert raised.value.message_dict == {
        "slug": ["Article with this Slug already exists."]
    }


def test_every_write_after_a_rolled_back_save_says_so():
    article = ArticleFactory(title="original")
    with pytest.raises(Rollback), transaction.atomic():
        article.title = "rolled back"
        article.save()
        raise Rollback
    before = rows(Article)
    # Nothing changed since the rolled-back save: still not a silent no-op.
    with pytest.raises(StaleVersionError, match="rolled back"):
        article.save()
    with pytest.raises(StaleVersionError, match="rolled back"):
        article.delete()
    with pytest.raises(StaleVersionError, match="rolled back"):
        article.restore()
    with pytest.raises(StaleVersionError, match="rolled back"):
        Article.objects.bulk_update([article], ["title"])
    assert rows(Article) == before
    current = article.current_version()
    assert current.title == "original"
    current.title = "applied again"
    current.save()
    assert current.version == 2


def test_saving_an_object_whose_creation_was_rolled_back_says_so():
    with pytest.raises(Rollback), transaction.atomic():
        ghost = ArticleFactory(title="ghost")
        raise Rollback
    with pytest.raises(StaleVersionError, match="create the object again"):
        ghost.save()
    assert not Article.all_versions.filter(title="ghost").exists()


def test_all_versions_bulk_create_imports_history_rows_as_given():
    import uuid

    identity = uuid.uuid4()
    start = timezone.now() - datetime.timedelta(days=2)
    middle = start + datetime.timedelta(days=1)
    Example.all_versions.bulk_create(
        [
            Example(
                identity=identity,
                version=1,
                data="a",
                valid_from=start,
                valid_to=middle,
            ),
            Example(identity=identity, version=2, data="b", valid_from=middle),
        ]
    )
    assert [(v.version, v.data) for v in Example.all_versions.order_by("version")] == [
        (1, "a"),
        (2, "b"),
    ]
    assert Example.objects.as_of(start + datetime.timedelta(hours=1)).get().data == "a"
    with pytest.raises(HistoricalVersionError):
        Example.objects.as_of(middle).bulk_create([Example(data="c")])
