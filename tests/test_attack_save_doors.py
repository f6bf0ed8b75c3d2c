"""
A changed save reached through every door a Django developer uses: related
managers, joins after a save, forms and formsets, fixtures,
update_or_create(), update_fields, refresh_from_db(), deferred fields, the
caller's transactions, bulk_update() next to save(), stale instances, saves
inside receivers, auto_now and db_default, unique data fields. On PostgreSQL
a changed save of a model with nothing to fix up (Example, Article) is one
statement with no transaction of its own; every door must still leave
exactly the expected versions, one current row per identity, and the object
as a user expects it.
"""

import json

import pytest
from django import forms
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.db.models import Count
from django.db.models.signals import post_save
from django.forms import inlineformset_factory, modelformset_factory

from tests.factories import (
    ArticleFactory,
    ChildFactory,
    ExampleFactory,
    ItemFactory,
    ReviewFactory,
    TagFactory,
)
from tests.testapp.models import (
    Article,
    Bundle,
    Child,
    Club,
    Comment,
    Example,
    Fan,
    Item,
    Order,
    Page,
    Parent,
    Review,
    Wine,
    WineDrinker,
)
from versioning.exceptions import (
    HistoricalVersionError,
    StaleVersionError,
    VersioningError,
)
from versioning.forms import (
    LOADED_VERSION_FIELD,
    REASON_FIELD,
    versionedmodelform_factory,
)

# Autocommit, as a request without ATOMIC_REQUESTS runs: on PostgreSQL the
# save of an Example or an Article is then one statement and no transaction.
pytestmark = pytest.mark.django_db(transaction=True)


ON_SQLITE = connection.vendor == "sqlite"


class Boom(Exception):
    """What makes a caller's atomic() roll back."""


def versions(obj, field):
    """``obj``'s identity as (version, value of ``field``, is current) rows."""
    rows = type(obj).all_versions.filter(identity=obj.identity).order_by("version")
    return [(row.version, getattr(row, field), row.valid_to is None) for row in rows]


def assert_one_current_per_identity(model):
    identities = set(model.all_versions.values_list("identity", flat=True))
    current = (
        model.all_versions.filter(valid_to__isnull=True)
        .values("identity")
        .annotate(n=Count("pk"))
    )
    assert all(row["n"] == 1 for row in current)
    assert {row["identity"] for row in current} == identities


def bookkeeping(obj):
    return (obj.pk, obj.identity, obj.version, obj.valid_from, obj.valid_to)


def stored_rows(model):
    return list(model.all_versions.order_by("pk").values_list())


# Reverse foreign-key managers ---------------------------------------------------


def test_reverse_manager_create_makes_version_one_of_a_referrer():
    page = Page.objects.create(title="p")
    comment = page.comments.create(text="c")
    assert versions(comment, "text") == [(1, "c", True)]
    assert list(page.comments.all()) == [comment]


def test_reverse_manager_add_moves_a_referrer_as_a_new_version():
    first, second = Page.objects.create(title="1"), Page.objects.create(title="2")
    comment = first.comments.create(text="c")
    second.comments.add(comment)
    assert comment.version == 2
    assert comment.page_id == second.pk
    history = Comment.all_versions.filter(identity=comment.identity).order_by("version")
    assert [(row.version, row.page_id) for row in history] == [
        (1, first.pk),
        (2, second.pk),
    ]
    assert list(first.comments.all()) == []
    assert list(second.comments.all()) == [comment]
    # The object in hand is the new version: it saves again.
    comment.text = "again"
    comment.save()
    assert versions(comment, "text") == [
        (1, "c", False),
        (2, "c", False),
        (3, "again", True),
    ]


def test_reverse_manager_add_without_bulk_saves_each_as_a_new_version():
    first, second = Page.objects.create(title="1"), Page.objects.create(title="2")
    comment = first.comments.create(text="c")
    second.comments.add(comment, bulk=False)
    assert (comment.version, comment.page_id) == (2, second.pk)
    assert list(second.comments.all()) == [comment]
    assert_one_current_per_identity(Comment)


def test_reverse_manager_remove_clear_and_set_version_the_referrers():
    club = Club.objects.create(name="club")
    kept, removed, cleared = (
        Fan.objects.create(name=name, club=club)
        for name in ("kept", "removed", "cleared")
    )
    club.fans.remove(removed)
    assert (removed.version, removed.club_id) == (2, None)
    club.fans.set([kept])
    assert kept.version == 1  # unchanged: not versioned
    cleared = Fan.objects.get(identity=cleared.identity)
    assert (cleared.version, cleared.club_id) == (2, None)
    club.fans.clear()
    kept = Fan.objects.get(identity=kept.identity)
    assert (kept.version, kept.club_id) == (2, None)
    assert list(club.fans.all()) == []
    # Every old version still names the club it had.
    assert Fan.all_versions.filter(club=club).count() == 3
    assert_one_current_per_identity(Fan)


def test_a_saved_target_keeps_its_reverse_manager_contents():
    page = Page.objects.create(title="p")
    comment = page.comments.create(text="c")
    page.title = "p2"
    page.save()
    assert list(page.comments.all()) == [comment]
    assert Comment.all_versions.count() == 1  # re-pointed in place
    assert Comment.objects.get().page_id == page.pk


