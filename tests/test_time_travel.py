"""
Time travel through relations: an object read through as_of(t) remembers t,
and every relation followed from it answers as of t, found by identity; the
peers' classic scenarios are told as stories.
"""

import pytest
from django.db.models import Prefetch
from django.utils import timezone

from tests.conftest import saved
from tests.factories import ItemFactory, PlayerFactory, TeamFactory
from tests.testapp.models import (
    Bundle,
    Choice,
    Comment,
    Directory,
    Item,
    Order,
    OrderLine,
    Page,
    Place,
    Player,
    Poll,
    Restaurant,
    Team,
    Wine,
    WineDrinker,
)
from versioning.exceptions import HistoricalVersionError, VersioningError

pytestmark = pytest.mark.django_db


def names(objs, field="name"):
    return sorted(getattr(obj, field) for obj in objs)


def as_of(model, when, obj):
    """The version of ``obj`` (any version of it) that was current at ``when``."""
    return model.objects.as_of(when).get(identity=obj.identity)


# Each relation kind, followed from an as_of object ------------------------------


@pytest.fixture
def page_story():
    """A page with one comment at ``t``; afterwards the page and comment change."""
    page = Page.objects.create(title="draft")
    first = Comment.objects.create(page=page, text="first")
    t = timezone.now()
    saved(page, title="published")  # the comment's row is re-pointed in place
    saved(first, text="first, edited")
    Comment.objects.create(page=page, text="second")
    return page, first, t


def test_forward_key_gives_the_target_version_current_then(page_story):
    page, first, t = page_story
    comment_t = Comment.objects.as_of(t).get()
    assert comment_t.text == "first"
    assert comment_t.page.title == "draft"
    assert comment_t.page.version == 1


def test_forward_key_of_a_row_repointed_in_place_still_leads_to_then():
    page = Page.objects.create(title="draft")
    comment = Comment.objects.create(page=page, text="unchanged")
    t = timezone.now()
    saved(page, title="published")
    # The comment never changed: its only row now points at the new page row.
    assert Comment.all_versions.get().page_id == page.pk
    comment_t = Comment.objects.as_of(t).get()
    assert comment_t.pk == comment.pk
    assert comment_t.page.title == "draft"
    assert Comment.objects.get().page.title == "published"


def test_reverse_manager_gives_the_referrers_current_then(page_story):
    page, first, t = page_story
    page_t = Page.objects.as_of(t).get()
    assert [c.text for c in page_t.comments.all()] == ["first"]
    assert page_t.comments.count() == 1
    assert page_t.comments.filter(text="first").exists()
    assert not page_t.comments.filter(text="second").exists()
    # and now
    assert names(page.comments.all(), "text") == ["first, edited", "second"]


def test_objects_reached_from_an_as_of_object_stay_at_that_moment(page_story):
    page, first, t = page_story
    page_t = Page.objects.as_of(t).get()
    comment_t = page_t.comments.all()[0]
    assert comment_t.page.title == "draft"
    assert [c.text for c in comment_t.page.comments.all()] == ["first"]


def test_reverse_manager_leaves_out_other_owners_referrers(page_story):
    page, first, t = page_story
    other = Page.objects.create(title="other")
    Comment.objects.create(page=other, text="elsewhere")
    other_t = Page.objects.as_of(timezone.now()).get(identity=other.identity)
    assert [c.text for c in other_t.comments.all()] == ["elsewhere"]
    page_t = as_of(Page, t, page)
    assert [c.text for c in page_t.comments.all()] == ["first"]


@pytest.fixture
def cellar():
    """Ann drinks barolo and chianti, bob barolo; afterwards barolo is renamed."""
    barolo = Wine.objects.create(name="barolo")
    chianti = Wine.objects.create(name="chianti")
    ann = WineDrinker.objects.create(name="ann")
    ann.glasses.add(barolo, chianti)
    bob = WineDrinker.objects.create(name="bob")
    bob.glasses.add(barolo)
    t = timezone.now()
    saved(barolo, name="barolo riserva")  # links of current drinkers re-pointed
    saved(ann, name="anna")  # links copied to ann's new version
    return barolo, chianti, ann, bob, t


