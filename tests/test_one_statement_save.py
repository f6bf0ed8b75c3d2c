"""
A changed save with nothing to fix up is one statement on PostgreSQL: a
data-modifying WITH closes the loaded row and inserts the new version, in
autocommit without BEGIN/COMMIT. SQLite sends the close and the insert in a
transaction of their own. Every guarantee of a save holds either way; the
statement counts of each shape of save are pinned here.
"""

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.db.models.signals import post_save
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from tests.factories import (
    ArticleFactory,
    ExampleFactory,
    ItemFactory,
    OrderFactory,
    PlayerFactory,
    ReviewFactory,
    TagFactory,
    TeamFactory,
    link_as_given,
)
from tests.testapp.models import Article, Bundle, Example, Item, Player
from versioning.exceptions import StaleVersionError
from versioning.tracking import loaded_values

# Autocommit, as a request without ATOMIC_REQUESTS runs.
pytestmark = pytest.mark.django_db(transaction=True)


def on_postgres():
    return connection.vendor == "postgresql"


def sent(action):
    """The SQL ``action`` sends, transaction control included."""
    with CaptureQueriesContext(connection) as captured:
        action()
    return [query["sql"] for query in captured.captured_queries]


def shape(statements):
    """Each statement's first words: enough to tell a close from an insert."""
    shapes = []
    for sql in statements:
        words = sql.replace('"', "").split()
        if words[0] in {"BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT"}:
            shapes.append(words[0])
        else:
            shapes.append(" ".join(words[:2]))
    return shapes


def stored(model):
    return list(model.all_versions.order_by("pk").values_list())


def bookkeeping(obj):
    return (obj.pk, obj.version, obj.valid_from, obj.valid_to, dict(loaded_values(obj)))


def edit(obj, **values):
    def save():
        for name, value in values.items():
            setattr(obj, name, value)
        obj.save()

    return save


# One statement -------------------------------------------------------------------


def test_a_changed_save_in_autocommit_is_one_statement_on_postgresql():
    example = ExampleFactory(data="v1")
    statements = sent(edit(example, data="v2"))
    if on_postgres():
        assert shape(statements) == ["WITH closed"]
        assert ") INSERT INTO" in statements[0]
    else:
        assert shape(statements) == [
            "BEGIN",
            "UPDATE testapp_example",
            "INSERT INTO",
            "COMMIT",
        ]
    rows = Example.all_versions.order_by("pk").values_list(
        "version", "data", "valid_to"
    )
    (v1, v2) = rows
    assert (v1[:2], v2) == ((1, "v1"), (2, "v2", None))
    assert v1[2] == example.valid_from  # closed exactly when the new one began
    assert example.version == 2 and example.pk == Example.objects.get().pk


def test_inside_the_callers_transaction_it_is_one_statement_on_postgresql():
    example = ExampleFactory()
    with transaction.atomic():
        statements = sent(edit(example, data="changed"))
    if on_postgres():
        # READ COMMITTED, Django's default: no savepoint either.
        assert shape(statements) == ["WITH closed"]
    else:
        assert shape(statements) == [
            "SAVEPOINT",
            "UPDATE testapp_example",
            "INSERT INTO",
            "RELEASE SAVEPOINT",
        ]
    assert Example.objects.get().data == "changed"


def test_at_a_stricter_isolation_level_a_savepoint_surrounds_it(monkeypatch):
    """
    With OPTIONS {"isolation_level": REPEATABLE READ}, a stale save meets a
    serialization failure: a savepoint keeps it from aborting the caller's
    transaction.
    """
    if not on_postgres():
        pytest.skip(
            "needs PostgreSQL: run `make test`, which starts a throwaway server"
        )
    from django.db.backends.postgresql.psycopg_any import IsolationLevel

    example = ExampleFactory()
    monkeypatch.setattr(connection, "isolation_level", IsolationLevel.REPEATABLE_READ)
    with transaction.atomic():
        statements = sent(edit(example, data="changed"))
    assert shape(statements) == ["SAVEPOINT", "WITH closed", "RELEASE SAVEPOINT"]