# Many-to-many -------------------------------------------------------------------


def test_m2m_add_on_the_declaring_side_is_one_new_version_in_hand():
    item, tag = ItemFactory(name="i"), TagFactory()
    item.tags.add(tag)
    assert item.version == 2
    assert list(item.tags.all()) == [tag]
    assert (
        list(Item.all_versions.get(identity=item.identity, version=1).tags.all()) == []
    )
    item.name = "renamed"
    item.save()
    assert list(item.tags.all()) == [tag]
    assert versions(item, "name") == [
        (1, "i", False),
        (2, "i", False),
        (3, "renamed", True),
    ]


def test_m2m_add_from_the_plain_side_versions_the_declaring_object():
    item, tag = ItemFactory(name="i"), TagFactory()
    tag.items.add(item)
    assert item.version == 2
    assert list(tag.items.all()) == [item]
    item.name = "renamed"
    item.save()  # the object passed in became the new version
    assert list(tag.items.all()) == [item]
    assert_one_current_per_identity(Item)


def test_m2m_set_is_one_version():
    item = ItemFactory(name="i")
    one, two = TagFactory(), TagFactory()
    item.tags.set([one, two])
    assert item.version == 2
    assert Item.all_versions.filter(identity=item.identity).count() == 2


def test_links_declared_on_a_plain_model_follow_a_saved_item():
    item = ItemFactory(name="old")
    bundle = Bundle.objects.create(name="b")
    bundle.items.add(item)
    assert item.version == 1  # a plain declaring side does not version the item
    item.name = "new"
    item.save()
    assert list(bundle.items.all()) == [item]
    assert list(Bundle.objects.filter(items__name="new")) == [bundle]
    assert not Bundle.objects.filter(items__name="old").exists()
    prefetched = Bundle.objects.prefetch_related("items").get()
    assert [i.name for i in prefetched.items.all()] == ["new"]


def test_links_between_versioned_models_follow_a_saved_target():
    wine = Wine.objects.create(name="w")
    drinker = WineDrinker.objects.create(name="d")
    drinker.glasses.add(wine)
    assert (drinker.version, wine.version) == (2, 1)
    wine.vintage = 2001
    wine.save()
    assert list(drinker.glasses.all()) == [wine]
    assert WineDrinker.all_versions.filter(identity=drinker.identity).count() == 2
    prefetched = WineDrinker.objects.prefetch_related("glasses").get()
    assert [(w.pk, w.vintage) for w in prefetched.glasses.all()] == [(wine.pk, 2001)]
    assert list(Wine.objects.filter(drinkers__name="d")) == [wine]


# Joins, select_related and prefetch_related after a save ---------------------------


def test_select_related_after_a_save_gives_the_current_target():
    review = ReviewFactory(item=ItemFactory(name="old"), text="t")
    item = Item.objects.get()
    item.name = "new"
    item.save()
    loaded = Review.objects.select_related("item").get()
    assert (loaded.item.pk, loaded.item.name) == (item.pk, "new")
    assert loaded.pk == review.pk  # re-pointed in place
    assert list(Review.objects.filter(item__name="new")) == [loaded]
    assert not Review.objects.filter(item__name="old").exists()


def test_a_join_never_duplicates_an_object_with_history():
    item = ItemFactory(name="i")
    review = ReviewFactory(item=item, text="a")
    for text in ("b", "c"):
        review.text = text
        review.save()
    assert list(Item.objects.filter(reviews__item=item).distinct()) == [item]
    assert Item.objects.filter(reviews__text__in=["a", "b", "c"]).count() == 1
    assert not Item.objects.filter(reviews__text="a").exists()


def test_prefetch_related_after_saves_gives_current_referrers_once():
    page = Page.objects.create(title="p")
    comments = [page.comments.create(text=f"c{n}") for n in range(2)]
    for comment in comments:
        comment.text += "!"
        comment.save()
    page.title = "p!"
    page.save()
    (loaded,) = Page.objects.prefetch_related("comments")
    assert sorted(c.text for c in loaded.comments.all()) == ["c0!", "c1!"]


def test_a_referrer_loaded_before_its_target_was_saved_follows_it_on_save():
    page = Page.objects.create(title="p")
    page.comments.create(text="c")
    comment = Comment.objects.get()  # holds the page's first pk
    page.title = "p2"
    page.save()
    comment.text = "c2"
    comment.save()
    assert comment.page_id == page.pk
    assert Comment.objects.get().page_id == page.pk


def test_a_plain_foreign_key_referrer_loaded_before_its_target_was_saved_follows():
    item = ItemFactory(name="v1")
    Order.objects.create(item=item)
    order = Order.objects.get()  # holds the item's first pk
    item.name = "v2"
    item.save()
    order.quantity = 2
    order.save()
    assert Order.objects.get().item_id == item.pk