def test_many_to_many_forward_from_an_as_of_object(cellar):
    barolo, chianti, ann, bob, t = cellar
    assert names(as_of(WineDrinker, t, ann).glasses.all()) == ["barolo", "chianti"]
    # bob never changed: his only row's link now names barolo's new row
    bob_t = as_of(WineDrinker, t, bob)
    assert bob_t.pk == bob.pk
    assert names(bob_t.glasses.all()) == ["barolo"]
    # and now
    assert names(ann.glasses.all()) == ["barolo riserva", "chianti"]
    assert names(bob.glasses.all()) == ["barolo riserva"]


def test_many_to_many_reverse_from_an_as_of_object(cellar):
    barolo, chianti, ann, bob, t = cellar
    assert names(as_of(Wine, t, barolo).drinkers.all()) == ["ann", "bob"]
    assert names(as_of(Wine, t, chianti).drinkers.all()) == ["ann"]
    assert names(barolo.drinkers.all()) == ["anna", "bob"]


def test_wines_reached_from_an_as_of_drinker_stay_at_that_moment(cellar):
    barolo, chianti, ann, bob, t = cellar
    ann_t = as_of(WineDrinker, t, ann)
    barolo_t = ann_t.glasses.get(identity=barolo.identity)
    assert barolo_t.name == "barolo"
    assert names(barolo_t.drinkers.all()) == ["ann", "bob"]


def test_reverse_one_to_one_from_an_as_of_object():
    mill = Place.objects.create(name="old mill")
    restaurant = Restaurant.objects.create(place=mill, rating=3)
    field = Place.objects.create(name="field")
    t = timezone.now()
    saved(mill, name="new mill")
    saved(field, name="meadow")
    mill_t = as_of(Place, t, mill)
    assert mill_t.name == "old mill"
    assert mill_t.restaurant == restaurant
    field_t = as_of(Place, t, field)
    with pytest.raises(Place.restaurant.RelatedObjectDoesNotExist):
        field_t.restaurant  # noqa: B018
    assert not hasattr(field_t, "restaurant")


def test_a_plain_one_to_one_referrer_leads_back_to_the_as_of_object():
    # Django caches the owner on the object a reverse relation returns
    # (place.restaurant.place is place); from a place read as of t the way
    # back must not jump to the current version. select_related() agrees.
    mill = Place.objects.create(name="old mill")
    Restaurant.objects.create(place=mill)
    t = timezone.now()
    saved(mill, name="new mill")
    mill_t = Place.objects.as_of(t).select_related("restaurant").get()
    assert mill_t.restaurant.place.name == "old mill"
    assert as_of(Place, t, mill).restaurant.place.name == "old mill"


def test_plain_foreign_key_referrers_lead_back_to_the_as_of_object():
    # Likewise item.orders.all()[0].item is item in Django.
    lamp = ItemFactory(name="lamp", price=10)
    Order.objects.create(item=lamp)
    t = timezone.now()
    saved(lamp, price=12)
    assert as_of(Item, t, lamp).orders.all()[0].item.price == 10


def test_select_related_from_an_as_of_queryset(page_story, django_assert_num_queries):
    page, first, t = page_story
    with django_assert_num_queries(1):
        comment_t = Comment.objects.as_of(t).select_related("page").get()
        assert (comment_t.text, comment_t.page.title) == ("first", "draft")
    # the page read with it remembers the moment too
    assert [c.text for c in comment_t.page.comments.all()] == ["first"]


def test_select_related_reverse_one_to_one_from_an_as_of_queryset(
    django_assert_num_queries,
):
    mill = Place.objects.create(name="old mill")
    restaurant = Restaurant.objects.create(place=mill, rating=3)
    t = timezone.now()
    saved(mill, name="new mill")
    with django_assert_num_queries(1):
        mill_t = Place.objects.as_of(t).select_related("restaurant").get()
        assert (mill_t.name, mill_t.restaurant) == ("old mill", restaurant)


