"""The history, restore, purge and prune management commands."""

import csv
import datetime
import io
import json
import re
import uuid
from unittest import mock

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command
from django.db import models
from django.utils import timezone

import versioning
from tests.factories import (
    DocumentFactory,
    ExampleFactory,
    ItemFactory,
    OrderLineFactory,
    ReviewFactory,
    UserFactory,
)
from tests.testapp.models import (
    Bundle,
    Child,
    Directory,
    Document,
    Example,
    Item,
    Note,
    Order,
    OrderLine,
    Parent,
    Placement,
    Recipe,
    Shelf,
    Supplier,
    Supply,
    Wine,
    WineDrinker,
)
from versioning.management.commands.prune import remove_versions
from versioning.references import own_link_keys

pytestmark = pytest.mark.django_db


def run(*args, **options):
    out = io.StringIO()
    call_command(*args, stdout=out, **options)
    return out.getvalue()


@pytest.fixture
def lamp():
    alice = UserFactory(username="alice")
    with versioning.changes(user=alice, reason="new"):
        item = ItemFactory(name="lamp", price=10, description="d")
    with versioning.changes(reason="price rise"):
        item.price = 12
        item.save()
    with versioning.changes(reason="x" * 100):
        item.description = "a much longer description " * 5
        item.save()
    return item


# history ---------------------------------------------------------------------


def test_history_table_by_identity_or_any_pk(lamp):
    by_identity = run("history", "testapp.Item", str(lamp.identity))
    first_pk = lamp.history().first().pk
    assert run("history", "testapp.Item", str(first_pk)) == by_identity
    lines = by_identity.splitlines()
    assert str(lamp.identity) in lines[0] and "3 version(s)" in lines[0]
    assert lines[1].split()[:6] == [
        "version",
        "pk",
        "valid_from",
        "valid_to",
        "changed_by",
        "reason",
    ]
    assert "created" in lines[2] and "alice" in lines[2]
    assert "price: 10.00 → 12.00" in lines[3] and "price rise" in lines[3]
    assert "current" in lines[4]
    assert "…" in lines[4]  # long values are shortened


def test_history_json_is_complete(lamp):
    records = json.loads(run("history", "testapp.Item", str(lamp.pk), format="json"))
    assert [r["version"] for r in records] == [1, 2, 3]
    second = records[1]
    assert second["changes"] == {"price": ["10.00", "12.00"]}
    assert second["change_reason"] == "price rise"
    assert second["identity"] == str(lamp.identity)
    stored = Item.all_versions.get(pk=second["pk"])
    assert second["valid_from"] == stored.valid_from.isoformat()
    assert second["valid_to"] == stored.valid_to.isoformat()
    assert second["data"]["description"] == "d"
    assert records[2]["valid_to"] is None and records[0]["changed_by"] == "alice"


def test_history_csv_is_complete(lamp):
    rows = list(
        csv.DictReader(
            io.StringIO(run("history", "testapp.Item", str(lamp.pk), format="csv"))
        )
    )
    assert [r["version"] for r in rows] == ["1", "2", "3"]
    assert json.loads(rows[1]["changes"]) == {"price": ["10.00", "12.00"]}
    assert rows[2]["description"] == lamp.description
    assert rows[2]["valid_to"] == "" and rows[0]["changed_by"] == "alice"
    assert rows[0]["deleted"] == "False"


def test_history_as_of_and_limit(lamp):
    second = lamp.history()[1]
    records = json.loads(
        run(
            "history",
            "testapp.Item",
            str(lamp.pk),
            format="json",
            as_of=second.valid_from.isoformat(),
        )
    )
    assert [r["version"] for r in records] == [2]
    records = json.loads(
        run("history", "testapp.Item", str(lamp.pk), format="json", limit="2")
    )
    assert [r["version"] for r in records] == [2, 3]