def test_a_plain_referrer_loaded_before_its_target_was_saved_never_points_back():
    child = ChildFactory(data="c1")
    Parent.objects.create(child=child)
    parent = Parent.objects.get()  # holds the child's first pk
    child.data = "c2"
    child.save()
    try:
        parent.save()
    except VersioningError:
        pass  # refused is fine; pointing at the closed row is not
    assert Parent.objects.get().child_id == child.pk


def test_a_new_referrer_may_not_point_at_a_historical_version():
    item = ItemFactory(name="v1")
    item.name = "v2"
    item.save()
    old = Item.all_versions.get(identity=item.identity, version=1)
    with pytest.raises(HistoricalVersionError):
        Review.objects.create(item=old, text="t")
    assert not Review.all_versions.exists()


def test_a_new_one_to_one_referrer_may_not_point_at_a_historical_version():
    child = ChildFactory(data="c1")
    child.data = "c2"
    child.save()
    old = Child.all_versions.get(identity=child.identity, version=1)
    with pytest.raises(HistoricalVersionError):
        Parent.objects.create(child=old)
    assert not Parent.objects.exists()


def test_select_related_target_saved_through_the_referrer_is_followed():
    Parent.objects.create(child=ChildFactory(data="c1"))
    parent = Parent.objects.select_related("child").get()
    parent.child.data = "c2"
    parent.child.save()
    assert parent.child_id == parent.child.pk
    parent.save()
    assert Parent.objects.get().child.data == "c2"


def test_a_versioned_referrer_saved_after_its_cached_target_points_at_the_new_version():
    ReviewFactory(item=ItemFactory(name="old"), text="t")
    review = Review.objects.select_related("item").get()
    review.item.name = "new"
    review.item.save()
    review.text = "t2"
    review.save()
    assert review.item_id == review.item.pk
    current = Review.objects.get()
    assert current.item_id == Item.objects.get().pk
    assert versions(review, "text") == [(1, "t", False), (2, "t2", True)]


# Forms and formsets ---------------------------------------------------------------


class ExampleForm(forms.ModelForm):
    class Meta:
        model = Example
        fields = ["data"]


class ArticleForm(forms.ModelForm):
    class Meta:
        model = Article
        fields = ["title", "slug", "counter"]


def test_a_model_form_saves_a_new_version():
    example = ExampleFactory(data="v1")
    form = ExampleForm({"data": "v2"}, instance=Example.objects.get())
    assert form.is_valid()
    saved = form.save()
    assert (saved.version, saved.pk) == (2, Example.objects.get().pk)
    assert versions(example, "data") == [(1, "v1", False), (2, "v2", True)]


class ItemForm(forms.ModelForm):
    class Meta:
        model = Item
        fields = ["name", "tags"]


@pytest.mark.parametrize("commit", [True, False])
def test_a_model_form_saving_fields_and_links_loses_nothing(commit):
    """README: a plain ModelForm saves fields and links as two versions."""
    old_tag, new_tag = TagFactory(), TagFactory()
    item = ItemFactory(name="old")
    item.tags.add(old_tag)  # version 2
    form = ItemForm(
        {"name": "new", "tags": [str(new_tag.pk)]}, instance=Item.objects.get()
    )
    assert form.is_valid(), form.errors
    saved = form.save(commit=commit)
    if not commit:
        saved.save()
        form.save_m2m()
    rows = list(Item.all_versions.filter(identity=item.identity).order_by("version"))
    assert [(r.version, r.name, list(r.tags.all())) for r in rows] == [
        (1, "old", []),
        (2, "old", [old_tag]),
        (3, "new", [old_tag]),
        (4, "new", [new_tag]),
    ]
    assert (saved.version, saved.pk) == (4, rows[-1].pk)


def test_a_versioned_model_form_saving_fields_and_links_makes_one_version():
    old_tag, new_tag = TagFactory(), TagFactory()
    item = ItemFactory(name="old")
    item.tags.add(old_tag)  # version 2
    form_class = versionedmodelform_factory(Item, fields=["name", "tags"])
    data = {
        "name": "new",
        "tags": [str(new_tag.pk)],
        LOADED_VERSION_FIELD: "2",
        REASON_FIELD: "",
    }
    form = form_class(data, instance=Item.objects.get())
    assert form.is_valid(), form.errors
    saved = form.save()
    rows = list(Item.all_versions.filter(identity=item.identity).order_by("version"))
    assert [(r.version, r.name, list(r.tags.all())) for r in rows] == [
        (1, "old", []),
        (2, "old", [old_tag]),
        (3, "new", [new_tag]),
    ]
    assert (saved.version, saved.pk) == (3, rows[-1].pk)


def test_two_forms_from_one_version_the_second_is_stale():
    ExampleFactory(data="v1")
    mine = ExampleForm({"data": "mine"}, instance=Example.objects.get())
    theirs = ExampleForm({"data": "theirs"}, instance=Example.objects.get())
    assert mine.is_valid() and theirs.is_valid()
    theirs.save()
    before = bookkeeping(mine.instance)
    with pytest.raises(StaleVersionError):
        mine.save()
    assert bookkeeping(mine.instance) == before
    assert versions(theirs.instance, "data") == [(1, "v1", False), (2, "theirs", True)]