def test_prefetch_reverse_manager_from_an_as_of_queryset(
    page_story, django_assert_num_queries
):
    page, first, t = page_story
    other = Page.objects.create(title="other")
    Comment.objects.create(page=other, text="elsewhere")
    later = timezone.now()
    with django_assert_num_queries(2):
        pages = Page.objects.as_of(later).prefetch_related("comments")
        seen = {p.title: names(p.comments.all(), "text") for p in pages}
    assert seen == {"published": ["first, edited", "second"], "other": ["elsewhere"]}
    with django_assert_num_queries(2):
        (page_t,) = Page.objects.as_of(t).prefetch_related("comments")
        assert [c.text for c in page_t.comments.all()] == ["first"]
    # prefetched objects remember the moment
    assert page_t.comments.all()[0].page.title == "draft"


def test_prefetch_with_a_prefetch_object_from_an_as_of_queryset(
    page_story, django_assert_num_queries
):
    page, first, t = page_story
    comments_then = Comment.objects.as_of(t).filter(text__startswith="f")
    with django_assert_num_queries(2):
        (page_t,) = Page.objects.as_of(t).prefetch_related(
            Prefetch("comments", queryset=comments_then, to_attr="then")
        )
        assert [c.text for c in page_t.then] == ["first"]


def test_prefetch_many_to_many_from_an_as_of_queryset(
    cellar, django_assert_num_queries
):
    barolo, chianti, ann, bob, t = cellar
    with django_assert_num_queries(2):
        drinkers = WineDrinker.objects.as_of(t).prefetch_related("glasses")
        seen = {d.name: names(d.glasses.all()) for d in drinkers}
    assert seen == {"ann": ["barolo", "chianti"], "bob": ["barolo"]}
    with django_assert_num_queries(2):
        wines = Wine.objects.as_of(t).prefetch_related("drinkers")
        seen = {w.name: names(w.drinkers.all()) for w in wines}
    assert seen == {"barolo": ["ann", "bob"], "chianti": ["ann"]}


def test_prefetch_forward_key_from_an_as_of_queryset(
    page_story, django_assert_num_queries
):
    page, first, t = page_story
    other = Page.objects.create(title="other")
    Comment.objects.create(page=other, text="elsewhere")
    later = timezone.now()
    saved(other, title="other, renamed")
    # the key's targets, their identities, their versions at the moment
    with django_assert_num_queries(3):
        comments = Comment.objects.as_of(later).prefetch_related("page")
        seen = {c.text: c.page.title for c in comments}
    assert seen == {
        "first, edited": "published",
        "second": "published",
        "elsewhere": "other",
    }
    with django_assert_num_queries(3):
        (comment_t,) = Comment.objects.as_of(t).prefetch_related("page")
        assert comment_t.page.title == "draft"


def test_a_chain_of_two_hops_stays_at_the_moment():
    poll = Poll.objects.create(question="best pet?")
    cat = Choice.objects.create(poll=poll, choice="cat", votes=1)
    Choice.objects.create(poll=poll, choice="dog", votes=2)
    t = timezone.now()
    saved(poll, question="best pet ever?")
    saved(cat, votes=10)
    Choice.objects.create(poll=poll, choice="fish")

    cat_t = as_of(Choice, t, cat)
    assert cat_t.poll.question == "best pet?"
    assert {(c.choice, c.votes) for c in cat_t.poll.choices.all()} == {
        ("cat", 1),
        ("dog", 2),
    }
    assert {(c.choice, c.votes) for c in cat.poll.choices.all()} == {
        ("cat", 10),
        ("dog", 2),
        ("fish", 0),
    }


# as_of() on a related manager ----------------------------------------------------


def test_as_of_on_a_reverse_manager_stays_within_the_relation():
    red, blue = TeamFactory(name="red"), TeamFactory(name="blue")
    PlayerFactory(name="ann", team=red)
    PlayerFactory(name="bob", team=blue)
    t = timezone.now()
    saved(red, name="crimson")  # red is now another version than at t
    PlayerFactory(name="cy", team=red)

    assert names(red.player_set.as_of(t)) == ["ann"]
    assert names(blue.player_set.as_of(t)) == ["bob"]
    assert names(red.player_set.as_of(timezone.now())) == ["ann", "cy"]
    # from any version of the owner, chainable, and the players remember t
    red_v1 = Team.all_versions.get(identity=red.identity, version=1)
    assert names(red_v1.player_set.as_of(t)) == ["ann"]
    assert not red.player_set.as_of(t).filter(name="cy").exists()
    assert red.player_set.as_of(t).get().team.name == "red"


