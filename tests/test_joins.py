"""
Queries that cross a relation into a versioned model see the versions that
belong to the query: the current rows from ``objects`` and from plain models'
querysets, the rows current at ``t`` from ``as_of(t)``, every row from
``all_versions``, and the pinned row through a pinned key. Each test keeps an
old version around whose values would match if a join saw the wrong rows.
"""

import pickle
from types import SimpleNamespace

import pytest
from django.db import connection
from django.db.models import Count, Exists, F, OuterRef, Q, Subquery, Sum
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.conftest import edited
from tests.factories import (
    ItemFactory,
    OrderFactory,
    OrderLineFactory,
    ReviewFactory,
    TagFactory,
)
from tests.testapp.models import (
    Bundle,
    Choice,
    Club,
    Comment,
    Directory,
    Item,
    NonFan,
    Note,
    Order,
    OrderLine,
    Page,
    Place,
    Placement,
    Player,
    Poll,
    Restaurant,
    Shelf,
    Tag,
    Team,
    Wine,
    WineDrinker,
)
from versioning.exceptions import VersioningError

pytestmark = pytest.mark.django_db


def pks(queryset):
    """The pks of the rows returned, sorted; a row returned twice shows twice."""
    return sorted(obj.pk for obj in queryset)


def commented_page(*texts, title="page"):
    """A page and one comment whose text went through ``texts``, in order."""
    page = Page.objects.create(title=title)
    comment = Comment.objects.create(page=page, text=texts[0])
    edited(comment, "text", *texts[1:])
    return page, comment


def drinker_of(wine_name, *names):
    """A wine and one drinker of it whose name went through ``names``."""
    wine = Wine.objects.create(name=wine_name)
    drinker = WineDrinker.objects.create(name=names[0])
    drinker.glasses.add(wine)
    edited(drinker, "name", *names[1:])
    return wine, drinker


def normalized(sql):
    """SQL in lower case, without quoting, so SQLite and PostgreSQL compare."""
    return " ".join(sql.replace('"', "").replace("`", "").lower().split())


def page_history():
    """
    At ``at``, page "first" has comments "kept" and "old". After it: "old"
    becomes "new", the page becomes "second" (the current comment rows are
    re-pointed in place at the new page row, "kept" without a new version of
    its own), and a comment "late" is added.
    """
    page = Page.objects.create(title="first")
    kept = Comment.objects.create(page=page, text="kept")
    changed = Comment.objects.create(page=page, text="old")
    first_pk = page.pk
    at = timezone.now()
    edited(changed, "text", "new")
    edited(page, "title", "second")
    Comment.objects.create(page=page, text="late")
    kept.refresh_from_db()
    assert (kept.version, kept.page_id) == (1, page.pk)  # re-pointed in place
    return SimpleNamespace(page=page, first_pk=first_pk, at=at)


def wine_history():
    """
    At ``at``, drinker "ann" drinks "barolo". After it the wine becomes
    "barolo 2" (the current link is re-pointed) and the drinker "anna" (the
    drinker's links are copied to the new version).
    """
    wine, drinker = drinker_of("barolo", "ann")
    first_wine, first_drinker = wine.pk, drinker.pk
    at = timezone.now()
    edited(wine, "name", "barolo 2")
    edited(drinker, "name", "anna")
    return SimpleNamespace(first_wine=first_wine, first_drinker=first_drinker, at=at)


# From Model.objects -----------------------------------------------------------


def test_reverse_key_filter_never_matches_a_referrers_old_version():
    page, _ = commented_page("old", "new")
    assert pks(Page.objects.filter(comments__text="old")) == []
    assert pks(Page.objects.filter(comments__text="new")) == [page.pk]


def test_forward_key_filter_sees_the_targets_current_version():
    page, comment = commented_page("text", title="old title")
    edited(page, "title", "new title")
    assert pks(Comment.objects.filter(page__title="old title")) == []
    assert pks(Comment.objects.filter(page__title="new title")) == [comment.pk]