def test_a_model_form_reports_a_scoped_unique_value_on_the_field():
    ArticleFactory(slug="taken")
    other = ArticleFactory(slug="free")
    form = ArticleForm(
        {"title": "t", "slug": "taken", "counter": 0},
        instance=Article.objects.get(pk=other.pk),
    )
    assert not form.is_valid()
    assert form.errors == {"slug": ["Article with this Slug already exists."]}


def test_a_model_formset_versions_only_the_changed_rows_and_creates_new_ones():
    examples = [ExampleFactory(data=f"e{n}") for n in range(3)]
    formset_class = modelformset_factory(Example, fields=["data"], extra=1)
    data = {
        "form-TOTAL_FORMS": "4",
        "form-INITIAL_FORMS": "3",
        "form-MIN_NUM_FORMS": "0",
        "form-MAX_NUM_FORMS": "1000",
    }
    for n, example in enumerate(examples):
        data[f"form-{n}-id"] = str(example.pk)
        data[f"form-{n}-data"] = "changed" if n == 1 else example.data
    data["form-3-id"] = ""
    data["form-3-data"] = "added"
    formset = formset_class(data, queryset=Example.objects.order_by("pk"))
    assert formset.is_valid(), formset.errors
    formset.save()
    assert versions(examples[0], "data") == [(1, "e0", True)]
    assert versions(examples[1], "data") == [(1, "e1", False), (2, "changed", True)]
    assert versions(examples[2], "data") == [(1, "e2", True)]
    assert sorted(Example.objects.values_list("data", flat=True)) == [
        "added",
        "changed",
        "e0",
        "e2",
    ]
    assert_one_current_per_identity(Example)


def test_an_inline_formset_edits_adds_and_deletes_referrers():
    page = Page.objects.create(title="p")
    edited = page.comments.create(text="edit me")
    deleted = page.comments.create(text="delete me")
    formset_class = inlineformset_factory(
        Page, Comment, fields=["text"], extra=1, can_delete=True
    )
    data = {
        "comments-TOTAL_FORMS": "3",
        "comments-INITIAL_FORMS": "2",
        "comments-MIN_NUM_FORMS": "0",
        "comments-MAX_NUM_FORMS": "1000",
        "comments-0-id": str(edited.pk),
        "comments-0-text": "edited",
        "comments-1-id": str(deleted.pk),
        "comments-1-text": "delete me",
        "comments-1-DELETE": "on",
        "comments-2-id": "",
        "comments-2-text": "added",
    }
    formset = formset_class(
        data, instance=page, queryset=Comment.objects.order_by("pk")
    )
    assert formset.is_valid(), formset.errors
    formset.save()
    assert sorted(page.comments.values_list("text", flat=True)) == ["added", "edited"]
    assert versions(edited, "text") == [(1, "edit me", False), (2, "edited", True)]
    assert versions(deleted, "text") == [(1, "delete me", False)]
    assert Comment.all_versions.count() == 4


# Fixtures ---------------------------------------------------------------------------


def test_loading_the_same_fixture_twice_changes_nothing(tmp_path):
    example = ExampleFactory(data="v1")
    example.data = "v2"
    example.save()
    path = tmp_path / "examples.json"
    call_command("dumpdata", "testapp.Example", "--all", output=str(path), verbosity=0)
    before = stored_rows(Example)
    call_command("loaddata", str(path), verbosity=0)
    call_command("loaddata", str(path), verbosity=0)
    assert stored_rows(Example) == before
    example.data = "v3"
    example.save()  # the object in hand is still the current version
    assert versions(example, "data") == [
        (1, "v1", False),
        (2, "v2", False),
        (3, "v3", True),
    ]


def test_a_fixture_over_an_existing_row_leaves_one_current_row(tmp_path):
    example = ExampleFactory(data="v1")
    path = tmp_path / "examples.json"
    call_command("dumpdata", "testapp.Example", output=str(path), verbosity=0)
    fixture = json.loads(path.read_text())
    fixture[0]["fields"]["data"] = "from the fixture"
    path.write_text(json.dumps(fixture))
    call_command("loaddata", str(path), verbosity=0)
    assert_one_current_per_identity(Example)
    # A fixture names rows: the row is stored as the fixture gives it.
    assert versions(example, "data") == [(1, "from the fixture", True)]
    example.data = "v2"
    example.save()  # the object in hand still names the current row
    assert versions(example, "data") == [
        (1, "from the fixture", False),
        (2, "v2", True),
    ]


# update_or_create() and get_or_create() -----------------------------------------------


def test_update_or_create_makes_a_new_version_and_says_not_created():
    heard = []

    def receiver(sender, instance, created, **kwargs):
        heard.append((instance.data, created))

    example = ExampleFactory(data="v1")
    post_save.connect(receiver, sender=Example)
    try:
        obj, created = Example.objects.update_or_create(
            identity=example.identity, defaults={"data": "v2"}
        )
        same, created_again = Example.objects.update_or_create(
            identity=example.identity, defaults={"data": "v2"}
        )
        new, made = Example.objects.update_or_create(
            data="v1", defaults={"data": "fresh"}
        )
    finally:
        post_save.disconnect(receiver, sender=Example)
    assert (created, obj.version) == (False, 2)
    assert (created_again, same.version, same.pk) == (False, 2, obj.pk)
    # "v1" is history only: a lookup never reaches it, a new object is made.
    assert made and new.identity != example.identity and new.data == "fresh"
    assert versions(example, "data") == [(1, "v1", False), (2, "v2", True)]
    assert heard[0] == ("v2", False)
    assert heard[-1] == ("fresh", True)
    assert_one_current_per_identity(Example)