def test_history_since_lists_recent_changes_across_the_model(lamp):
    other = ItemFactory(name="desk")
    other.delete()
    since = lamp.history()[1].valid_from.isoformat()
    out = run("history", "testapp.Item", since=since)
    assert out.splitlines()[0].split()[0] == "object"
    assert "desk" in out and "then deleted" in out
    assert "created" not in out.split("lamp")[1].splitlines()[0]


def test_history_accepts_project_time_zone_dates(lamp):
    next_minute = lamp.valid_from + datetime.timedelta(minutes=1)
    text = timezone.localtime(next_minute).strftime("%Y-%m-%d %H:%M")
    records = json.loads(
        run("history", "testapp.Item", str(lamp.pk), as_of=text, format="json")
    )
    assert [r["version"] for r in records] == [3]
    run("history", "testapp.Item", since=timezone.localdate().isoformat())


@pytest.mark.parametrize(
    "args, options, message",
    [
        (["testapp.Nope", "1"], {}, "Unknown model 'testapp.Nope'"),
        (["nodots", "1"], {}, "Unknown model"),
        (["testapp.Tag", "1"], {}, "not a versioned model"),
        (["testapp.Item", "999999"], {}, "No testapp.Item has identity or primary key"),
        (["testapp.Item", "abc"], {}, "No testapp.Item"),
        (["testapp.Item", str(uuid.uuid4())], {}, "No testapp.Item"),
        (["testapp.Item", "LAMP"], {"as_of": "yesterday"}, "not a date and time"),
        (["testapp.Item", "LAMP"], {"limit": "0"}, "1 or more"),
        (["testapp.Item", "LAMP"], {"limit": "many"}, "1 or more"),
        (["testapp.Item"], {}, "use --since"),
        (["testapp.Item", "LAMP"], {"since": "2026-01-01"}, "drop OBJECT"),
        (["testapp.Item", "LAMP"], {"as_of": "2000-01-01"}, "did not exist"),
    ],
)
def test_history_bad_input_is_a_one_line_command_error(lamp, args, options, message):
    args = [str(lamp.pk) if a == "LAMP" else a for a in args]
    with pytest.raises(CommandError, match=message) as error:
        run("history", *args, **options)
    assert "\n" not in str(error.value)


def test_bad_input_from_the_command_line_exits_non_zero(capsys):
    from django.core.management import ManagementUtility

    with pytest.raises(SystemExit) as exit_:
        argv = ["manage.py", "history", "testapp.Nope", "1", "--skip-checks"]
        ManagementUtility(argv).execute()
    assert exit_.value.code != 0
    err = capsys.readouterr().err
    assert err.startswith("CommandError: Unknown model") and "Traceback" not in err


# restore ---------------------------------------------------------------------


def test_restore_makes_a_version_current_again(lamp):
    out = run(
        "restore", "testapp.Item", str(lamp.identity), to_version="1", reason="undo"
    )
    current = Item.objects.get()
    assert "as version 4" in out
    assert (current.version, current.price, current.change_reason) == (4, 10, "undo")


def test_restore_dry_run_and_deleted_objects(lamp):
    assert "Nothing was written" in run(
        "restore", "testapp.Item", str(lamp.pk), to_version="1", dry_run=True
    )
    assert Item.all_versions.count() == 3
    lamp.delete()
    run("restore", "testapp.Item", str(lamp.pk), to_version="2")
    assert Item.objects.get().price == 12


@pytest.mark.parametrize(
    "version, message",
    [
        ("9", "has no version 9; its newest is 3."),
        ("0", "1 or more"),
        ("x", "1 or more"),
    ],
)
def test_restore_bad_version(lamp, version, message):
    with pytest.raises(CommandError, match=message):
        run("restore", "testapp.Item", str(lamp.pk), to_version=version)
    assert Item.all_versions.count() == 3


def test_restore_of_the_current_data_does_nothing(lamp):
    assert "nothing to do" in run(
        "restore", "testapp.Item", str(lamp.pk), to_version="3"
    )


