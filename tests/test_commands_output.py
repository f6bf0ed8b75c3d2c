"""
What the history, prune and purge commands say: an old pk after prune, a
few summary lines from prune in a log, purge's counts, a cancelled purge.
"""

import io
import re

import pytest
from django.core.management import CommandError, ManagementUtility, call_command
from django.db import connections

from tests.conftest import edited
from tests.factories import ExampleFactory, ItemFactory, OrderLineFactory, TagFactory
from tests.testapp.models import Bundle, Example, Item

pytestmark = pytest.mark.django_db


def run(*args, **options):
    out = io.StringIO()
    call_command(*args, stdout=out, **options)
    return without_space_freed(out.getvalue())


def without_space_freed(text):
    """prune's output without the row data freed, which PostgreSQL reports."""
    return re.sub(
        r"; about [\d.]+ KiB of row data freed \(reusable after VACUUM\)", "", text
    )


class Terminal(io.StringIO):
    def isatty(self):
        return True


def examples(objects, versions):
    """``objects`` examples with ``versions`` versions each."""
    return [
        edited(ExampleFactory(data="0"), "data", *map(str, range(1, versions)))
        for _ in range(objects)
    ]


@pytest.fixture
def lamp():
    return edited(ItemFactory(name="lamp", price=1), "price", 2, 3, 4)


# history of an object by an old pk ------------------------------------------------


def test_after_prune_the_identity_and_a_kept_pk_name_the_object(lamp):
    first_pk = Item.all_versions.get(version=1).pk
    run("prune", "testapp.Item", keep="2")
    by_identity = run("history", "testapp.Item", str(lamp.identity))
    kept_pk = Item.all_versions.get(version=3).pk
    assert run("history", "testapp.Item", str(kept_pk)) == by_identity
    assert run("history", "testapp.Item", str(lamp.pk)) == by_identity
    assert "2 version(s) shown" in by_identity
    with pytest.raises(CommandError) as error:
        run("history", "testapp.Item", str(first_pk))
    message = str(error.value)
    assert "\n" not in message
    assert f"No version of testapp.Item has primary key '{first_pk}' any more" in (
        message
    )
    assert "prune has removed old versions" in message
    assert "identity (UUID)" in message


@pytest.mark.parametrize("pruned", [False, True])
def test_a_pk_never_given_out_is_just_unknown(lamp, pruned):
    if pruned:
        run("prune", "testapp.Item", keep="2")
    with pytest.raises(CommandError) as error:
        run("history", "testapp.Item", "999999")
    assert str(error.value) == (
        "No testapp.Item has identity or primary key '999999'. Give an identity "
        "(UUID) or the primary key of one of its stored versions."
    )


def test_purging_whole_objects_is_not_taken_for_prune(lamp):
    other = ItemFactory(name="desk")
    run("purge", "testapp.Item", str(other.pk), interactive=False)
    with pytest.raises(CommandError, match="No testapp.Item has identity"):
        run("history", "testapp.Item", str(other.pk))


# prune ---------------------------------------------------------------------------


def test_prune_off_a_terminal_prints_a_few_summary_lines():
    examples(objects=5, versions=4)  # 15 old versions: 8 batches of 2
    lines = run("prune", "testapp.Example", keep="1", batch_size="2").splitlines()
    assert lines == [
        "Removing 15 historical version(s) of testapp.Example in 8 batch(es) of "
        "up to 2.",
        "Removed 15 historical version(s) of testapp.Example.",
    ]
    assert Example.all_versions.count() == 5


def test_prune_says_what_it_kept():
    item = ItemFactory()
    edited(item, "price", 1, 2)
    OrderLineFactory(item=Item.all_versions.get(version=1))
    lines = run("prune", "testapp.Item", keep="1", batch_size="10").splitlines()
    assert lines == [
        "Removing 1 historical version(s) of testapp.Item in 1 batch(es) of up "
        "to 10; 1 more match but other rows point at them and stay.",
        "Removed 1 historical version(s) of testapp.Item.",
        "Kept 1 old version(s) that other rows point at.",
    ]


def test_prune_at_verbosity_2_prints_a_line_per_batch():
    examples(objects=3, versions=3)  # 6 old versions
    lines = run(
        "prune", "testapp.Example", keep="1", batch_size="4", verbosity=2
    ).splitlines()
    assert lines[1:3] == [
        "  batch 1: removed 4 (4/6)",
        "  batch 2: removed 2 (6/6)",
    ]
    assert lines[0].startswith("Removing 6") and lines[3].startswith("Removed 6")