def test_get_or_create_returns_the_current_version_and_writes_nothing():
    example = ExampleFactory(data="v1")
    example.data = "v2"
    example.save()
    got, created = Example.objects.get_or_create(identity=example.identity)
    assert (created, got.pk, got.version) == (False, example.pk, 2)
    assert Example.all_versions.count() == 2


def test_update_or_create_on_a_taken_unique_value_is_an_integrity_error():
    ItemFactory(name="taken")
    item = ItemFactory(name="free")
    with pytest.raises(IntegrityError):
        Item.objects.update_or_create(
            identity=item.identity, defaults={"name": "taken"}
        )
    assert versions(item, "name") == [(1, "free", True)]


# update_fields, refresh_from_db(), deferred fields ------------------------------------


def test_save_update_fields_on_a_one_statement_model_is_a_complete_version():
    article = ArticleFactory(title="t1", slug="s", counter=1)
    article.title = "t2"
    article.counter = 2
    article.save(update_fields=["title"])
    current = Article.objects.get()
    assert (current.version, current.title, current.counter) == (2, "t2", 2)
    assert current.title_length == 2
    article.save(update_fields=[])
    assert Article.all_versions.count() == 2
    with pytest.raises(ValueError):
        article.save(update_fields=["nonexistent"])


def test_refresh_from_db_after_own_save_then_save_again():
    example = ExampleFactory(data="v1")
    example.data = "v2"
    example.save()
    example.refresh_from_db()
    assert (example.version, example.data, example.is_current) == (2, "v2", True)
    example.data = "v3"
    example.save()
    assert versions(example, "data") == [
        (1, "v1", False),
        (2, "v2", False),
        (3, "v3", True),
    ]


def test_refresh_from_db_of_a_replaced_version_shows_it_is_history():
    ExampleFactory(data="v1")
    mine, theirs = Example.objects.get(), Example.objects.get()
    theirs.data = "theirs"
    theirs.save()
    mine.refresh_from_db()
    assert not mine.is_current
    mine.data = "mine"
    with pytest.raises(VersioningError):
        mine.save()
    assert versions(theirs, "data") == [(1, "v1", False), (2, "theirs", True)]


def test_refresh_from_db_of_one_field_discards_the_edit():
    example = ExampleFactory(data="v1")
    example.data = "edited"
    example.refresh_from_db(fields=["data"])
    example.save()
    assert versions(example, "data") == [(1, "v1", True)]


@pytest.mark.parametrize("queryset", ["only_data", "only_pk", "defer_data"])
def test_a_save_of_deferred_fields_keeps_everything(queryset):
    article = ArticleFactory(title="t", slug="s", counter=7, amount="1.50", rating=5)
    loaded = {
        "only_data": lambda: Article.objects.only("title"),
        "only_pk": lambda: Article.objects.only("pk"),
        "defer_data": lambda: Article.objects.defer("title", "counter", "rating"),
    }[queryset]().get()
    loaded.slug = "s2"
    loaded.save()
    new = Article.objects.get()
    assert (new.version, new.identity) == (2, article.identity)
    assert (new.title, new.slug, new.counter, str(new.amount), new.rating) == (
        "t",
        "s2",
        7,
        "1.50",
        5,
    )
    assert new.created == article.created
    assert (loaded.pk, loaded.version) == (new.pk, 2)


def test_a_deferred_stale_save_writes_nothing():
    ExampleFactory(data="v1")
    mine = Example.objects.only("data").get()
    theirs = Example.objects.get()
    theirs.data = "theirs"
    theirs.save()
    mine.data = "mine"
    with pytest.raises(VersioningError):
        mine.save()
    assert versions(theirs, "data") == [(1, "v1", False), (2, "theirs", True)]


# The caller's transactions ------------------------------------------------------------


def test_an_outer_atomic_that_rolls_back_leaves_nothing_and_a_safe_object():
    example = ExampleFactory(data="v1")
    committed = stored_rows(Example)
    with pytest.raises(Boom), transaction.atomic():
        example.data = "v2"
        example.save()
        assert example.version == 2
        raise Boom
    assert stored_rows(Example) == committed
    # The object names a row that never committed: no write goes through it.
    example.data = "v3"
    with pytest.raises(StaleVersionError):
        example.save()
    with pytest.raises(StaleVersionError):
        example.delete()
    with pytest.raises(Example.DoesNotExist):
        example.refresh_from_db()
    assert stored_rows(Example) == committed
    current = example.current_version()
    assert (current.version, current.data) == (1, "v1")
    current.data = "v2 again"
    current.save()
    assert versions(current, "data") == [(1, "v1", False), (2, "v2 again", True)]