# purge -----------------------------------------------------------------------


def test_purge_removes_every_version_after_confirmation(lamp, monkeypatch):
    keep = ExampleFactory()
    monkeypatch.setattr("builtins.input", lambda prompt: "yes")
    out = run("purge", "testapp.Item", str(lamp.pk))
    assert "3 version(s) of 1 testapp.Item" in out and "Purged" in out
    assert not Item.all_versions.exists()
    assert Example.objects.filter(pk=keep.pk).exists()


def test_purge_can_be_cancelled_and_dry_run(lamp, monkeypatch):
    monkeypatch.setattr("builtins.input", lambda prompt: "no")
    assert "Purge cancelled" in run("purge", "testapp.Item", str(lamp.pk))
    assert "Nothing was deleted" in run(
        "purge", "testapp.Item", str(lamp.pk), dry_run=True
    )
    assert Item.all_versions.count() == 3


def test_purge_honours_protect(lamp):
    OrderLineFactory(item=Item.all_versions.get(version=1))
    with pytest.raises(CommandError, match="testapp.OrderLine"):
        run("purge", "testapp.Item", str(lamp.pk), interactive=False)
    assert Item.all_versions.count() == 3


def test_purge_several_objects_without_input(lamp):
    other = ItemFactory()
    run("purge", "testapp.Item", str(lamp.identity), str(other.pk), interactive=False)
    assert not Item.all_versions.exists()


# prune -----------------------------------------------------------------------


def edited_example(times):
    obj = ExampleFactory(data="0")
    for n in range(1, times):
        obj.data = str(n)
        obj.save()
    return obj


def test_prune_keeps_the_newest_versions_and_current_rows():
    obj = edited_example(6)
    other = edited_example(2)
    out = run("prune", "testapp.Example", keep="2")
    assert "Removed 4 historical version(s)" in out
    assert sorted(obj.history().values_list("version", flat=True)) == [5, 6]
    assert other.history().count() == 2


def test_prune_never_removes_pinned_or_referenced_versions():
    item = ItemFactory()
    pinned = OrderLineFactory(item=item)
    for price in (1, 2, 3):
        item.price = price
        item.save()
    out = run("prune", "testapp.Item", keep="1")
    assert "Kept 1 old version(s) that other rows point at" in out
    assert Item.all_versions.filter(pk=pinned.item_id).exists()
    assert OrderLine.objects.get().item_id == pinned.item_id
    assert Item.all_versions.count() == 2


def test_prune_older_than_and_dry_run():
    obj = edited_example(3)
    assert "Would remove 0" in run(
        "prune", "testapp.Example", older_than="1d", dry_run=True
    )
    two_days_later = timezone.now() + datetime.timedelta(days=2)
    with mock.patch("django.utils.timezone.now", return_value=two_days_later):
        assert "Would remove 2" in run(
            "prune", "testapp.Example", older_than="1d", dry_run=True
        )
        assert obj.history().count() == 3
        run("prune", "testapp.Example", older_than="1d")
    assert list(obj.history().values_list("version", flat=True)) == [3]


def test_prune_works_in_batches_with_plain_progress_lines():
    for _ in range(3):
        edited_example(4)
    out = run("prune", "testapp.Example", keep="1", batch_size="4", verbosity=2)
    assert [line for line in out.splitlines() if line.startswith("  batch")] == [
        "  batch 1: removed 4 (4/9)",
        "  batch 2: removed 4 (8/9)",
        "  batch 3: removed 1 (9/9)",
    ]
    assert Example.all_versions.count() == 3


def test_prune_removes_the_links_of_removed_versions():
    item = ItemFactory()
    item.tags.create(name="red")
    item.price = 99
    item.save()
    run("prune", "testapp.Item", keep="1")
    assert Item.tags.through.objects.count() == 1