def test_a_path_forward_and_back_sees_current_rows_at_each_step():
    page, edited_comment = commented_page("old", "new")
    other = Comment.objects.create(page=page, text="other")
    assert pks(Comment.objects.filter(page__comments__text="old")) == []
    assert pks(Comment.objects.filter(page__comments__text="new")) == sorted(
        [edited_comment.pk, other.pk]
    )


def test_self_referencing_key_sees_where_a_child_is_now():
    left = Directory.objects.create(name="left")
    right = Directory.objects.create(name="right")
    child = Directory.objects.create(name="child", parent=left)
    edited(child, "parent", right)
    assert pks(Directory.objects.filter(children__isnull=False)) == [right.pk]
    assert pks(Directory.objects.filter(children__isnull=True)) == sorted(
        [left.pk, child.pk]
    )
    assert pks(Directory.objects.filter(children__name="child")) == [right.pk]
    assert pks(Directory.objects.filter(parent__name="left")) == []
    assert pks(Directory.objects.filter(parent__name="right")) == [child.pk]


def test_keys_both_ways_between_two_versioned_models_see_current_rows():
    team = Team.objects.create(name="red")
    player = Player.objects.create(name="pat", team=team)
    edited(team, "captain", player)
    edited(team, "name", "blue")  # the "red" version with a captain is history
    assert pks(Player.objects.filter(captain_of__name="red")) == []
    assert pks(Player.objects.filter(captain_of__name="blue")) == [player.pk]
    edited(player, "name", "sam")  # the "pat" version still names the team
    assert pks(Team.objects.filter(player__name="pat")) == []
    assert pks(Team.objects.filter(player__name="sam")) == [team.pk]
    assert pks(Team.objects.filter(captain__name="sam")) == [team.pk]


def test_many_to_many_between_versioned_models_sees_current_links_both_ways():
    wine, drinker = drinker_of("barolo", "ann", "anna")  # ann's links stay with ann
    assert pks(Wine.objects.filter(drinkers__name="ann")) == []
    assert pks(Wine.objects.filter(drinkers__name="anna")) == [wine.pk]
    edited(wine, "name", "barolo 2")  # anna's link is re-pointed
    assert pks(WineDrinker.objects.filter(glasses__name="barolo")) == []
    assert pks(WineDrinker.objects.filter(glasses__name="barolo 2")) == [drinker.pk]


def test_many_to_many_from_a_versioned_model_to_a_plain_one_sees_current_links():
    item = ItemFactory(name="old name")
    red = TagFactory(name="red")
    item.tags.add(red)
    edited(item, "name", "new name")  # the old version keeps its own link to red
    assert pks(Item.objects.filter(tags__name="red")) == [item.pk]
    assert pks(Tag.objects.filter(items__name="old name")) == []
    assert pks(Tag.objects.filter(items__name="new name")) == [red.pk]


def test_many_to_many_declared_on_a_plain_model_sees_current_rows():
    item = ItemFactory(name="old name")
    bundle = Bundle.objects.create(name="box")
    bundle.items.add(item)
    edited(item, "name", "new name")
    assert pks(Item.objects.filter(bundles__name="box")) == [item.pk]
    assert pks(Bundle.objects.filter(items__name="old name")) == []
    assert pks(Bundle.objects.filter(items__name="new name")) == [bundle.pk]


def test_reverse_isnull_counts_current_referrers_only():
    without, comment = commented_page("gone", title="without")
    comment.delete()
    with_history, _ = commented_page("v1", "v2", "v3", title="with")
    assert pks(Page.objects.filter(comments__isnull=True)) == [without.pk]
    assert pks(Page.objects.filter(comments__isnull=False)) == [with_history.pk]


def test_many_to_many_isnull_between_versioned_models_sees_current_links_only():
    wine, drinker = drinker_of("barolo", "ann", "anna")
    lonely = Wine.objects.create(name="lonely")
    drinker.glasses.remove(wine)  # ann's old version still holds a link
    assert pks(Wine.objects.filter(drinkers__isnull=True)) == sorted(
        [wine.pk, lonely.pk]
    )
    assert pks(Wine.objects.filter(drinkers__isnull=False)) == []