def test_an_object_created_in_a_rolled_back_atomic_cannot_be_saved():
    with pytest.raises(Boom), transaction.atomic():
        example = Example.objects.create(data="v1")
        raise Boom
    other = ExampleFactory(data="other")  # SQLite may reuse the key
    example.data = "v2"
    with pytest.raises(StaleVersionError):
        example.save()
    assert versions(other, "data") == [(1, "other", True)]
    assert Example.all_versions.count() == 1


def test_a_nested_atomic_rolled_back_leaves_the_outer_one_usable():
    example = ExampleFactory(data="v1")
    other = ExampleFactory(data="o1")
    with transaction.atomic():
        with pytest.raises(Boom), transaction.atomic():
            example.data = "v2"
            example.save()
            raise Boom
        other.data = "o2"
        other.save()
        example.data = "v3"
        with pytest.raises(StaleVersionError):
            example.save()
    assert versions(example, "data") == [(1, "v1", True)]
    assert versions(other, "data") == [(1, "o1", False), (2, "o2", True)]


def test_a_referrer_that_followed_a_rolled_back_version_is_refused():
    parent = Parent.objects.create(child=ChildFactory(data="c1"))
    first_child = parent.child_id
    with pytest.raises(Boom), transaction.atomic():
        parent.child.data = "c2"
        parent.child.save()
        assert parent.child_id != first_child
        raise Boom
    with pytest.raises((StaleVersionError, IntegrityError)):
        parent.save()
    assert Parent.objects.get().child_id == first_child
    assert Child.all_versions.count() == 1


def test_a_one_to_one_referrer_that_followed_a_rolled_back_version_is_refused():
    parent = Parent.objects.create(child=ChildFactory(data="c1"))
    first_child = parent.child_id
    with pytest.raises(Boom), transaction.atomic():
        parent.child.data = "c2"
        parent.child.save()
        raise Boom
    stranger = ChildFactory(data="stranger")  # SQLite reuses the rolled-back key
    with pytest.raises((StaleVersionError, IntegrityError)):
        parent.save()
    assert Parent.objects.get().child_id == first_child
    assert not Parent.objects.filter(child=stranger).exists()


def test_a_key_that_followed_a_rolled_back_version_never_names_another_row():
    item = ItemFactory(name="i1")
    review = ReviewFactory(item=item, text="t")
    first_item = item.pk
    with pytest.raises(Boom), transaction.atomic():
        review.item.name = "i2"
        review.item.save()
        raise Boom
    stranger = ItemFactory(name="stranger")  # SQLite reuses the rolled-back key
    review.text = "t2"
    try:
        review.save()
    except (StaleVersionError, IntegrityError):
        pass  # refused, or written with the key the committed row holds
    assert Review.objects.get().item_id == first_item
    assert not Review.all_versions.filter(item=stranger).exists()


def test_an_outer_atomic_catches_an_integrity_error_from_a_nested_atomic():
    ArticleFactory(slug="taken")
    article = ArticleFactory(title="t", slug="free")
    with transaction.atomic():
        before = bookkeeping(article)
        article.slug = "taken"
        with pytest.raises(IntegrityError), transaction.atomic():
            article.save()
        assert bookkeeping(article) == before
        article.slug = "other"
        article.save()
    assert versions(article, "slug") == [(1, "free", False), (2, "other", True)]
    assert Article.all_versions.count() == 3
    assert_one_current_per_identity(Article)


def test_a_stale_save_caught_inside_an_atomic_leaves_the_transaction_usable():
    ExampleFactory(data="v1")
    other = ExampleFactory(data="o1")
    mine, theirs = Example.objects.get(data="v1"), Example.objects.get(data="v1")
    theirs.data = "theirs"
    theirs.save()
    with transaction.atomic():
        mine.data = "mine"
        with pytest.raises(StaleVersionError):
            mine.save()  # no atomic() of the caller's own around it
        other.data = "o2"
        other.save()
        current = mine.current_version()
        current.data = "mine"
        current.save()
    assert versions(theirs, "data") == [
        (1, "v1", False),
        (2, "theirs", False),
        (3, "mine", True),
    ]
    assert versions(other, "data") == [(1, "o1", False), (2, "o2", True)]


def test_two_saves_in_a_rolled_back_atomic_then_save_from_a_fresh_load():
    example = ExampleFactory(data="v1")
    with pytest.raises(Boom), transaction.atomic():
        for data in ("v2", "v3"):
            example.data = data
            example.save()
        raise Boom
    assert versions(example, "data") == [(1, "v1", True)]
    fresh = Example.objects.get()
    fresh.data = "v2"
    fresh.save()
    assert versions(fresh, "data") == [(1, "v1", False), (2, "v2", True)]


def test_select_for_update_then_save_in_an_atomic():
    example = ExampleFactory(data="v1")
    with transaction.atomic():
        locked = Example.objects.select_for_update().get(identity=example.identity)
        locked.data = "v2"
        locked.save()
    assert versions(example, "data") == [(1, "v1", False), (2, "v2", True)]