def test_prune_on_a_terminal_draws_a_bar_between_the_summary_lines():
    examples(objects=2, versions=3)
    out = Terminal()
    call_command("prune", "testapp.Example", keep="1", batch_size="2", stdout=out)
    text = without_space_freed(out.getvalue())
    assert text.startswith("Removing 4 historical version(s)")
    assert "\r[###############...............] 2/4" in text
    assert "\r[##############################] 4/4\n" in text
    assert text.endswith("Removed 4 historical version(s) of testapp.Example.\n")


def test_prune_dry_run_gives_the_plan_the_real_run_carries_out():
    examples(objects=3, versions=3)
    dry = run("prune", "testapp.Example", keep="1", batch_size="4", dry_run=True)
    assert dry.splitlines() == [
        "Would remove 6 historical version(s) of testapp.Example in 2 batch(es) of "
        "up to 4. Nothing was deleted (--dry-run)."
    ]
    assert Example.all_versions.count() == 9
    real = run("prune", "testapp.Example", keep="1", batch_size="4")
    plan = dry.removeprefix("Would remove").removesuffix(
        " Nothing was deleted (--dry-run).\n"
    )
    assert real.splitlines()[0] == "Removing" + plan


# purge ---------------------------------------------------------------------------


def purge_lines(*args, **options):
    return run("purge", "testapp.Item", *args, **options).splitlines()


def test_purge_dry_run_counts_agree_with_its_listing_after_prune(lamp):
    run("prune", "testapp.Item", keep="2")  # versions 3 and 4 stay
    desk = ItemFactory(name="desk")
    lines = purge_lines(str(lamp.identity), str(desk.pk), dry_run=True)
    assert (
        lines[0]
        == "3 version(s) of 2 testapp.Item object(s) would be deleted for good:"
    )
    listed = sorted(lines[1:3])
    assert listed == sorted(
        [
            f"  {lamp.identity}  lamp  (2 version(s))",
            f"  {desk.identity}  desk  (1 version(s))",
        ]
    )
    assert lines[3] == "Would purge 3 row(s): 3 testapp.Item."
    assert lines[4] == "Nothing was deleted (--dry-run)."


def test_purge_dry_run_counts_what_the_purge_deletes(lamp):
    lamp.tags.add(TagFactory(name="red"))  # version 5, with its link
    Bundle.objects.create(name="set").items.add(Item.objects.get())
    dry = purge_lines(str(lamp.pk), dry_run=True)
    assert dry[-2] == (
        "Would purge 7 row(s): 1 testapp.Bundle_items, 5 testapp.Item, "
        "1 testapp.Item_tags."
    )
    real = purge_lines(str(lamp.pk), interactive=False)
    assert real[-2] == "Will purge" + dry[-2][len("Would purge") :]
    assert real[-1] == "Purged" + dry[-2][len("Would purge") :]
    assert not Item.all_versions.exists() and Bundle.objects.count() == 1


def test_purge_dry_run_names_what_blocks_it(lamp):
    OrderLineFactory(item=Item.all_versions.get(version=1))
    with pytest.raises(CommandError, match="rows of testapp.OrderLine still refer"):
        run("purge", "testapp.Item", str(lamp.pk), dry_run=True)


def test_a_cancelled_purge_says_so_and_exits_0_as_flush_does(lamp, monkeypatch, capsys):
    monkeypatch.setattr("builtins.input", lambda prompt: "no")
    # The command line closes the connections when done; the test still needs its own.
    monkeypatch.setattr(connections, "close_all", lambda: None)
    argv = ["manage.py", "purge", "testapp.Item", str(lamp.pk), "--skip-checks"]
    ManagementUtility(argv).execute()  # no SystemExit: exit status 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == "Purge cancelled; nothing was deleted."
    assert Item.all_versions.count() == 4


def test_a_cancelled_purge_speaks_even_at_verbosity_0(lamp, monkeypatch):
    monkeypatch.setattr("builtins.input", lambda prompt: "")
    out = run("purge", "testapp.Item", str(lamp.pk), verbosity=0)
    assert out == "Purge cancelled; nothing was deleted.\n"
    assert Item.all_versions.count() == 4