def test_many_to_many_isnull_to_a_plain_model_sees_current_links_only():
    item = ItemFactory(name="old name")
    red = TagFactory(name="red")
    item.tags.add(red)
    edited(item, "name", "new name")  # the old version keeps its own link to red
    blue = TagFactory(name="blue")
    item.tags.set([blue])
    assert pks(Tag.objects.filter(items__isnull=False)) == [blue.pk]
    assert pks(Tag.objects.filter(items__isnull=True)) == [red.pk]


def test_exclude_across_a_reverse_key_ignores_old_versions():
    renamed, _ = commented_page("old", "new", title="renamed")
    still_old, _ = commented_page("old", title="still old")
    assert pks(Page.objects.exclude(comments__text="old")) == [renamed.pk]
    assert pks(Page.objects.exclude(comments__text="new")) == [still_old.pk]


def test_exclude_across_many_to_many_ignores_old_versions():
    wine, _ = drinker_of("barolo", "ann", "anna")
    assert pks(Wine.objects.exclude(drinkers__name="ann")) == [wine.pk]
    assert pks(Wine.objects.exclude(drinkers__name="anna")) == []


def test_q_objects_ored_across_relations_ignore_old_versions():
    commented_page("old", "new", title="edited")
    plain = Page.objects.create(title="plain")
    assert pks(Page.objects.filter(Q(comments__text="old") | Q(title="plain"))) == [
        plain.pk
    ]
    reviewed = ReviewFactory(text="old").item
    edited(reviewed.reviews.get(), "text", "new")
    tagged = ItemFactory()
    tagged.tags.add(TagFactory(name="red"))
    either = Q(reviews__text="old") | Q(tags__name="red")
    assert pks(Item.objects.filter(either)) == [tagged.pk]


def test_annotated_count_counts_current_referrers_once():
    page, _ = commented_page("v1", "v2", "v3")
    Comment.objects.create(page=page, text="second")
    assert Page.objects.annotate(n=Count("comments")).get().n == 2


def test_annotated_count_across_many_to_many_counts_current_links_once():
    drinker_of("barolo", "ann", "anna")  # ann's old version keeps its link
    item = ItemFactory(name="old name")
    item.tags.add(TagFactory(name="red"))
    edited(item, "name", "new name")  # so does the item's
    assert Wine.objects.annotate(n=Count("drinkers")).get().n == 1
    assert Tag.objects.annotate(n=Count("items")).get().n == 1


def test_values_of_a_many_to_many_key_list_current_partners_only():
    wine, drinker = drinker_of("barolo", "ann", "anna")
    assert list(Wine.objects.values_list("drinkers", flat=True)) == [drinker.pk]


def test_aggregate_sums_current_referrers_only():
    poll = Poll.objects.create(question="why?")
    edited(Choice.objects.create(poll=poll, choice="because", votes=1), "votes", 5)
    Choice.objects.create(poll=poll, choice="why not", votes=2)
    assert Poll.objects.aggregate(total=Sum("choices__votes")) == {"total": 7}
    commented_page("v1", "v2")
    assert Page.objects.aggregate(n=Count("comments")) == {"n": 1}


def test_order_by_across_a_relation_sees_current_rows_once():
    late, _ = commented_page("a (old)", "z (new)", title="late")
    early, _ = commented_page("m", title="early")
    ordered = Page.objects.order_by("comments__text")
    assert [page.pk for page in ordered] == [early.pk, late.pk]


def test_values_across_relations_see_current_rows():
    page, _ = commented_page("old", "new", title="title")
    assert list(Page.objects.values_list("title", "comments__text")) == [
        ("title", "new")
    ]
    review = ReviewFactory(text="old", item=ItemFactory(name="lamp"))
    edited(review, "text", "new")
    assert list(Item.objects.values("name", "reviews__text")) == [
        {"name": "lamp", "reviews__text": "new"}
    ]
    edited(page, "title", "retitled")
    assert list(Comment.objects.values_list("text", "page__title")) == [
        ("new", "retitled")
    ]


def test_exists_across_relations_ignores_old_versions():
    commented_page("old", "new")
    assert not Page.objects.filter(comments__text="old").exists()
    assert Page.objects.filter(comments__text="new").exists()