# bulk_update() next to save(), stale instances ----------------------------------------


def test_bulk_update_after_save_and_save_after_bulk_update():
    a, b = ExampleFactory(data="a1"), ExampleFactory(data="b1")
    a.data = "a2"
    a.save()
    a.data, b.data = "a3", "b2"
    assert Example.objects.bulk_update([a, b], ["data"]) == 2
    a.data = "a4"
    a.save()
    assert versions(a, "data") == [
        (1, "a1", False),
        (2, "a2", False),
        (3, "a3", False),
        (4, "a4", True),
    ]
    assert versions(b, "data") == [(1, "b1", False), (2, "b2", True)]


def test_bulk_update_of_a_copy_saved_elsewhere_is_stale_and_all_or_nothing():
    ExampleFactory(data="a1")
    b = ExampleFactory(data="b1")
    saved, copy = Example.objects.get(data="a1"), Example.objects.get(data="a1")
    saved.data = "saved"
    saved.save()
    copy.data, b.data = "copy", "b2"
    before = [bookkeeping(copy), bookkeeping(b)]
    with pytest.raises(StaleVersionError):
        Example.objects.bulk_update([copy, b], ["data"])
    assert [bookkeeping(copy), bookkeeping(b)] == before
    assert versions(b, "data") == [(1, "b1", True)]
    assert versions(saved, "data") == [(1, "a1", False), (2, "saved", True)]


def test_save_of_a_copy_bulk_updated_elsewhere_is_stale():
    ExampleFactory(data="a1")
    updated, copy = Example.objects.get(), Example.objects.get()
    updated.data = "bulk"
    Example.objects.bulk_update([updated], ["data"])
    copy.data = "copy"
    with pytest.raises(StaleVersionError):
        copy.save()
    assert versions(updated, "data") == [(1, "a1", False), (2, "bulk", True)]


def test_two_instances_saved_one_after_the_other():
    article = ArticleFactory(title="t", slug="s")
    mine, theirs = Article.objects.get(), Article.objects.get()
    theirs.title = "theirs"
    theirs.save()
    mine.title = "mine"
    before = bookkeeping(mine)
    with pytest.raises(StaleVersionError):
        mine.save()
    assert bookkeeping(mine) == before
    assert mine.title == "mine"  # the caller's edit is kept, to retry
    assert versions(article, "title") == [(1, "t", False), (2, "theirs", True)]
    retry = mine.current_version()
    retry.title = mine.title
    retry.save()
    assert versions(article, "title") == [
        (1, "t", False),
        (2, "theirs", False),
        (3, "mine", True),
    ]


def test_a_save_after_queryset_update_or_delete_is_stale():
    updated, deleted = ExampleFactory(data="u"), ExampleFactory(data="d")
    Example.objects.filter(pk=updated.pk).update(data="by update")
    Example.objects.get(pk=deleted.pk).delete()
    for example in (updated, deleted):
        example.data = "mine"
        with pytest.raises(StaleVersionError):
            example.save()
    assert versions(updated, "data") == [(1, "u", False), (2, "by update", True)]
    assert versions(deleted, "data") == [(1, "d", False)]


def test_a_historical_row_cannot_be_saved():
    example = ExampleFactory(data="v1")
    example.data = "v2"
    example.save()
    old = Example.all_versions.get(identity=example.identity, version=1)
    old.data = "rewrite"
    with pytest.raises(HistoricalVersionError):
        old.save()
    assert versions(example, "data") == [(1, "v1", False), (2, "v2", True)]


def test_bulk_created_objects_save_as_new_versions():
    created = Example.objects.bulk_create([Example(data=f"e{n}") for n in range(2)])
    for obj in created:
        obj.data += "!"
        obj.save()
    assert sorted(Example.objects.values_list("data", "version")) == [
        ("e0!", 2),
        ("e1!", 2),
    ]
    assert Example.all_versions.count() == 4
    assert_one_current_per_identity(Example)


def test_a_pickled_copy_saved_after_the_original_is_stale():
    import pickle

    example = ExampleFactory(data="v1")
    copy = pickle.loads(pickle.dumps(example))
    example.data = "original"
    example.save()
    copy.data = "copy"
    with pytest.raises(StaleVersionError):
        copy.save()
    assert versions(example, "data") == [(1, "v1", False), (2, "original", True)]


# Receivers ----------------------------------------------------------------------------


def test_a_post_save_receiver_that_saves_the_instance_again():
    def shout(sender, instance, created, **kwargs):
        if instance.data != instance.data.upper():
            instance.data = instance.data.upper()
            instance.save()

    post_save.connect(shout, sender=Example)
    try:
        example = Example.objects.create(data="a")
        example.data = "b"
        example.save()
    finally:
        post_save.disconnect(shout, sender=Example)
    assert versions(example, "data") == [
        (1, "a", False),
        (2, "A", False),
        (3, "b", False),
        (4, "B", True),
    ]
    assert (example.version, example.data) == (4, "B")
    assert example.pk == Example.objects.get().pk


