"""
restore() keeps the object graph whole: the restored data's keys name the
current versions of the objects they named, its many-to-many links too, and
a restore that cannot hold (a deleted target, a taken unique value) fails
with an error that names the problem and writes nothing.
"""

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.conftest import data_statements, saved
from tests.factories import ArticleFactory
from tests.testapp.models import Article, Comment, Page, Player, Team, Wine, WineDrinker
from versioning.exceptions import RestoreRefusedError

pytestmark = pytest.mark.django_db


def every_row(*models):
    return [
        sorted(model.all_versions.values_list(), key=lambda row: row[0])
        for model in models
    ]


def test_a_restored_key_names_the_current_version_of_its_target():
    page = Page.objects.create(title="first")
    comment = Comment.objects.create(page=page, text="v1")
    saved(comment, text="v2")
    saved(page, title="second")  # the comment's current row follows the page
    restored = comment.previous_version().restore()
    assert restored.text == "v1"
    assert restored.page_id == page.pk
    assert [c.text for c in page.comments.all()] == ["v1"]
    assert Comment.objects.filter(page__title="second").count() == 1


def test_a_restored_key_between_two_versioned_models_both_ways():
    team = Team.objects.create(name="red")
    player = Player.objects.create(name="ann", team=team)
    saved(team, captain=player)
    saved(player, name="anna")  # the team's captain key follows
    saved(team, name="reds")  # the player's team key follows
    restored = player.history().get(version=1).restore()
    assert (restored.name, restored.team_id) == ("ann", team.pk)


def test_restoring_a_version_whose_target_was_deleted_writes_nothing():
    team = Team.objects.create(name="red")
    player = Player.objects.create(name="ann", team=team)
    saved(player, team=None)
    team.delete()
    before = every_row(Team, Player)
    with pytest.raises(RestoreRefusedError, match="its team .* has been deleted") as e:
        player.history().get(version=1).restore()
    assert every_row(Team, Player) == before
    assert e.value.reason.startswith("its team (Team row ")


def test_restoring_into_a_taken_unique_value_names_the_field_and_writes_nothing():
    article = ArticleFactory(slug="mine")
    saved(article, slug="renamed")
    ArticleFactory(slug="mine")
    before = every_row(Article)
    with pytest.raises(ValidationError) as raised:
        article.history().get(version=1).restore()
    assert raised.value.message_dict == {
        "slug": ["Article with this Slug already exists."]
    }
    assert every_row(Article) == before


def test_restored_links_name_the_current_versions_of_their_targets():
    barolo = Wine.objects.create(name="barolo")
    ann = WineDrinker.objects.create(name="ann")
    ann.glasses.add(barolo)  # version 2 holds the link
    ann.glasses.clear()  # version 3 has none
    saved(barolo, vintage=2010)
    restored = ann.history().get(version=2).restore()
    assert list(restored.glasses.all()) == [barolo]
    assert list(barolo.drinkers.all()) == [restored]


def test_statements_of_a_restore_with_a_key():
    page = Page.objects.create(title="first")
    comment = Comment.objects.create(page=page, text="v1")
    saved(comment, text="v2")
    old = comment.previous_version()
    with CaptureQueriesContext(connection) as captured:
        old.restore()
    # lock the object's rows, close the current one, find the page's current
    # version, insert, check that the page it names is still current (it
    # follows a concurrent save of the page); nothing to re-point or copy.
    # PostgreSQL closes the current one in the insert.
    statements = data_statements(captured)
    assert len(statements) == (4 if connection.vendor == "postgresql" else 5)


def test_restoring_a_version_linked_to_an_object_deleted_since_writes_nothing():
    barolo = Wine.objects.create(name="barolo")
    ann = WineDrinker.objects.create(name="ann")
    ann.glasses.add(barolo)  # version 2 holds the link
    ann.glasses.clear()
    barolo.delete()
    before = every_row(Wine, WineDrinker)
    links_before = list(WineDrinker.glasses.through.objects.values_list())
    with pytest.raises(RestoreRefusedError, match="glasses link to Wine “barolo”"):
        ann.history().get(version=2).restore()
    assert every_row(Wine, WineDrinker) == before
    assert list(WineDrinker.glasses.through.objects.values_list()) == links_before