def test_count_never_counts_a_page_twice_because_its_comment_has_history():
    commented_page("draft 1", "draft 2", "draft 3")
    assert Page.objects.filter(comments__text__startswith="draft").count() == 1
    assert Page.objects.filter(comments__isnull=False).count() == 1
    assert Page.objects.filter(comments__text="draft 1").count() == 0


def test_subquery_with_outer_ref_across_relations_sees_current_rows():
    review = ReviewFactory(text="a draft")
    edited(review, "text", "b final")
    bundle = Bundle.objects.create(name="box")
    bundle.items.add(review.item)
    first_text = (
        Item.objects.filter(bundles=OuterRef("pk"))
        .order_by("reviews__text")
        .values("reviews__text")[:1]
    )
    drafted = Item.objects.filter(bundles=OuterRef("pk"), reviews__text="a draft")
    annotated = Bundle.objects.annotate(
        text=Subquery(first_text), drafted=Exists(drafted)
    ).get()
    assert (annotated.text, annotated.drafted) == ("b final", False)


def test_in_subquery_across_a_relation_sees_current_rows():
    review = ReviewFactory(text="old")
    edited(review, "text", "new")
    bundle = Bundle.objects.create(name="box")
    bundle.items.add(review.item)
    old = Item.objects.filter(reviews__text="old")
    new = Item.objects.filter(reviews__text="new")
    assert pks(Bundle.objects.filter(items__in=old)) == []
    assert pks(Bundle.objects.filter(items__in=new)) == [bundle.pk]


def test_select_related_forward_brings_the_current_target(django_assert_num_queries):
    page, _ = commented_page("text", title="old title")
    edited(page, "title", "new title")
    place = Place.objects.create(name="old place")
    Restaurant.objects.create(place=place)
    edited(place, "name", "new place")
    with django_assert_num_queries(2):
        comments = list(Comment.objects.select_related("page"))
        restaurants = list(Restaurant.objects.select_related("place"))
    assert [comment.page.title for comment in comments] == ["new title"]
    assert [restaurant.place.name for restaurant in restaurants] == ["new place"]


def test_prefetch_related_reverse_and_many_to_many_see_current_rows():
    page, _ = commented_page("old", "new")
    Comment.objects.create(page=page, text="other")
    wine, _ = drinker_of("barolo", "ann", "anna")
    item = ItemFactory(name="old name")
    item.tags.add(TagFactory(name="red"))
    edited(item, "name", "new name")

    [prefetched] = Page.objects.prefetch_related("comments")
    assert sorted(c.text for c in prefetched.comments.all()) == ["new", "other"]
    [prefetched] = Wine.objects.prefetch_related("drinkers")
    assert [d.name for d in prefetched.drinkers.all()] == ["anna"]
    [prefetched] = Tag.objects.prefetch_related("items")
    assert [i.name for i in prefetched.items.all()] == ["new name"]
    [prefetched] = WineDrinker.objects.prefetch_related("glasses")
    assert [w.name for w in prefetched.glasses.all()] == ["barolo"]


def test_f_across_a_relation_in_annotate_sees_current_rows():
    page, _ = commented_page("old", "new", title="old title")
    annotated = Page.objects.annotate(comment_text=F("comments__text"))
    assert list(annotated.values_list("comment_text", flat=True)) == ["new"]
    edited(page, "title", "new title")
    annotated = Comment.objects.annotate(page_title=F("page__title"))
    assert list(annotated.values_list("page_title", flat=True)) == ["new title"]


# From a plain model's queryset ------------------------------------------------


def test_plain_referrer_filter_sees_the_items_current_rows():
    order = OrderFactory(item=ItemFactory(name="old name"))
    review = ReviewFactory(item=order.item, text="old")
    edited(Item.objects.get(), "name", "new name")
    edited(review, "text", "new")  # the "old" version names the current item
    assert pks(Order.objects.filter(item__name="old name")) == []
    assert pks(Order.objects.filter(item__name="new name")) == [order.pk]
    assert pks(Order.objects.filter(item__reviews__text="old")) == []
    assert pks(Order.objects.filter(item__reviews__text="new")) == [order.pk]


