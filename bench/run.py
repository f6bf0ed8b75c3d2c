"""
Benchmark: what keeping history costs, this app against its peers, and how the
cost grows with history.

    python bench/run.py [--quick] [--database sqlite|postgres|all] [--output FILE]
                        [--plot FILE]

One process per database; inside it every approach runs interleaved, round
by round (A B C … then … C B A), so that drift of the machine hits all of them
alike. Ratios are taken per round (against plain Django, against a
hand-written "close old row + insert new row" in one transaction, against a
plain model with a versioned row's columns, against simple-history); the
tables show their median and their spread (lowest–highest round). The cost
growth (bench/growth.py) is measured the same way, each depth of history
against depth 1, and drawn as a PNG (bench/plot.py). Both databases run on
durable settings, which the child checks before measuring: PostgreSQL is the
throwaway server of `make test` with fsync and synchronous_commit on, SQLite a
file with synchronous=FULL. This is not a test: nothing here asserts a time.
CI runs --quick only to keep it working.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import report  # noqa: E402
from bench.plot import growth_png  # noqa: E402

# ---------------------------------------------------------------- child side


def setup_django():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    import django
    from django.conf import settings

    if "sqlite" in settings.DATABASES["default"]["ENGINE"]:
        name = settings.DATABASES["default"]["NAME"]
        if os.path.exists(name):
            os.remove(name)
        atexit.register(os.remove, name)
    django.setup()
    from django.core.management import call_command

    call_command("migrate", run_syncdb=True, verbosity=0)


def durability():
    """
    What makes a commit durable here, as a sentence; refuses to go on when a
    commit could be lost, since numbers measured so would flatter every write.
    """
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("PRAGMA journal_mode")
            journal = cursor.fetchone()[0]
            cursor.execute("PRAGMA synchronous")
            level = cursor.fetchone()[0]
            synchronous = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[level]
            if level < 2 or journal in ("off", "memory"):
                raise SystemExit(
                    f"SQLite runs with journal_mode={journal}, "
                    f"synchronous={synchronous}: not durable. Set "
                    "OPTIONS['init_command'] to 'PRAGMA synchronous=FULL' in "
                    "bench/settings.py."
                )
            version = connection.Database.sqlite_version
            return (
                f"SQLite {version} file, journal_mode={journal}, "
                f"synchronous={synchronous}"
            )
        settings = {}
        for name in ("server_version", "fsync", "synchronous_commit"):
            cursor.execute(f"SHOW {name}")
            settings[name] = cursor.fetchone()[0]
        if settings["fsync"] != "on" or settings["synchronous_commit"] != "on":
            raise SystemExit(
                f"PostgreSQL runs with fsync={settings['fsync']}, "
                f"synchronous_commit={settings['synchronous_commit']}: not durable. "
                "Turn both on in the server's postgresql.conf."
            )
        return (
            f"PostgreSQL {settings['server_version']}, fsync=on, synchronous_commit=on"
        )


def make_editors():
    """
    Per approach, a callable making one edit of one object in its own
    transaction, or inside the caller's (the ``_in_atomic`` ones).
    """
    import reversion
    from django.db import connection, transaction
    from django.utils import timezone

    from bench.benchapp.models import (
        HandNote,
        HistoryNote,
        PlainNote,
        ReversionNote,
        VersionedNote,
    )

    plain = PlainNote.objects.create(title="t", body="b")
    versioned = VersionedNote.objects.create(title="t", body="b")
    # The same edits inside the caller's transaction (an outer atomic()).
    plain_in_atomic = PlainNote.objects.create(title="t", body="b")
    versioned_in_atomic = VersionedNote.objects.create(title="t", body="b")
    history_atomic = HistoryNote.objects.create(title="t", body="b")
    history = HistoryNote.objects.create(title="t", body="b")
    with reversion.create_revision():
        revisioned = ReversionNote.objects.create(title="t", body="b")
    hand = HandNote.objects.create(title="t", body="b", valid_from=timezone.now())
    hand_state = {"pk": hand.pk, "version": 1, "identity": hand.identity}
    sql_state = dict(hand_state)
    sql_hand = HandNote.objects.create(title="t", body="b", valid_from=timezone.now())
    sql_state.update(pk=sql_hand.pk, identity=sql_hand.identity)
    table = connection.ops.quote_name(HandNote._meta.db_table)
    identity_param = HandNote._meta.get_field("identity")

    def edit_plain(n):
        plain.counter = n
        plain.save()

    def edit_versioning(n):
        versioned.counter = n
        versioned.save()

    def edit_plain_in_atomic(n):
        with transaction.atomic():
            plain_in_atomic.counter = n
            plain_in_atomic.save()

    def edit_versioning_in_atomic(n):
        with transaction.atomic():
            versioned_in_atomic.counter = n
            versioned_in_atomic.save()

    def edit_history_atomic(n):
        with transaction.atomic():
            history_atomic.counter = n
            history_atomic.save()

    def edit_history(n):
        history.counter = n
        history.save()

    def edit_reversion(n):
        with reversion.create_revision():
            revisioned.counter = n
            revisioned.save()

    def edit_hand_orm(n):
        with transaction.atomic():
            now = timezone.now()
            HandNote.objects.filter(pk=hand_state["pk"], valid_to__isnull=True).update(
                valid_to=now
            )
            new = HandNote.objects.create(
                identity=hand_state["identity"],
                version=hand_state["version"] + 1,
                valid_from=now,
                title="t",
                body="b",
                counter=n,
            )
        hand_state.update(pk=new.pk, version=new.version)

    def edit_hand_sql(n):
        with transaction.atomic(), connection.cursor() as cursor:
            now = timezone.now()
            stamp = connection.ops.adapt_datetimefield_value(now)
            cursor.execute(
                f"UPDATE {table} SET valid_to = %s WHERE id = %s AND valid_to IS NULL",
                [stamp, sql_state["pk"]],
            )
            cursor.execute(
                f"INSERT INTO {table} (identity, version, valid_from, valid_to, title, "
                "body, counter) VALUES (%s, %s, %s, NULL, %s, %s, %s)",
                [
                    identity_param.get_db_prep_value(sql_state["identity"], connection),
                    sql_state["version"] + 1,
                    stamp,
                    "t",
                    "b",
                    n,
                ],
            )
            if connection.vendor == "postgresql":
                cursor.execute("SELECT lastval()")
            else:
                cursor.execute("SELECT last_insert_rowid()")
            sql_state.update(pk=cursor.fetchone()[0], version=sql_state["version"] + 1)

    return {
        "plain": edit_plain,
        "versioning": edit_versioning,
        "plain_in_atomic": edit_plain_in_atomic,
        "versioning_in_atomic": edit_versioning_in_atomic,
        "history_atomic": edit_history_atomic,
        "history": edit_history,
        "reversion": edit_reversion,
        "hand_orm": edit_hand_orm,
        "hand_sql": edit_hand_sql,
    }


def statements_per_edit(edit):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    control = ("SAVEPOINT", "RELEASE", "ROLLBACK", "BEGIN", "COMMIT")
    with CaptureQueriesContext(connection) as captured:
        edit(10**6)
    return sum(
        1 for q in captured.captured_queries if not q["sql"].upper().startswith(control)
    )


def interleaved(names, rounds):
    for number in range(rounds):
        yield number, (names if number % 2 == 0 else list(reversed(names)))


def single_edits(rounds, edits):
    editors = make_editors()
    times = {name: [] for name in editors}
    per_round = {name: [] for name in editors}
    counter = 0
    for _, order in interleaved(list(editors), rounds):
        for name in order:
            samples = []
            for _ in range(edits):
                counter += 1
                start = time.perf_counter()
                editors[name](counter)
                samples.append(time.perf_counter() - start)
            times[name].extend(samples)
            per_round[name].append(statistics.median(samples))
    return {
        name: {
            "median_us": statistics.median(samples) * 1e6,
            "p95_us": sorted(samples)[int(len(samples) * 0.95) - 1] * 1e6,
            "statements": statements_per_edit(editors[name]),
            "rounds": per_round[name],
        }
        for name, samples in times.items()
    }


def bulk_changes(rounds, rows):
    import reversion
    from django.db import transaction
    from django.db.models import F
    from django.utils import timezone
    from simple_history.utils import bulk_update_with_history

    from bench.benchapp.models import (
        HandNote,
        HistoryNote,
        PlainNote,
        ReversionNote,
        VersionedNote,
    )

    now = timezone.now()
    PlainNote.objects.bulk_create(PlainNote(title="t", body="b") for _ in range(rows))
    VersionedNote.objects.bulk_create(
        VersionedNote(title="t", body="b") for _ in range(rows)
    )
    HistoryNote.objects.bulk_create(
        HistoryNote(title="t", body="b") for _ in range(rows)
    )
    with reversion.create_revision():
        ReversionNote.objects.bulk_create(
            ReversionNote(title="t", body="b") for _ in range(rows)
        )
    HandNote.objects.bulk_create(
        HandNote(title="t", body="b", valid_from=now) for _ in range(rows)
    )

    def change_plain():
        PlainNote.objects.filter(title="t").update(counter=F("counter") + 1)

    def change_versioning():
        VersionedNote.objects.filter(title="t").update(counter=F("counter") + 1)

    def change_history():
        objs = list(HistoryNote.objects.filter(title="t"))
        for obj in objs:
            obj.counter += 1
        bulk_update_with_history(objs, HistoryNote, ["counter"])

    def change_reversion():
        with reversion.create_revision():
            for obj in ReversionNote.objects.filter(title="t"):
                obj.counter += 1
                obj.save()

    def change_hand():
        with transaction.atomic():
            moment = timezone.now()
            current = list(HandNote.objects.filter(title="t", valid_to__isnull=True))
            HandNote.objects.filter(pk__in=[r.pk for r in current]).update(
                valid_to=moment
            )
            HandNote.objects.bulk_create(
                HandNote(
                    identity=r.identity,
                    version=r.version + 1,
                    valid_from=moment,
                    title=r.title,
                    body=r.body,
                    counter=r.counter + 1,
                )
                for r in current
            )

    changes = {
        "plain": change_plain,
        "versioning": change_versioning,
        "history": change_history,
        "reversion": change_reversion,
        "hand_orm": change_hand,
    }
    seconds = {name: [] for name in changes}
    for _, order in interleaved(list(changes), rounds):
        for name in order:
            start = time.perf_counter()
            changes[name]()
            seconds[name].append(time.perf_counter() - start)
    return {name: {"rounds": values} for name, values in seconds.items()}


def build_history(objects, versions):
    """objects × versions rows for each history-keeping approach, written directly."""
    import datetime

    import reversion
    from django.contrib.contenttypes.models import ContentType
    from django.core import serializers
    from django.utils import timezone
    from reversion.models import Revision, Version

    from bench.benchapp.models import (
        HistoryNote,
        PlainNote,
        ReversionNote,
        SameColumnsNote,
        VersionedNote,
    )

    start = timezone.now() - datetime.timedelta(days=versions)
    PlainNote.objects.bulk_create(
        PlainNote(title=f"read {i}", body="b") for i in range(objects)
    )
    SameColumnsNote.objects.bulk_create(
        SameColumnsNote(
            title=f"read {i}",
            body="b",
            counter=versions,
            version=versions,
            valid_from=start + datetime.timedelta(days=versions - 1),
        )
        for i in range(objects)
    )
    rows = []
    for i in range(objects):
        identity = uuid.uuid4()
        for v in range(1, versions + 1):
            rows.append(
                VersionedNote(
                    identity=identity,
                    version=v,
                    title=f"read {i}",
                    body="b",
                    counter=v,
                    valid_from=start + datetime.timedelta(days=v - 1),
                    valid_to=None
                    if v == versions
                    else start + datetime.timedelta(days=v),
                )
            )
        if len(rows) >= 20000:
            VersionedNote.all_versions.bulk_create(rows, batch_size=2000)
            rows = []
    VersionedNote.all_versions.bulk_create(rows, batch_size=2000)

    notes = HistoryNote.objects.bulk_create(
        HistoryNote(title=f"read {i}", body="b", counter=versions)
        for i in range(objects)
    )
    Historical = HistoryNote.history.model
    rows = []
    for note in notes:
        for v in range(1, versions + 1):
            rows.append(
                Historical(
                    id=note.pk,
                    title=note.title,
                    body="b",
                    counter=v,
                    history_date=start + datetime.timedelta(days=v - 1),
                    history_type="+" if v == 1 else "~",
                )
            )
        if len(rows) >= 20000:
            Historical.objects.bulk_create(rows, batch_size=2000)
            rows = []
    Historical.objects.bulk_create(rows, batch_size=2000)

    with reversion.create_revision():
        pass
    notes = ReversionNote.objects.bulk_create(
        ReversionNote(title=f"read {i}", body="b", counter=versions)
        for i in range(objects)
    )
    content_type = ContentType.objects.get_for_model(ReversionNote)
    for v in range(1, versions + 1):
        revision = Revision.objects.create(
            date_created=start + datetime.timedelta(days=v - 1)
        )
        batch = []
        for note in notes:
            note.counter = v
            batch.append(
                Version(
                    revision=revision,
                    object_id=str(note.pk),
                    content_type=content_type,
                    db="default",
                    format="json",
                    serialized_data=serializers.serialize("json", [note]),
                    object_repr=str(note),
                )
            )
        Version.objects.bulk_create(batch, batch_size=2000)


def spread(keys, count):
    """``count`` of ``keys`` (all of them if fewer), spread evenly over the list."""
    count = min(count, len(keys))
    return [keys[i * len(keys) // count] for i in range(count)]


def reads(rounds, lookups, history_lookups):
    """
    Per-lookup seconds of each round: ``lookups`` lookups per round and
    approach, or for a peer named in ``history_lookups`` that many of its full
    histories, spread over the same objects (a per-lookup time stays a fair
    figure; a lookup of a fifth of a second does not need 500 samples a round).
    """
    from reversion.models import Version

    from bench.benchapp.models import (
        HistoryNote,
        PlainNote,
        ReversionNote,
        SameColumnsNote,
        VersionedNote,
    )

    def keys(model, field="pk"):
        return list(
            model.objects.filter(title__startswith="read").values_list(field, flat=True)
        )

    plain_pks = keys(PlainNote)
    same_columns_pks = keys(SameColumnsNote)
    identities = keys(VersionedNote, "identity")
    versioned_pks = keys(VersionedNote)
    history_pks = keys(HistoryNote)
    reversion_objs = list(ReversionNote.objects.filter(title__startswith="read"))

    def history_count(name):
        return history_lookups.get(name, lookups)

    def current_plain(pks):
        for pk in pks:
            PlainNote.objects.get(pk=pk)

    def current_same_columns(pks):
        for pk in pks:
            SameColumnsNote.objects.get(pk=pk)

    def current_versioning(identities):
        for identity in identities:
            VersionedNote.objects.get(identity=identity)

    def current_versioning_pk(pks):
        for pk in pks:
            VersionedNote.objects.get(pk=pk)

    def current_history(pks):
        for pk in pks:
            HistoryNote.objects.get(pk=pk)

    def current_reversion(objs):
        for obj in objs:
            ReversionNote.objects.get(pk=obj.pk)

    def history_versioning(identities):
        for identity in identities:
            list(
                VersionedNote.all_versions.filter(identity=identity).order_by("version")
            )

    def history_history(pks):
        for pk in pks:
            list(HistoryNote.history.filter(id=pk).order_by("history_date"))

    def history_reversion(objs):
        for obj in objs:
            list(Version.objects.get_for_object(obj))

    cases = {
        "current": {
            "plain": (current_plain, plain_pks, lookups),
            "same_columns": (current_same_columns, same_columns_pks, lookups),
            "versioning": (current_versioning, identities, lookups),
            "versioning_pk": (current_versioning_pk, versioned_pks, lookups),
            "history": (current_history, history_pks, lookups),
            "reversion": (current_reversion, reversion_objs, lookups),
        },
        "history": {
            "versioning": (history_versioning, identities, history_count("versioning")),
            "history": (history_history, history_pks, history_count("history")),
            "reversion": (
                history_reversion,
                reversion_objs,
                history_count("reversion"),
            ),
        },
    }
    results = {}
    for case, runners in cases.items():
        chosen = {
            name: spread(looked_up, count)
            for name, (_, looked_up, count) in runners.items()
        }
        seconds = {name: [] for name in runners}
        for _, order in interleaved(list(runners), rounds):
            for name in order:
                start = time.perf_counter()
                runners[name][0](chosen[name])
                seconds[name].append((time.perf_counter() - start) / len(chosen[name]))
        results[case] = {
            name: {"rounds": values, "lookups": len(chosen[name])}
            for name, values in seconds.items()
        }
    return results


def storage():
    from django.db import connection

    from bench.benchapp.models import HistoryNote, PlainNote, VersionedNote

    tables = {
        "plain": [PlainNote._meta.db_table],
        "versioning": [VersionedNote._meta.db_table],
        "history": [
            HistoryNote._meta.db_table,
            HistoryNote.history.model._meta.db_table,
        ],
        "reversion": [
            "benchapp_reversionnote",
            "reversion_version",
            "reversion_revision",
        ],
    }
    sizes = {}
    with connection.cursor() as cursor:
        for name, names in tables.items():
            total = 0
            for table in names:
                if connection.vendor == "postgresql":
                    cursor.execute("SELECT pg_total_relation_size(%s)", [table])
                    total += cursor.fetchone()[0]
                else:
                    cursor.execute(
                        "SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name = %s "
                        "OR name IN "
                        "(SELECT name FROM sqlite_master WHERE tbl_name = %s)",
                        [table, table],
                    )
                    total += cursor.fetchone()[0]
            sizes[name] = total
    return sizes


def child(quick: bool) -> dict:
    setup_django()
    from django.db import connection

    from bench import growth

    sizes = {
        "rounds": 3,
        "edits": 20,
        "bulk_rows": 200,
        "bulk_rounds": 2,
        "objects": 200,
        "versions": 20,
        "lookups": 50,
        "history_lookups": {"reversion": 10} if connection.vendor == "sqlite" else {},
        "growth_rows": [2000],
        "growth_rounds": 3,
        "growth_edits": 5,
        "growth_lookups": 10,
    }
    if not quick:
        sizes = {
            "rounds": 15,
            "edits": 40,
            "bulk_rows": 5000,
            "bulk_rounds": 5,
            "objects": 2000,
            "versions": 100,
            "lookups": 500,
            # On SQLite, django-reversion's get_for_object() reads every version
            # of the model (without statistics the planner picks the index on
            # (content_type, db)): 0.1 s a lookup, 0.2 s on a busy machine,
            # where 500 a round took 28 of SQLite's 40 minutes.
            "history_lookups": {"reversion": 50}
            if connection.vendor == "sqlite"
            else {},
            # A million rows are filled in seconds by generate_series only.
            "growth_rows": [10_000, 1_000_000]
            if connection.vendor == "postgresql"
            else [10_000],
            "growth_rounds": 15,
            "growth_edits": 30,
            "growth_lookups": 60,
        }

    result = {"database": connection.vendor, "durability": durability(), "sizes": sizes}
    started = time.perf_counter()
    steps = result["step_seconds"] = {}
    edit_sizes = (sizes["rounds"], sizes["edits"])
    bulk_sizes = (sizes["bulk_rounds"], sizes["bulk_rows"])

    def step(name, function, *args):
        began = time.perf_counter()
        value = function(*args)
        steps[name] = time.perf_counter() - began
        print(f"{connection.vendor}: {name} {steps[name]:.0f} s", file=sys.stderr)
        return value

    result["single"] = step("single edits", single_edits, *edit_sizes)
    result["bulk"] = step("bulk changes", bulk_changes, *bulk_sizes)
    step("history written", build_history, sizes["objects"], sizes["versions"])
    read_sizes = (sizes["rounds"], sizes["lookups"], sizes["history_lookups"])
    result["reads"] = step("reads", reads, *read_sizes)
    result["storage"] = storage()
    growth_sizes = (
        sizes["growth_rounds"],
        sizes["growth_edits"],
        sizes["growth_lookups"],
    )
    result["growth"] = [
        step(f"growth at {rows:,} rows", growth.measure, rows, *growth_sizes)
        for rows in sizes["growth_rows"]
    ]
    result["seconds"] = time.perf_counter() - started
    return result


# --------------------------------------------------------------- parent side


def main():
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="small sizes, to keep it working"
    )
    parser.add_argument(
        "--database", choices=["sqlite", "postgres", "all"], default="all"
    )
    parser.add_argument(
        "--output",
        help="markdown file (default bench/results.md, or stdout with --quick); "
        "the raw figures go beside it as .json",
    )
    parser.add_argument(
        "--plot",
        help="PNG of the cost growth (default docs/growth.png; with --quick it is "
        "drawn in a temporary folder and thrown away unless given)",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        print(json.dumps(child(args.quick)))
        return 0

    command = [sys.executable, str(Path(__file__)), "--child"] + (
        ["--quick"] if args.quick else []
    )
    results = []
    started = time.perf_counter()
    env = {k: v for k, v in os.environ.items() if k != "VERSIONING_TEST_DATABASE_URL"}
    if args.database in ("sqlite", "all"):
        out = subprocess.run(
            command, env=env, check=True, stdout=subprocess.PIPE, text=True
        )
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    if args.database in ("postgres", "all"):
        pg = [
            sys.executable,
            str(ROOT / "tests" / "pgserver.py"),
            "--require",
            "--",
            *command,
        ]
        out = subprocess.run(pg, env=env, check=True, stdout=subprocess.PIPE, text=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))

    output = args.output or (None if args.quick else str(ROOT / "bench" / "results.md"))
    plot = args.plot or (None if args.quick else str(ROOT / "docs" / "growth.png"))
    link = draw(results, plot)
    if link and output:
        link = os.path.relpath(link, Path(output).resolve().parent)
    minutes = (time.perf_counter() - started) / 60
    text = report.markdown(results, args.quick, minutes, ROOT, link)
    if output:
        Path(output).write_text(text)
        # Every round's figures, to check a claim or redraw without a rerun.
        raw = Path(output).with_suffix(".json")
        raw.write_text(json.dumps(results, indent=1) + "\n")
        print(f"wrote {output} and {raw}")
    print(text)
    return 0


def draw(results, plot):
    """The growth PNG at ``plot`` (or thrown away when None): its path, or None."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("matplotlib is not installed (the bench extra has it): no plot drawn.")
        return None
    if plot is None:
        with tempfile.TemporaryDirectory() as folder:
            growth_png(results, os.path.join(folder, "growth.png"))
        print("growth plot drawn (quick run: not kept)")
        return None
    growth_png(results, plot)
    print(f"wrote {plot}")
    return str(Path(plot).resolve())


if __name__ == "__main__":
    sys.exit(main())