def test_as_of_on_many_to_many_managers_stays_within_the_relation(cellar):
    barolo, chianti, ann, bob, t = cellar
    assert names(barolo.drinkers.as_of(t)) == ["ann", "bob"]
    assert names(chianti.drinkers.as_of(t)) == ["ann"]
    assert names(ann.glasses.as_of(t)) == ["barolo", "chianti"]
    assert names(bob.glasses.as_of(t)) == ["barolo"]
    assert names(barolo.drinkers.as_of(timezone.now())) == ["anna", "bob"]


def test_as_of_on_a_manager_of_an_as_of_object_uses_the_moment_given(page_story):
    page, first, t = page_story
    page_t = as_of(Page, t, page)
    later = timezone.now()
    assert names(page_t.comments.as_of(later), "text") == ["first, edited", "second"]


def test_as_of_on_managers_of_a_plain_model_many_to_many():
    lamp = ItemFactory(name="lamp", price=10)
    bundle = Bundle.objects.create(name="bundle")
    bundle.items.add(lamp)
    t = timezone.now()
    saved(lamp, price=12)  # the bundle's link is re-pointed in place
    assert [i.price for i in bundle.items.as_of(t)] == [10]
    assert [i.price for i in bundle.items.all()] == [12]
    assert list(lamp.bundles.as_of(t)) == [bundle]
    assert list(as_of(Item, t, lamp).bundles.all()) == [bundle]


# Pinned keys ---------------------------------------------------------------------


def test_a_pinned_key_gives_its_pinned_version_also_from_an_as_of_object():
    lamp = ItemFactory(name="lamp", price=10)
    OrderLine.objects.create(item=lamp)
    t = timezone.now()
    saved(lamp, price=12)
    saved(lamp, price=15)

    # a line reached from the lamp as of t, lazily and prefetched
    reached = as_of(Item, t, lamp).order_lines.get()
    assert (reached.item.version, reached.item.price) == (1, 10)
    (lamp_t,) = Item.objects.as_of(t).prefetch_related("order_lines__item")
    assert [line.item.version for line in lamp_t.order_lines.all()] == [1]
    # and from the line itself, whatever happened to the lamp since
    assert OrderLine.objects.get().item.version == 1
    assert OrderLine.objects.select_related("item").get().item.price == 10


def test_reverse_of_a_pinned_key_gives_the_lines_pinned_to_that_version():
    # A pinned key names one version, in joins and from the current object
    # (lamp.order_lines); a version read as_of(t) must answer the same.
    lamp = ItemFactory(name="lamp", price=10)
    first_line = OrderLine.objects.create(item=lamp)
    t = timezone.now()
    saved(lamp, price=12)
    second_line = OrderLine.objects.create(item=lamp)
    later = timezone.now()
    saved(lamp, price=15)

    # The current row, read both ways, has no lines pinned to it.
    assert list(lamp.order_lines.all()) == []
    assert list(as_of(Item, timezone.now(), lamp).order_lines.all()) == []
    # Joins from as_of(t) match the exact version too.
    assert list(Item.objects.as_of(t).filter(order_lines=second_line)) == []
    assert list(as_of(Item, t, lamp).order_lines.all()) == [first_line]
    assert list(as_of(Item, later, lamp).order_lines.all()) == [second_line]


# The peers' classic scenarios ------------------------------------------------------


def rosters(when):
    """Each team as of ``when`` with its players then, seen from the team."""
    return {
        team.name: names(team.player_set.all()) for team in Team.objects.as_of(when)
    }


def teams_of_players(when):
    """Each player as of ``when`` with the name of their team then."""
    return {
        player.name: player.team.name if player.team else None
        for player in Player.objects.as_of(when)
    }