def test_plain_many_to_many_filter_sees_the_items_current_rows():
    item = ItemFactory(name="old name")
    review = ReviewFactory(item=item, text="old")
    bundle = Bundle.objects.create(name="box")
    bundle.items.add(item)
    edited(item, "name", "new name")
    edited(review, "text", "new")  # the "old" version names the current item
    assert pks(Bundle.objects.filter(items__name="old name")) == []
    assert pks(Bundle.objects.filter(items__name="new name")) == [bundle.pk]
    assert pks(Bundle.objects.filter(items__reviews__text="old")) == []
    assert pks(Bundle.objects.filter(items__reviews__text="new")) == [bundle.pk]


def test_plain_one_to_one_filter_sees_the_places_current_row():
    restaurant = Restaurant.objects.create(place=Place.objects.create(name="old"))
    place = edited(Place.objects.get(), "name", "new")
    assert pks(Restaurant.objects.filter(place__name="old")) == []
    assert pks(Restaurant.objects.filter(place__name="new")) == [restaurant.pk]
    assert pks(Place.objects.filter(restaurant__isnull=False)) == [place.pk]


def test_plain_target_of_a_versioned_many_to_many_sees_current_links():
    item = ItemFactory(name="old name")
    red = TagFactory(name="red")
    item.tags.add(red)
    edited(item, "name", "new name")
    assert pks(Tag.objects.filter(items__name="old name")) == []
    assert pks(Tag.objects.filter(items__name="new name")) == [red.pk]
    assert pks(Tag.objects.filter(items__name__startswith="new")) == [red.pk]


# From as_of(t) ----------------------------------------------------------------


def test_as_of_reverse_filter_sees_the_comments_current_then():
    history = page_history()
    then = Page.objects.as_of(history.at)
    assert pks(then.filter(comments__text="old")) == [history.first_pk]
    assert pks(then.filter(comments__text="new")) == []
    assert pks(then.filter(comments__text="late")) == []


def test_as_of_reverse_filter_finds_a_referrer_repointed_in_place_later():
    history = page_history()
    then = Page.objects.as_of(history.at)
    assert pks(then.filter(comments__text="kept")) == [history.first_pk]


def test_as_of_forward_filter_and_select_related_give_the_target_then(
    django_assert_num_queries,
):
    history = page_history()
    then = Comment.objects.as_of(history.at)
    with django_assert_num_queries(1):
        titles = {c.text: c.page.title for c in then.select_related("page")}
    assert titles == {"kept": "first", "old": "first"}
    assert sorted(then.filter(page__title="first").values_list("text", flat=True)) == [
        "kept",
        "old",
    ]
    assert not then.filter(page__title="second").exists()


def test_as_of_exclude_across_a_reverse_key_sees_the_comments_current_then():
    history = page_history()
    then = Page.objects.as_of(history.at)
    assert pks(then.exclude(comments__text="new")) == [history.first_pk]
    assert pks(then.exclude(comments__text="kept")) == []
    assert pks(then.exclude(comments__text="old")) == []


def test_as_of_annotate_count_and_values_see_the_comments_current_then():
    history = page_history()
    then = Page.objects.as_of(history.at)
    assert then.annotate(n=Count("comments")).get().n == 2
    assert sorted(then.values_list("title", "comments__text")) == [
        ("first", "kept"),
        ("first", "old"),
    ]
    # one row per comment current then: "kept" and "old", not "new" or "late"
    assert then.filter(comments__isnull=False).count() == 2


def test_as_of_many_to_many_between_versioned_models_sees_the_links_then():
    history = wine_history()
    drinkers_then = WineDrinker.objects.as_of(history.at)
    wines_then = Wine.objects.as_of(history.at)
    assert pks(drinkers_then.filter(glasses__name="barolo")) == [history.first_drinker]
    assert pks(drinkers_then.filter(glasses__name="barolo 2")) == []
    assert pks(drinkers_then.exclude(glasses__name="barolo")) == []
    assert pks(wines_then.filter(drinkers__name="ann")) == [history.first_wine]
    assert pks(wines_then.filter(drinkers__name="anna")) == []
    assert pks(wines_then.exclude(drinkers__name="anna")) == [history.first_wine]
    assert list(drinkers_then.values_list("name", "glasses__name")) == [
        ("ann", "barolo")
    ]