# What keeps a version: one scenario per kind of reference. Each returns the
# model to prune with --keep 1 and the pk of an old version something names.


def saved(obj, **changes):
    for name, value in changes.items():
        setattr(obj, name, value)
    obj.save()
    return obj


def foreign_key():
    item = ItemFactory()
    order = Order.objects.create(item=item)
    first = item.pk
    saved(item, price=2)
    # A plain key can name an old row: written by hand, or left on a deleted
    # object's last row by on_delete=DO_NOTHING.
    Order.objects.filter(pk=order.pk).update(item_id=first)
    saved(item, price=3)
    return Item, first


def versioned_referrers_history():
    item = ItemFactory()
    review = ReviewFactory(item=item)
    first = item.pk
    saved(review, text="better")  # its version 1 keeps pointing at item v1
    saved(item, price=2)
    return Item, first


def pinned_key():
    item = ItemFactory()
    OrderLineFactory(item=item)
    first = item.pk
    saved(item, price=2)
    return Item, first


def one_to_one():
    child = Child.objects.create(data="a")
    parent = Parent.objects.create(child=child)
    first = child.pk
    saved(child, data="b")
    # on_delete=SET_NULL: Django's collector would have cleared the key.
    Parent.objects.filter(pk=parent.pk).update(child_id=first)
    return Child, first


def link_declared_elsewhere():
    item = ItemFactory()
    bundle = Bundle.objects.create(name="b")
    bundle.items.add(item)
    first = item.pk
    saved(item, price=2)
    Bundle.items.through.objects.filter(bundle=bundle).update(item_id=first)
    return Item, first


def link_between_versioned_models():
    wine = Wine.objects.create(name="w")
    drinker = WineDrinker.objects.create(name="d")
    drinker.glasses.add(wine)
    saved(drinker, name="e")  # its earlier version keeps its link to wine v1
    first = wine.pk
    saved(wine, vintage=2001)
    return Wine, first


def explicit_through_declared_elsewhere():
    document = DocumentFactory()
    shelf = Shelf.objects.create(name="s")
    placement = Placement.objects.create(shelf=shelf, document=document)
    first = document.pk
    saved(document, title="t")
    Placement.objects.filter(pk=placement.pk).update(document_id=first)
    return Document, first


def generic_foreign_key():
    item = ItemFactory()
    Note.objects.create(target=item, text="about version 1")
    first = item.pk
    saved(item, price=2)
    return Item, first


def generic_foreign_key_to_a_uuid_key():
    document = DocumentFactory()
    Note.objects.create(target=document, text="about version 1")
    first = document.pk
    saved(document, title="t")
    return Document, first


def generic_relation():
    recipe = Recipe.objects.create(title="soup")
    recipe.notes.create(text="too salty")
    first = recipe.pk
    saved(recipe, title="soup, less salt")
    return Recipe, first


def self_key():
    root = Directory.objects.create(name="root")
    child = Directory.objects.create(name="child", parent=root)
    first = root.pk
    saved(child, name="kid")  # its version 1 keeps pointing at root v1
    saved(root, name="/")
    return Directory, first


REFERENCES = [
    foreign_key,
    versioned_referrers_history,
    pinned_key,
    one_to_one,
    link_declared_elsewhere,
    link_between_versioned_models,
    explicit_through_declared_elsewhere,
    generic_foreign_key,
    generic_foreign_key_to_a_uuid_key,
    generic_relation,
    self_key,
]


def other_rows(model):
    """Every row of every other model (its own link tables aside)."""
    own_links = {key.model for key in own_link_keys(model)}
    return {
        other._meta.label: list(
            models.QuerySet(model=other).order_by("pk").values_list()
        )
        for other in apps.get_models(include_auto_created=True)
        if other is not model and other not in own_links
    }