def test_cleanerversion_teams_and_players_over_time():
    tigers = Team.objects.create(name="tigers")
    lions = Team.objects.create(name="lions")
    ann = Player.objects.create(name="ann", team=tigers)
    bob = Player.objects.create(name="bob", team=tigers)
    cy = Player.objects.create(name="cy")
    t1 = timezone.now()

    saved(bob, team=lions)  # bob moves to the lions
    lions.player_set.add(cy)  # cy signs for the lions
    t2 = timezone.now()

    saved(tigers, name="sabre-tooth tigers")  # ann's row is re-pointed in place
    t3 = timezone.now()

    tigers.player_set.remove(ann.current_version())  # ann leaves
    saved(lions, captain=bob)
    t4 = timezone.now()

    saved(bob, name="robert")  # the lions' captain key is re-pointed in place
    t5 = timezone.now()

    assert rosters(t1) == {"tigers": ["ann", "bob"], "lions": []}
    assert teams_of_players(t1) == {"ann": "tigers", "bob": "tigers", "cy": None}
    assert rosters(t2) == {"tigers": ["ann"], "lions": ["bob", "cy"]}
    assert teams_of_players(t2) == {"ann": "tigers", "bob": "lions", "cy": "lions"}
    assert rosters(t3) == {"sabre-tooth tigers": ["ann"], "lions": ["bob", "cy"]}
    assert teams_of_players(t3) == {
        "ann": "sabre-tooth tigers",
        "bob": "lions",
        "cy": "lions",
    }
    assert rosters(t4) == {"sabre-tooth tigers": [], "lions": ["bob", "cy"]}
    assert teams_of_players(t4) == {"ann": None, "bob": "lions", "cy": "lions"}
    assert rosters(t5) == {"sabre-tooth tigers": [], "lions": ["cy", "robert"]}

    # The captain, both ways.
    assert as_of(Team, t3, lions).captain is None
    assert as_of(Team, t4, lions).captain.name == "bob"
    assert as_of(Team, t5, lions).captain.name == "robert"
    assert names(as_of(Player, t3, bob).captain_of.all()) == []
    assert names(as_of(Player, t4, bob).captain_of.all()) == ["lions"]
    # The same questions asked from the current objects.
    assert names(tigers.player_set.as_of(t1)) == ["ann", "bob"]
    assert names(lions.player_set.as_of(t1)) == []
    assert names(bob.captain_of.as_of(t4)) == ["lions"]
    assert names(tigers.player_set.all()) == []
    assert names(lions.player_set.all()) == ["cy", "robert"]


def path(directory):
    parts = []
    while directory is not None:
        parts.append(directory.name)
        directory = directory.parent
    return "/".join(reversed(parts))


def tree(when):
    """Each directory as of ``when``: its path then, and its children then."""
    return {
        path(directory): names(directory.children.all())
        for directory in Directory.objects.as_of(when)
    }


def test_cleanerversion_directory_tree_over_time():
    root = Directory.objects.create(name="root")
    docs = Directory.objects.create(name="docs", parent=root)
    photos = Directory.objects.create(name="photos", parent=root)
    year = Directory.objects.create(name="2024", parent=photos)
    t1 = timezone.now()

    saved(photos, name="pictures")  # 2024's row is re-pointed in place
    t2 = timezone.now()

    saved(year, parent=docs)  # 2024 moves into docs
    t3 = timezone.now()

    saved(root, name="home")  # the rows of docs and pictures are re-pointed
    saved(docs, parent=photos)  # docs moves into pictures
    t4 = timezone.now()

    assert tree(t1) == {
        "root": ["docs", "photos"],
        "root/docs": [],
        "root/photos": ["2024"],
        "root/photos/2024": [],
    }
    assert tree(t2) == {
        "root": ["docs", "pictures"],
        "root/docs": [],
        "root/pictures": ["2024"],
        "root/pictures/2024": [],
    }
    assert tree(t3) == {
        "root": ["docs", "pictures"],
        "root/docs": ["2024"],
        "root/docs/2024": [],
        "root/pictures": [],
    }
    assert tree(t4) == {
        "home": ["pictures"],
        "home/pictures": ["docs"],
        "home/pictures/docs": ["2024"],
        "home/pictures/docs/2024": [],
    }
    # From the current objects: the path now, and the children then.
    assert path(Directory.objects.get(name="2024")) == "home/pictures/docs/2024"
    assert names(photos.children.as_of(t1)) == ["2024"]
    assert names(root.children.as_of(t3)) == ["docs", "pictures"]
    assert names(root.children.all()) == ["pictures"]