def test_a_receiver_that_saves_back_the_previous_value_is_written():
    def refuse_b(sender, instance, created, **kwargs):
        if instance.data == "b":
            instance.data = "a"  # what the replaced version held
            instance.save()

    example = Example.objects.create(data="a")
    post_save.connect(refuse_b, sender=Example)
    try:
        example.data = "b"
        example.save()
    finally:
        post_save.disconnect(refuse_b, sender=Example)
    assert Example.objects.get().data == example.data == "a"


def test_a_post_save_receiver_saving_another_versioned_object():
    page = Page.objects.create(title="p")
    comment = page.comments.create(text="c")

    def touch_page(sender, instance, created, **kwargs):
        if not created:
            current = Page.objects.get(identity=instance.page.identity)
            current.title += "+"
            current.save()

    post_save.connect(touch_page, sender=Comment)
    try:
        comment.text = "c2"
        comment.save()
    finally:
        post_save.disconnect(touch_page, sender=Comment)
    assert versions(page, "title") == [(1, "p", False), (2, "p+", True)]
    current = Comment.objects.get()
    assert (current.text, current.page_id) == ("c2", Page.objects.get().pk)
    assert Comment.all_versions.count() == 2


def test_created_flag_of_post_save():
    heard = []

    def receiver(sender, instance, created, **kwargs):
        heard.append(created)

    post_save.connect(receiver, sender=Article)
    try:
        article = ArticleFactory(title="t", slug="s")
        article.title = "t2"
        article.save()
        article.save()  # no change: nothing written
    finally:
        post_save.disconnect(receiver, sender=Article)
    assert heard == [True, False]


# auto_now, db_default, generated columns ----------------------------------------------


def test_auto_now_and_auto_now_add_on_a_new_version():
    article = ArticleFactory(title="t", slug="s")
    first = Article.all_versions.get(identity=article.identity)
    article.title = "t2"
    article.save()
    old, new = Article.all_versions.filter(identity=article.identity).order_by(
        "version"
    )
    assert (old.created, old.modified) == (first.created, first.modified)
    assert new.created == first.created
    assert new.modified >= first.modified
    assert (article.created, article.modified) == (new.created, new.modified)


def test_db_default_and_generated_columns_carry_into_new_versions():
    article = Article.objects.create(title="t", slug="s")
    explicit = Article.objects.create(title="x", slug="x", rating=5)
    for obj, title in ((article, "longer"), (explicit, "xx")):
        obj.title = title
        obj.save()
    assert [
        (a.version, a.rating, a.title_length) for a in Article.objects.order_by("slug")
    ] == [
        (2, 3, 6),
        (2, 5, 2),
    ]
    assert (article.title_length, explicit.title_length) == (6, 2)


# Unique and check constraints on data columns -----------------------------------------


@pytest.mark.parametrize("model", ["article", "item"])
def test_a_taken_unique_value_is_an_integrity_error_and_nothing_changes(model):
    if model == "article":
        ArticleFactory(slug="taken")
        obj, field, free = ArticleFactory(slug="free"), "slug", "free"
    else:
        ItemFactory(name="taken")
        obj, field, free = ItemFactory(name="free"), "name", "free"
    model_class = type(obj)
    committed = stored_rows(model_class)
    before = bookkeeping(obj)
    setattr(obj, field, "taken")
    with pytest.raises(IntegrityError) as raised:
        obj.save()
    assert not isinstance(raised.value, StaleVersionError)
    assert stored_rows(model_class) == committed
    assert bookkeeping(obj) == before
    setattr(obj, field, "other")
    obj.save()
    assert versions(obj, field) == [(1, free, False), (2, "other", True)]
    assert_one_current_per_identity(model_class)


def test_a_check_constraint_violation_is_an_integrity_error_and_nothing_changes():
    article = ArticleFactory(counter=1)
    committed = stored_rows(Article)
    before = bookkeeping(article)
    article.counter = -1
    with pytest.raises(IntegrityError):
        article.save()
    assert stored_rows(Article) == committed
    assert bookkeeping(article) == before


# Copying an instance, Django's way ----------------------------------------------------


def test_copying_an_instance_the_django_way_makes_a_new_object():
    original = ExampleFactory(data="original")
    copy = Example.objects.get()
    copy.pk = None
    copy._state.adding = True
    copy.data = "copy"
    copy.save()
    assert copy.identity != original.identity
    assert versions(original, "data") == [(1, "original", True)]
    assert versions(copy, "data") == [(1, "copy", True)]


def test_force_update_on_a_changed_save_still_makes_a_version():
    example = ExampleFactory(data="v1")
    example.data = "v2"
    example.save(force_update=True)
    assert versions(example, "data") == [(1, "v1", False), (2, "v2", True)]


def test_the_one_statement_shape_on_postgresql():
    """Sanity: on PostgreSQL an Example save is the closing insert."""
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only")
    from django.test.utils import CaptureQueriesContext

    example = ExampleFactory(data="v1")
    example.data = "v2"
    with CaptureQueriesContext(connection) as captured:
        example.save()
    sql = [q["sql"] for q in captured.captured_queries]
    assert len(sql) == 1 and sql[0].startswith("WITH closed AS")
