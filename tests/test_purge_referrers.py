"""
purge() really deletes rows, so a versioned referrer's key to them cannot stay.
A key whose on_delete gives it another target (SET(...), SET_DEFAULT) is set in
place on a current row; a historical row naming a purged row would have to be
rewritten, so the purge is refused and nothing changes. SET_NULL clears the key
on every version, history included, as documented.
"""

import io

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, models
from django.test.utils import CaptureQueriesContext

from tests.testapp.models import (
    City,
    Club,
    Fan,
    RabidFan,
    Sponsor,
    Stadium,
)
from versioning.exceptions import HistoricalVersionError

pytestmark = pytest.mark.django_db

#: Versioned referrers whose on_delete gives the key another target.
RETARGETING = {"SET(...)": Fan, "SET_DEFAULT": Sponsor}

PURGES = {
    "obj.purge()": lambda club: club.purge(),
    "all_versions.filter().purge()": lambda club: Club.all_versions.filter(
        identity=club.identity
    ).purge(),
}


@pytest.fixture
def free_agents():
    return Club.objects.create(name="free agents")


@pytest.fixture
def rovers(free_agents):
    rovers = Club.objects.create(name="rovers")
    rovers.name = "Rovers"
    rovers.save()  # two versions, both purged
    return Club.objects.get(identity=rovers.identity)


def rows(model):
    return list(
        model.all_versions.order_by("pk").values_list(
            "pk", "identity", "version", "club_id", "valid_from", "valid_to"
        )
    )


def run(*args, **options):
    out = io.StringIO()
    call_command(*args, stdout=out, **options)
    return out.getvalue()


def left_the_club(model, rovers):
    """A referrer whose history names the club; its current version does not."""
    referrer = model.objects.create(name="ann", club=rovers)
    referrer.club = Club.objects.create(name="united")
    referrer.save()
    return referrer


def joined_the_club(model, rovers):
    """A referrer whose current version names the club; its history does not."""
    referrer = model.objects.create(name="bob", club=Club.objects.create(name="city"))
    referrer.club = rovers
    referrer.save()
    return referrer


# History names the purged object: refused ---------------------------------------


@pytest.mark.parametrize("purge", PURGES.values(), ids=PURGES.keys())
@pytest.mark.parametrize("model", RETARGETING.values(), ids=RETARGETING.keys())
def test_a_purge_that_would_rewrite_history_is_refused(model, purge, rovers):
    left_the_club(model, rovers)
    before = rows(model)
    with pytest.raises(HistoricalVersionError) as refused:
        purge(rovers)
    message = str(refused.value)
    assert f"historical version(s) of {model._meta.label}" in message
    assert f"{model.__name__}.club" in message and "PROTECT or SET_NULL" in message
    assert rows(model) == before
    assert Club.all_versions.filter(identity=rovers.identity).count() == 2


@pytest.mark.parametrize("model", RETARGETING.values(), ids=RETARGETING.keys())
def test_history_and_current_version_naming_it_refuse_too(model, rovers):
    referrer = model.objects.create(name="ann", club=rovers)
    referrer.name = "Ann"
    referrer.save()
    before = rows(model)
    with pytest.raises(HistoricalVersionError):
        rovers.purge()
    assert rows(model) == before
    assert Club.all_versions.filter(identity=rovers.identity).count() == 2


# Only a current version names it: the key is set in place -------------------------


@pytest.mark.parametrize("purge", PURGES.values(), ids=PURGES.keys())
@pytest.mark.parametrize("model", RETARGETING.values(), ids=RETARGETING.keys())
def test_a_current_referrer_follows_its_on_delete_in_place(
    model, purge, rovers, free_agents
):
    referrer = joined_the_club(model, rovers)
    before = rows(model)
    assert purge(rovers) == (2, {"testapp.Club": 2})
    assert not Club.all_versions.filter(identity=rovers.identity).exists()
    # No new version: the one it would close would name a row that is gone.
    current = model.objects.get(identity=referrer.identity)
    assert (current.pk, current.version, current.club_id) == (
        referrer.pk,
        2,
        free_agents.pk,
    )
    after = rows(model)
    assert after[0] == before[0]  # history untouched
    assert after[1] == (*before[1][:3], free_agents.pk, *before[1][4:])