def wine_lists(when):
    """Each drinker as of ``when`` and the wines they drank then."""
    return {
        drinker.name: names(drinker.glasses.all())
        for drinker in WineDrinker.objects.as_of(when)
    }


def drinkers_of_wines(when):
    """Each wine as of ``when`` and who drank it then."""
    return {wine.name: names(wine.drinkers.all()) for wine in Wine.objects.as_of(when)}


def test_cleanerversion_wine_drinkers_over_time():
    barolo = Wine.objects.create(name="barolo")
    chianti = Wine.objects.create(name="chianti")
    rioja = Wine.objects.create(name="rioja")
    ann = WineDrinker.objects.create(name="ann")
    ann.glasses.add(barolo, chianti)
    bob = WineDrinker.objects.create(name="bob")
    bob.glasses.add(barolo)
    t1 = timezone.now()

    # A drinker's new version copies its links; then the links change.
    saved(ann, name="annie")
    ann.glasses.remove(chianti)
    ann.glasses.add(rioja)
    saved(barolo, name="barolo riserva")  # current drinkers' links re-pointed
    t2 = timezone.now()

    saved(bob, name="robert")
    bob.glasses.add(chianti)
    saved(chianti, name="chianti classico")
    t3 = timezone.now()

    assert wine_lists(t1) == {"ann": ["barolo", "chianti"], "bob": ["barolo"]}
    assert drinkers_of_wines(t1) == {
        "barolo": ["ann", "bob"],
        "chianti": ["ann"],
        "rioja": [],
    }
    assert wine_lists(t2) == {
        "annie": ["barolo riserva", "rioja"],
        "bob": ["barolo riserva"],
    }
    assert drinkers_of_wines(t2) == {
        "barolo riserva": ["annie", "bob"],
        "chianti": [],
        "rioja": ["annie"],
    }
    assert wine_lists(t3) == {
        "annie": ["barolo riserva", "rioja"],
        "robert": ["barolo riserva", "chianti classico"],
    }
    assert drinkers_of_wines(t3) == {
        "barolo riserva": ["annie", "robert"],
        "chianti classico": ["robert"],
        "rioja": ["annie"],
    }
    # The same questions asked from the current objects.
    assert names(barolo.drinkers.as_of(t1)) == ["ann", "bob"]
    assert names(chianti.drinkers.as_of(t2)) == []
    assert names(ann.glasses.as_of(t1)) == ["barolo", "chianti"]
    assert names(bob.glasses.as_of(t2)) == ["barolo riserva"]
    assert names(chianti.drinkers.all()) == ["robert"]


def test_simple_history_poll_and_its_choices_over_time(django_assert_num_queries):
    poll = Poll.objects.create(question="what's up?")
    not_much = Choice.objects.create(poll=poll, choice="not much")
    sky = Choice.objects.create(poll=poll, choice="the sky")
    t1 = timezone.now()

    saved(not_much, votes=3)
    saved(sky, votes=1)
    t2 = timezone.now()

    saved(poll, question="what's new?")  # the choices' rows are re-pointed in place
    t3 = timezone.now()

    saved(sky, votes=5)
    t4 = timezone.now()

    def results(when):
        poll_then = Poll.objects.as_of(when).get()
        votes = {choice.choice: choice.votes for choice in poll_then.choices.all()}
        return poll_then.question, votes

    assert results(t1) == ("what's up?", {"not much": 0, "the sky": 0})
    assert results(t2) == ("what's up?", {"not much": 3, "the sky": 1})
    assert results(t3) == ("what's new?", {"not much": 3, "the sky": 1})
    assert results(t4) == ("what's new?", {"not much": 3, "the sky": 5})
    # Each choice as of t leads to the question asked then.
    assert as_of(Choice, t2, sky).poll.question == "what's up?"
    assert as_of(Choice, t3, sky).poll.question == "what's new?"
    # Prefetched, the same answers.
    with django_assert_num_queries(2):
        (poll_t2,) = Poll.objects.as_of(t2).prefetch_related("choices")
        votes = {choice.choice: choice.votes for choice in poll_t2.choices.all()}
    assert votes == {"not much": 3, "the sky": 1}
    # And now.
    assert {c.choice: c.votes for c in poll.choices.all()} == {
        "not much": 3,
        "the sky": 5,
    }