@pytest.mark.parametrize("refer", REFERENCES, ids=lambda refer: refer.__name__)
def test_prune_keeps_every_version_something_refers_to(refer):
    model, referenced = refer()
    label = model._meta.label
    before = other_rows(model)
    dry_run = run("prune", label, keep="1", dry_run=True, verbosity=2)
    would = re.search(r"Would remove (\d+) .*; (\d+) more match", dry_run)
    assert would and int(would[2]) >= 1, dry_run
    assert "pointed at by" in dry_run

    out = run("prune", label, keep="1", verbosity=2)
    assert model.all_versions.filter(pk=referenced).exists()
    assert other_rows(model) == before
    # The dry run and the real run are one computation.
    assert f"Removed {would[1]} historical version(s)" in out
    assert f"Kept {would[2]} old version(s)" in out
    assert dry_run.splitlines()[1:] == [
        line for line in out.splitlines() if "pointed at by" in line
    ]


def test_prune_names_what_keeps_a_version_with_verbosity_2():
    generic_foreign_key()
    pinned_key()
    out = run("prune", "testapp.Item", keep="1", dry_run=True, verbosity=2)
    assert "  1 pointed at by testapp.Note.target" in out
    assert "  1 pointed at by testapp.OrderLine.item" in out
    assert "pointed at by" not in run("prune", "testapp.Item", keep="1", dry_run=True)


def test_prune_removes_a_version_with_its_own_explicit_links():
    item = ItemFactory()
    item.suppliers.add(Supplier.objects.create(name="acme"))
    saved(item, price=2)
    kept = item.pk
    run("prune", "testapp.Item", keep="1")
    assert list(Item.all_versions.values_list("pk", flat=True)) == [kept]
    assert list(Supply.objects.values_list("item_id", flat=True)) == [kept]
    assert Supplier.objects.count() == 1


def test_a_version_referred_to_after_the_plan_stays():
    item = ItemFactory()
    first = item.pk
    saved(item, price=2)
    # As if an order line pinned it between the plan and the batch.
    OrderLine.objects.create(item_id=first)
    removal = remove_versions(Item, "default", [first])
    assert removal.removed == 0
    assert removal.kept_by == {"testapp.OrderLine.item": {first}}
    assert Item.all_versions.filter(pk=first).exists()


@pytest.mark.parametrize(
    "options, message",
    [
        ({}, "--keep N, --older-than DURATION"),
        ({"keep": "0"}, "1 or more"),
        ({"older_than": "soon"}, "not a duration"),
        ({"older_than": "0d"}, "not a duration"),
        ({"keep": "1", "batch_size": "-5"}, "1 or more"),
    ],
)
def test_prune_bad_input(options, message):
    edited_example(3)
    with pytest.raises(CommandError, match=message):
        run("prune", "testapp.Example", **options)
    assert Example.all_versions.count() == 3


def test_commands_have_help_with_examples():
    for name in ("history", "restore", "purge", "prune", "dumpdata"):
        from django.core.management import load_command_class

        command = load_command_class("versioning", name)
        assert "manage.py " + name in command.help


def test_prune_draws_a_progress_bar_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    for _ in range(2):
        edited_example(3)
    out = Terminal()
    call_command("prune", "testapp.Example", keep="1", batch_size="2", stdout=out)
    text = out.getvalue()
    assert "\r[" in text and "4/4" in text and "pruned" not in text


def test_history_verbosity_2_lists_every_field(lamp):
    out = run("history", "testapp.Item", str(lamp.pk), verbosity=2)
    assert "description = d" in out and "price = 10.00" in out


def test_verbosity_0_keeps_write_commands_quiet(lamp):
    assert (
        run("restore", "testapp.Item", str(lamp.pk), to_version="1", verbosity=0) == ""
    )
    assert run("prune", "testapp.Item", keep="1", verbosity=0) == ""
    assert (
        run("purge", "testapp.Item", str(lamp.identity), interactive=False, verbosity=0)
        == ""
    )
    assert not Item.all_versions.exists()