def test_a_failed_save_inside_the_callers_transaction_is_handled_as_djangos():
    """
    A constraint violation aborts the caller's transaction as a plain save's
    does; Django's own remedy, an inner atomic() around the save, keeps the
    rest of it. Nothing of the failed save is written either way.
    """
    ArticleFactory(slug="taken")
    article = ArticleFactory(slug="mine")
    with transaction.atomic():
        Article.objects.create(slug="kept", title="kept")
        article.slug = "taken"
        with pytest.raises(IntegrityError):
            with transaction.atomic():
                article.save()
        assert article.version == 1 and article.slug == "taken"
        article.slug = "free"
        article.save()
    assert sorted(Article.objects.values_list("slug", flat=True)) == [
        "free",
        "kept",
        "taken",
    ]
    assert Article.all_versions.filter(identity=article.identity).count() == 2
    with pytest.raises(IntegrityError):
        with transaction.atomic():
            article.slug = "taken"
            article.save()
    assert Article.objects.get(identity=article.identity).slug == "free"


def test_django_prepares_the_values_of_the_one_statement():
    article = ArticleFactory(title="first", counter=1)
    created, modified, rating = article.created, article.modified, article.rating
    article.title = "second"
    article.amount = "1.50"
    article.save()
    current = Article.objects.get()
    # auto_now_add kept, auto_now moved, db_default carried, generated read back.
    assert current.created == created and current.modified > modified
    assert (current.rating, current.title_length) == (rating, 6)
    assert article.title_length == 6 and str(current.amount) == "1.50"


def test_a_stale_save_writes_nothing_and_keeps_the_callers_transaction():
    ExampleFactory()
    first = Example.objects.get()
    second = Example.objects.get()
    edit(first, data="first")()
    before, state = stored(Example), bookkeeping(second)
    with CaptureQueriesContext(connection) as captured:
        with pytest.raises(StaleVersionError, match="no longer current"):
            edit(second, data="second")()
    # The close finds no current row, so nothing is inserted.
    closing = ["WITH closed"]
    if not on_postgres():
        closing = ["BEGIN", "UPDATE testapp_example", "ROLLBACK"]
    assert shape(query["sql"] for query in captured.captured_queries) == closing
    assert stored(Example) == before
    assert bookkeeping(second) == state
    # Inside the caller's transaction the stale save leaves it usable.
    with transaction.atomic():
        with pytest.raises(StaleVersionError):
            edit(second, data="again")()
        assert Example.objects.get().data == "first"
        edit(first, data="then")()
    assert Example.all_versions.count() == 3


def test_a_failed_save_writes_nothing_and_leaves_the_object_as_it_was():
    ArticleFactory(slug="taken")
    article = ArticleFactory(slug="mine")
    before, state = stored(Article), bookkeeping(article)
    article.slug = "taken"
    with pytest.raises(IntegrityError) as raised:
        article.save()
    assert not isinstance(raised.value, StaleVersionError)
    assert (stored(Article), bookkeeping(article)) == (before, state)
    article.slug = "free"
    article.save()
    assert article.version == 2


def test_an_expression_is_computed_from_the_replaced_row():
    article = ArticleFactory(counter=1)
    article.counter = F("counter") + 1
    article.save()
    assert article.counter == 2
    assert Article.objects.get().counter == 2


# Receivers ---------------------------------------------------------------------


class ReceiverFailed(Exception):
    pass


def test_a_failing_post_save_receiver_undoes_the_version():
    """
    Django's own save() in autocommit keeps the row when a post_save receiver
    fails; a versioned save fails as a whole: nothing is written.
    """
    example = ExampleFactory()
    heard = []

    def receiver(instance, created, **kwargs):
        heard.append((instance.version, created))
        if instance.data == "fails":
            raise ReceiverFailed

    post_save.connect(receiver, sender=Example)
    try:
        edit(example, data="heard")()
        before, state = stored(Example), bookkeeping(example)
        with pytest.raises(ReceiverFailed):
            edit(example, data="fails")()
    finally:
        post_save.disconnect(receiver, sender=Example)
    assert heard == [(2, False), (3, False)]
    assert (stored(Example), bookkeeping(example)) == (before, state)


def test_a_receiver_gives_the_save_a_transaction():
    example = ExampleFactory()

    def receiver(**kwargs):
        pass

    post_save.connect(receiver, sender=Example)
    try:
        statements = sent(edit(example, data="heard"))
    finally:
        post_save.disconnect(receiver, sender=Example)
    closing = (
        ["WITH closed"] if on_postgres() else ["UPDATE testapp_example", "INSERT INTO"]
    )
    assert shape(statements) == ["BEGIN", *closing, "COMMIT"]