def test_simple_history_places_over_time():
    place = Place.objects.create(name="one")
    restaurant = Restaurant.objects.create(place=place, rating=3)
    t1 = timezone.now()

    saved(place, name="two")  # the restaurant follows the place
    t2 = timezone.now()

    saved(place, name="three")

    for when, name in [(t1, "one"), (t2, "two")]:
        place_then = Place.objects.as_of(when).get()
        assert place_then.name == name
        assert place_then.restaurant == restaurant
    # The place reached from the restaurant now is the current place.
    restaurant = Restaurant.objects.get()
    assert restaurant.place_id == place.pk
    assert (restaurant.place.name, restaurant.place.is_current) == ("three", True)
    assert Restaurant.objects.select_related("place").get().place.name == "three"
    assert not Restaurant.objects.filter(place__name="one").exists()


# Current objects -------------------------------------------------------------------


def test_relations_followed_from_current_objects_give_current_rows(
    page_story, cellar, django_assert_num_queries
):
    page, first, t = page_story
    barolo, chianti, ann, bob, _ = cellar

    comment = Comment.objects.get(identity=first.identity)
    assert comment.page.title == "published"
    assert names(Page.objects.get().comments.all(), "text") == [
        "first, edited",
        "second",
    ]
    assert Comment.objects.select_related("page").get(text="second").page.title == (
        "published"
    )
    with django_assert_num_queries(2):
        titles = {c.page.title for c in Comment.objects.prefetch_related("page")}
    assert titles == {"published"}
    with django_assert_num_queries(2):
        (current,) = Page.objects.prefetch_related("comments")
        assert names(current.comments.all(), "text") == ["first, edited", "second"]

    drinker = WineDrinker.objects.get(identity=ann.identity)
    assert names(drinker.glasses.all()) == ["barolo riserva", "chianti"]
    assert names(Wine.objects.get(identity=barolo.identity).drinkers.all()) == [
        "anna",
        "bob",
    ]
    seen = {
        d.name: names(d.glasses.all())
        for d in WineDrinker.objects.prefetch_related("glasses")
    }
    assert seen == {"anna": ["barolo riserva", "chianti"], "bob": ["barolo riserva"]}


def test_an_as_of_object_saved_as_a_new_version_follows_relations_as_current():
    page = Page.objects.create(title="draft")
    Comment.objects.create(page=page, text="first")
    t = timezone.now()
    saved(page, title="published")

    comment_t = Comment.objects.as_of(t).get()
    assert comment_t.is_current  # the comment's row is still the current one
    assert comment_t.page.title == "draft"
    saved(comment_t, text="edited")
    assert comment_t.version == 2
    assert comment_t.page.title == "published"
    assert Comment.objects.get().page_id == page.pk


def test_as_of_owners_saved_as_new_versions_follow_their_managers_as_current(cellar):
    barolo, chianti, ann, bob, t = cellar
    team = TeamFactory(name="red")
    PlayerFactory(name="ann", team=team)
    t_team = timezone.now()
    PlayerFactory(name="bob", team=team)

    team_t = as_of(Team, t_team, team)
    assert names(team_t.player_set.all()) == ["ann"]
    saved(team_t, name="crimson")
    assert names(team_t.player_set.all()) == ["ann", "bob"]

    bob_t = as_of(WineDrinker, t, bob)  # bob's row is current; barolo renamed since
    assert names(bob_t.glasses.all()) == ["barolo"]
    saved(bob_t, name="robert")
    assert names(bob_t.glasses.all()) == ["barolo riserva"]
    bob_t.glasses.add(chianti)
    assert names(bob_t.glasses.all()) == ["barolo riserva", "chianti"]


# Edges found by attacking the feature -------------------------------------------