def test_as_of_annotated_count_across_many_to_many_counts_the_links_then():
    history = wine_history()
    assert Wine.objects.as_of(history.at).annotate(n=Count("drinkers")).get().n == 1


def test_as_of_many_to_many_with_plain_models_sees_the_links_then():
    item = ItemFactory(name="old name")
    item.tags.add(TagFactory(name="red"))  # a new version with the link
    first_pk = item.pk
    bundle = Bundle.objects.create(name="box")
    bundle.items.add(item)
    at = timezone.now()
    edited(item, "name", "new name")  # the bundle's link is re-pointed in place
    item.tags.set([TagFactory(name="blue")])
    then = Item.objects.as_of(at)
    assert pks(then.filter(tags__name="red")) == [first_pk]
    assert pks(then.filter(tags__name="blue")) == []
    assert pks(then.filter(bundles__name="box")) == [first_pk]
    assert pks(then.exclude(tags__name="red")) == []


def test_as_of_reverse_filter_follows_a_repointed_plain_referrer():
    order = OrderFactory(item=ItemFactory(name="old name"), quantity=3)
    first_pk = order.item_id
    at = timezone.now()
    edited(Item.objects.get(), "name", "new name")
    assert Order.objects.get().item_id != first_pk
    assert pks(Item.objects.as_of(at).filter(orders__quantity=3)) == [first_pk]


# From all_versions ------------------------------------------------------------


def test_all_versions_joins_see_every_row():
    page, _ = commented_page("old", "new")
    assert pks(Page.all_versions.filter(comments__text="old")) == [page.pk]
    assert Page.all_versions.annotate(n=Count("comments")).get().n == 2
    wine, _ = drinker_of("barolo", "ann", "anna")
    assert pks(Wine.all_versions.filter(drinkers__name="ann")) == [wine.pk]


# Pinned keys ------------------------------------------------------------------


def test_pinned_key_join_matches_the_pinned_version():
    line = OrderLineFactory(item=ItemFactory(name="old name"))
    edited(Item.objects.get(), "name", "new name")
    assert pks(OrderLine.objects.filter(item__name="old name")) == [line.pk]
    assert pks(OrderLine.objects.filter(item__name="new name")) == []
    lines = OrderLine.objects.select_related("item")
    assert [line.item.name for line in lines] == ["old name"]


# Deleted objects --------------------------------------------------------------


def test_a_deleted_referrer_is_gone_from_joins():
    page, comment = commented_page("text")
    comment.delete()
    assert pks(Page.objects.filter(comments__text="text")) == []
    assert pks(Page.objects.filter(comments__isnull=True)) == [page.pk]
    assert Page.objects.annotate(n=Count("comments")).get().n == 0
    assert list(Page.objects.values_list("comments__text", flat=True)) == [None]


def test_a_key_to_a_deleted_object_still_names_its_last_row_and_no_row_is_lost():
    # A DO_NOTHING key keeps naming a deleted object's last row. Following it
    # forward gives that row, as `non_fan.club` does: select_related() and
    # order_by() never drop the referrer.
    club = Club.objects.create(name="rovers")
    non_fan = NonFan.objects.create(name="ned", club=club)
    club.delete()
    assert pks(NonFan.objects.select_related("club")) == [non_fan.pk]
    assert pks(NonFan.objects.order_by("club__name")) == [non_fan.pk]
    assert NonFan.objects.select_related("club").get().club.pk == club.pk


def test_a_deleted_many_to_many_partner_is_gone_from_joins():
    wine, _ = drinker_of("barolo", "ann")
    wine.delete()
    assert pks(WineDrinker.objects.filter(glasses__name="barolo")) == []
    _, leaving = drinker_of("chianti", "bob")
    leaving.delete()
    assert pks(Wine.objects.filter(drinkers__name="bob")) == []
    assert list(Wine.objects.values_list("drinkers__name", flat=True)) == [None]