def test_a_set_value_key_is_set_in_place_or_refused_too(
    rovers, free_agents, monkeypatch
):
    # SET(value) reaches the referrers by Django's other path, a lazy update().
    key = Fan._meta.get_field("club")
    monkeypatch.setattr(key.remote_field, "on_delete", models.SET(free_agents.pk))
    wanderers = Club.objects.create(name="wanderers")
    left_the_club(Fan, wanderers)
    before = rows(Fan)
    with pytest.raises(HistoricalVersionError, match=r"on_delete=SET\(\.\.\.\)"):
        wanderers.purge()
    assert rows(Fan) == before
    fan = joined_the_club(Fan, rovers)
    rovers.purge()
    current = Fan.objects.get(identity=fan.identity)
    assert (current.pk, current.version, current.club_id) == (fan.pk, 2, free_agents.pk)


def test_setting_a_current_referrer_is_one_check_and_one_update(rovers):
    joined_the_club(Fan, rovers)
    with CaptureQueriesContext(connection) as captured:
        rovers.purge()
    fan_table = Fan._meta.db_table
    on_fans = [
        query["sql"].split()[0]
        for query in captured.captured_queries
        if fan_table in query["sql"].split(" WHERE ")[0]
    ]
    # Django's select of the referrers, the check of their history, the update.
    assert on_fans == ["SELECT", "SELECT", "UPDATE"]


def test_rows_the_purge_deletes_as_well_do_not_refuse_it(monkeypatch, free_agents):
    springfield = City.objects.create(name="springfield")
    rovers = Club.objects.create(name="rovers", city=springfield)
    stadium = Stadium.objects.create(name="old ground", city=springfield, club=rovers)
    stadium.name = "new ground"
    stadium.save()  # its history names the club too
    key = Stadium._meta.get_field("club")
    hand_over = models.SET(lambda: free_agents.pk)
    monkeypatch.setattr(key.remote_field, "on_delete", hand_over)
    springfield.purge()  # the city's CASCADE deletes every version of both
    assert not Stadium.all_versions.exists()
    assert list(Club.all_versions.all()) == [free_agents]


def test_set_null_still_clears_the_key_on_every_version(rovers):
    fan = RabidFan.objects.create(name="rex", club=rovers)
    fan.name = "Rex"
    fan.save()
    rovers.purge()
    assert list(
        RabidFan.all_versions.order_by("version").values_list("version", "club_id")
    ) == [(1, None), (2, None)]


# manage.py purge ---------------------------------------------------------------------


@pytest.mark.parametrize("model", RETARGETING.values(), ids=RETARGETING.keys())
def test_the_command_refuses_in_one_line_and_deletes_nothing(
    model, rovers, monkeypatch
):
    left_the_club(model, rovers)
    before = rows(model)

    def no_question(prompt):
        raise AssertionError("a refused purge asks nothing")

    monkeypatch.setattr("builtins.input", no_question)
    with pytest.raises(CommandError) as refused:
        run("purge", "testapp.Club", str(rovers.identity))
    message = str(refused.value)
    assert message.startswith("Cannot purge: ") and "\n" not in message
    assert f"{model.__name__}.club" in message
    assert message.endswith("Nothing was deleted.")
    assert rows(model) == before
    assert Club.all_versions.filter(identity=rovers.identity).count() == 2


@pytest.mark.parametrize("model", RETARGETING.values(), ids=RETARGETING.keys())
def test_the_dry_run_says_the_purge_would_be_refused(model, rovers):
    left_the_club(model, rovers)
    out = io.StringIO()
    with pytest.raises(CommandError, match=f"^Cannot purge: .*{model.__name__}.club"):
        call_command(
            "purge", "testapp.Club", str(rovers.identity), dry_run=True, stdout=out
        )
    assert out.getvalue().splitlines()[0] == (
        "2 version(s) of 1 testapp.Club object(s) would be deleted for good:"
    )
    assert Club.all_versions.filter(identity=rovers.identity).count() == 2


def test_the_command_purges_when_only_current_versions_name_it(rovers, free_agents):
    fan = joined_the_club(Fan, rovers)
    dry = run("purge", "testapp.Club", str(rovers.identity), dry_run=True)
    assert "Would purge 2 row(s): 2 testapp.Club." in dry
    out = run("purge", "testapp.Club", str(rovers.identity), interactive=False)
    assert out.splitlines()[-1] == "Purged 2 row(s): 2 testapp.Club."
    assert Fan.objects.get(identity=fan.identity).club_id == free_agents.pk