@pytest.fixture
def renamed_page():
    """A page with two comments at ``t``; afterwards the page is renamed."""
    page = Page.objects.create(title="first")
    kept = Comment.objects.create(page=page, text="kept")
    Comment.objects.create(page=page, text="other")
    t = timezone.now()
    saved(page, title="second")  # both comment rows are re-pointed in place
    Comment.objects.create(page=page, text="late")
    return page, kept, t


def test_prefetched_referrers_know_their_as_of_owner(
    renamed_page, django_assert_num_queries
):
    _, _, t = renamed_page
    with django_assert_num_queries(2):
        pages = list(Page.objects.as_of(t).prefetch_related("comments"))
        titles = [c.page.title for p in pages for c in p.comments.all()]
    assert titles == ["first", "first"]


def test_an_as_of_prefetch_queryset_from_current_owners_is_matched_by_identity(
    renamed_page,
):
    page, _, t = renamed_page
    then = Prefetch("comments", queryset=Comment.objects.as_of(t), to_attr="then")
    [current] = Page.objects.prefetch_related(then)
    assert names(current.then, "text") == ["kept", "other"]
    [comment] = Comment.objects.filter(text="kept").prefetch_related(
        Prefetch("page", queryset=Page.objects.as_of(t))
    )
    assert comment.page.title == "first"


def test_an_as_of_prefetch_across_many_to_many_from_current_owners():
    barolo = Wine.objects.create(name="barolo")
    ann = WineDrinker.objects.create(name="ann")
    ann.glasses.add(barolo)
    t = timezone.now()
    saved(barolo, name="barolo riserva")
    saved(ann, name="anna")
    [drinker] = WineDrinker.objects.prefetch_related(
        Prefetch("glasses", queryset=Wine.objects.as_of(t), to_attr="then")
    )
    assert names(drinker.then) == ["barolo"]
    [wine] = Wine.objects.prefetch_related(
        Prefetch("drinkers", queryset=WineDrinker.objects.as_of(t), to_attr="then")
    )
    assert names(wine.then) == ["ann"]


def test_links_of_historical_declaring_versions_never_show_as_of_a_moment():
    barolo = Wine.objects.create(name="barolo")
    ann = WineDrinker.objects.create(name="ann")
    ann.glasses.add(barolo)
    saved(ann, name="anna")  # the old versions keep their own links
    now = timezone.now()
    wines = Wine.objects.as_of(now)
    assert list(wines.filter(drinkers__isnull=True)) == []
    assert len(wines.order_by("drinkers__name")) == 1
    assert list(wines.values_list("name", "drinkers__name")) == [("barolo", "anna")]


def test_nothing_is_created_through_a_historical_owner_or_as_of_queryset(
    renamed_page,
):
    _, _, t = renamed_page
    page_then = Page.objects.as_of(t).get()
    before = Comment.all_versions.count()
    with pytest.raises(HistoricalVersionError):
        page_then.comments.create(text="x")
    with pytest.raises(HistoricalVersionError):
        page_then.comments.get_or_create(text="y")
    with pytest.raises(HistoricalVersionError):
        Comment.objects.create(page=page_then, text="z")
    with pytest.raises(HistoricalVersionError):
        Comment.objects.as_of(t).create(page=page_then.current_version(), text="w")
    with pytest.raises(HistoricalVersionError):
        Comment.objects.as_of(t).get_or_create(text="never")
    assert Comment.all_versions.count() == before


def test_as_of_querysets_refuse_what_cannot_hold(renamed_page):
    page, _, t = renamed_page
    with pytest.raises(VersioningError, match="already as of"):
        Page.objects.as_of(t).as_of(timezone.now())
    with pytest.raises(VersioningError, match="cannot be locked"):
        Page.objects.as_of(t).select_for_update()
    with pytest.raises(ValueError, match="needs to be saved"):
        Page(title="unsaved").comments.as_of(t)


def test_in_bulk_by_identity(renamed_page):
    page, kept, t = renamed_page
    assert Page.objects.in_bulk([page.identity], field_name="identity") == {
        page.identity: page
    }
    then = Comment.objects.as_of(t).in_bulk([kept.identity], field_name="identity")
    assert then[kept.identity].page.title == "first"