def test_a_deleted_many_to_many_partner_counts_as_no_partner():
    wine, drinker = drinker_of("barolo", "ann")
    wine.delete()
    assert pks(WineDrinker.objects.filter(glasses__isnull=True)) == [drinker.pk]
    assert WineDrinker.objects.annotate(n=Count("glasses")).get().n == 0


def test_a_deleted_item_is_gone_from_plain_querysets():
    item = ItemFactory(name="gone")
    red = TagFactory(name="red")
    item.tags.add(red)
    bundle = Bundle.objects.create(name="box")
    bundle.items.add(item)
    item.delete()
    assert pks(Bundle.objects.filter(items__name="gone")) == []
    assert pks(Tag.objects.filter(items__name="gone")) == []
    assert list(Bundle.objects.values_list("items__name", flat=True)) == [None]


def test_a_deleted_item_counts_as_no_item_for_plain_querysets():
    item = ItemFactory(name="gone")
    bundle = Bundle.objects.create(name="box")
    bundle.items.add(item)
    item.delete()
    assert pks(Bundle.objects.filter(items__isnull=True)) == [bundle.pk]
    assert Bundle.objects.annotate(n=Count("items")).get().n == 0


# The SQL ----------------------------------------------------------------------


def test_a_current_row_lookup_is_one_query_without_a_join():
    page = Page.objects.create(title="page")
    with CaptureQueriesContext(connection) as captured:
        Page.objects.get(identity=page.identity)
    assert len(captured) == 1
    assert " join " not in normalized(captured[0]["sql"])


def test_a_join_keeps_the_current_rows_in_its_on_clause():
    commented_page("x")
    with CaptureQueriesContext(connection) as captured:
        list(Page.objects.filter(comments__text="x"))
    assert len(captured) == 1
    sql = normalized(captured[0]["sql"])
    assert sql.count(" join ") == 1
    on_clause = sql.split(" join testapp_comment on ", 1)[1].split(" where ", 1)[0]
    assert "testapp_comment.valid_to is null" in on_clause


def test_a_query_without_versioned_models_is_unchanged():
    shelf = Shelf.objects.create(name="top")
    with CaptureQueriesContext(connection) as captured:
        assert not Note.objects.filter(content_type__model="shelf").exists()
        assert list(Placement.objects.filter(shelf__name="top")) == []
        assert list(Tag.objects.filter(name=shelf.name)) == []
    assert len(captured) == 3
    sql = [normalized(query["sql"]) for query in captured]
    assert [" join " in statement for statement in sql] == [True, True, False]
    assert not any("valid_to" in statement for statement in sql)


# Pickling ---------------------------------------------------------------------


def unpickled(queryset):
    """A fresh queryset on ``queryset``'s query, sent through pickle."""
    restored = queryset.model.objects.all()
    restored.query = pickle.loads(pickle.dumps(queryset.query))
    return restored


def test_querysets_with_joins_survive_pickling():
    history = page_history()
    current = Page.objects.filter(comments__text="new")
    then = Page.objects.as_of(history.at).filter(comments__text="kept")
    every = Page.all_versions.filter(comments__text="old")
    for queryset, expected in [
        (current, [history.page.pk]),
        (then, [history.first_pk]),
        (every, [history.first_pk]),
    ]:
        assert pks(unpickled(queryset)) == expected
        assert pks(pickle.loads(pickle.dumps(queryset)).all()) == expected
    old = Page.objects.filter(comments__text="old")
    assert pks(unpickled(old)) == []
    new_then = Page.objects.as_of(history.at).filter(comments__text="new")
    assert pks(unpickled(new_then)) == []


# Querysets of different moments ---------------------------------------------------


def test_querysets_of_different_moments_are_not_combined():
    history = page_history()
    now = Page.objects.filter(comments__text="new")
    then = Page.objects.as_of(history.at).filter(comments__text="old")
    for combine in (
        lambda: now | then,
        lambda: then & now,
        lambda: then.union(now),
        lambda: now.intersection(then),
        lambda: Page.all_versions.difference(now),
    ):
        with pytest.raises(VersioningError, match="read the same versions"):
            combine()
    same = then | Page.objects.as_of(history.at).filter(title="none")
    assert pks(same) == pks(then)