# Pinned counts of the other shapes ---------------------------------------------


def test_statements_of_a_save_with_referrers_and_links():
    item = ItemFactory()
    OrderFactory(item=item)
    ReviewFactory(item=item)
    link_as_given(item, "tags", TagFactory())
    Bundle.objects.create(name="b").items.add(item)
    item = Item.objects.get(pk=item.pk)
    statements = sent(edit(item, price=5))
    closing = (
        ["WITH closed"] if on_postgres() else ["UPDATE testapp_item", "INSERT INTO"]
    )
    assert shape(statements) == [
        "BEGIN",
        *closing,
        "INSERT INTO",  # the tags
        "INSERT INTO",  # the suppliers
        "UPDATE testapp_order",
        "UPDATE testapp_review",
        "UPDATE testapp_bundle_items",
        "COMMIT",
    ]


def test_statements_of_a_save_with_a_key_to_a_versioned_model():
    player = Player.objects.get(pk=PlayerFactory(team=TeamFactory()).pk)
    statements = sent(edit(player, name="renamed"))
    # Players are captains of teams (re-pointed); the check of the written
    # key locks the team's row. SQLite's close reads back the key as stored.
    closing = (
        ["WITH closed"] if on_postgres() else ["UPDATE testapp_player", "INSERT INTO"]
    )
    assert shape(statements) == [
        "BEGIN",
        *closing,
        "UPDATE testapp_team",
        "SELECT valid_to,",
        "COMMIT",
    ]


def test_a_key_re_pointed_since_loading_is_followed_by_the_new_version():
    team = TeamFactory(name="v1")
    player = PlayerFactory(team=team)
    loaded = Player.objects.get(pk=player.pk)  # its team_id names version 1
    team.name = "v2"
    team.save()  # re-points the player's current row in place
    loaded.name = "renamed"
    loaded.save()
    assert loaded.team_id == team.pk
    assert Player.objects.get().team_id == team.pk
    assert Player.all_versions.get(version=1).team_id == team.pk  # in place


def test_statements_of_a_restore():
    """
    A restore reads the latest row (to number the new version, and to return
    it unchanged when it already holds the data); on PostgreSQL the insert
    then closes it, without a transaction of its own.
    """
    example = ExampleFactory(data="v1")
    first = Example.all_versions.get(pk=example.pk)
    edit(example, data="v2")()
    statements = sent(first.restore)
    if on_postgres():
        assert shape(statements) == ["SELECT testapp_example.id,", "WITH closed"]
    else:
        assert shape(statements) == [
            "BEGIN",
            "SELECT testapp_example.id,",
            "UPDATE testapp_example",
            "INSERT INTO",
            "COMMIT",
        ]
    assert Example.objects.get().data == "v1"
    # Restoring data that is already current reads, and writes nothing.
    reads = ["SELECT testapp_example.id,"]
    unchanged = reads if on_postgres() else ["BEGIN", *reads, "COMMIT"]
    assert shape(sent(first.restore)) == unchanged


def test_a_restore_after_a_delete_inserts_the_next_version():
    example = ExampleFactory(data="v1")
    example.delete()
    restored = Example.all_versions.get(pk=example.pk).restore()
    assert (restored.version, restored.data, restored.is_current) == (2, "v1", True)
    assert Example.all_versions.count() == 2


# Reads during a save ------------------------------------------------------------


class ReadsRecorded:
    """A router that lets every read through and remembers it was asked."""

    def __init__(self):
        self.models = []

    def db_for_read(self, model, **hints):
        self.models.append(model)


def test_every_read_a_write_makes_goes_to_the_write_database():
    reads = ReadsRecorded()
    item = ItemFactory()
    OrderFactory(item=item)
    player = Player.objects.get(pk=PlayerFactory(team=TeamFactory()).pk)
    old = Example.all_versions.get(pk=ExampleFactory(data="v1").pk)
    edit(Example.objects.get(), data="v2")()
    deferred = Item.objects.only("name").get()
    counted = Article.objects.get(pk=ArticleFactory().pk)
    with override_settings(DATABASE_ROUTERS=[reads]):
        edit(deferred, name="renamed")()  # reads the deferred fields first
        edit(player, name="renamed")()
        edit(counted, counter=F("counter") + 1)()
        old.restore()
    assert reads.models == []
