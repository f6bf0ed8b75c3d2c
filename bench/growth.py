"""
Cost growth: one edit and three reads of one object, at 1, 10, 100 and 1,000
versions per object, in tables of a given number of rows in all.

Each depth has its own table (benchapp.GrowthDepthN) filled set-based, so every
depth is measured in the same rounds, in alternating order, and compared per
round with depth 1: flat lines are ratios near 1. Runs inside the benchmark's
child process, after Django is set up.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import itertools
import statistics
import time
import uuid

DEPTHS = (1, 10, 100, 1000)
OPERATIONS = {
    "edit": "single edit: save()",
    "identity": "current row by identity",
    "code": "current row by an indexed data field",
    "as_of": "as_of() of one object",
}
# Versions of the filled history are this far apart, oldest first.
STEP = datetime.timedelta(minutes=1)
BATCH = 5000


def models_by_depth():
    from bench.benchapp import models

    return {depth: getattr(models, f"GrowthDepth{depth}") for depth in DEPTHS}


def identity_of(number):
    """Object number → identity; PostgreSQL's md5(number::text)::uuid."""
    return uuid.UUID(hashlib.md5(str(number).encode()).hexdigest())


def code_of(number):
    return f"code-{number}"


def spread(objects, count):
    """``count`` object numbers spread evenly over 1..objects."""
    return [1 + i * objects // count for i in range(count)]


def fill(model, rows, depth, start):
    """
    ``rows`` rows in all: rows // depth objects of ``depth`` versions each,
    inserted in the order they would have been written (version 1 of every
    object, then version 2, …), so one object's versions share no page.
    """
    from django.db import connection

    table = connection.ops.quote_name(model._meta.db_table)
    objects = rows // depth
    column = {
        f.name: connection.ops.quote_name(f.column) for f in model._meta.concrete_fields
    }
    if connection.vendor == "postgresql":
        # Building the indexes once over a filled table is several times faster
        # than maintaining them row by row.
        with without_indexes(model), connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {table}")
            cursor.execute(
                f"INSERT INTO {table} ({column['identity']}, {column['version']}, "
                f"{column['valid_from']}, {column['valid_to']}, "
                f"{column['changed_by']}, {column['change_reason']}, "
                f"{column['title']}, {column['body']}, {column['counter']}, "
                f"{column['code']}) "
                "SELECT md5(o::text)::uuid, v, %(start)s + (v - 1) * %(step)s, "
                "CASE WHEN v = %(depth)s THEN NULL "
                "ELSE %(start)s + v * %(step)s END, "
                "NULL, '', 'growth', 'b', v, 'code-' || o "
                "FROM generate_series(1, %(depth)s) AS v "
                "CROSS JOIN generate_series(1, %(objects)s) AS o ORDER BY v, o",
                {"start": start, "step": STEP, "depth": depth, "objects": objects},
            )
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM ANALYZE {table}")
        return
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table}")
    # Elsewhere (SQLite) through the ORM, which knows how identity is stored.
    versions = (
        model(
            identity=identity_of(o),
            version=v,
            valid_from=start + (v - 1) * STEP,
            valid_to=None if v == depth else start + v * STEP,
            title="growth",
            body="b",
            counter=v,
            code=code_of(o),
        )
        for v in range(1, depth + 1)
        for o in range(1, objects + 1)
    )
    while batch := list(itertools.islice(versions, BATCH)):
        model.all_versions.bulk_create(batch)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {table}")


@contextlib.contextmanager
def without_indexes(model):
    """Drop the model's Meta indexes and constraints, and put them back after."""
    from django.db import connection

    meta = model._meta
    with connection.schema_editor() as editor:
        for index in meta.indexes:
            editor.remove_index(model, index)
        for constraint in meta.constraints:
            editor.remove_constraint(model, constraint)
    yield
    with connection.schema_editor() as editor:
        for index in meta.indexes:
            editor.add_index(model, index)
        for constraint in meta.constraints:
            editor.add_constraint(model, constraint)


def samplers(model, rows, depth, start, edits, lookups):
    """Per operation, a callable timing the i-th sample of that operation."""
    objects = rows // depth
    looked_up = spread(objects, min(objects, lookups))
    identities = [identity_of(n) for n in looked_up]
    codes = [code_of(n) for n in looked_up]
    # Each edit goes to the next of these, so edits add few versions to each.
    edited = [
        model.objects.get(identity=identity_of(n))
        for n in spread(objects, min(objects, edits))
    ]
    # Half-way through every object's filled history.
    moment = start + (depth // 2) * STEP + STEP / 2
    clock = time.perf_counter

    def edit(i):
        obj = edited[i % len(edited)]
        obj.counter += 1
        began = clock()
        obj.save()
        return clock() - began

    def by_identity(i):
        identity = identities[i % len(identities)]
        began = clock()
        model.objects.get(identity=identity)
        return clock() - began

    def by_code(i):
        code = codes[i % len(codes)]
        began = clock()
        model.objects.get(code=code)
        return clock() - began

    def as_of(i):
        identity = identities[i % len(identities)]
        began = clock()
        model.objects.as_of(moment).get(identity=identity)
        return clock() - began

    return {"edit": edit, "identity": by_identity, "code": by_code, "as_of": as_of}


def measure(rows, rounds, edits, lookups):
    """
    Per operation and depth, the median seconds of each round: ``edits``
    edits and ``lookups`` lookups per round, operation and depth.
    """
    from django.utils import timezone

    start = timezone.now() - STEP * (max(DEPTHS) + 60)
    by_depth = models_by_depth()
    for depth, model in by_depth.items():
        fill(model, rows, depth, start)
    runners = {
        depth: samplers(model, rows, depth, start, edits * rounds, lookups)
        for depth, model in by_depth.items()
    }
    counts = {"edit": edits, "identity": lookups, "code": lookups, "as_of": lookups}
    medians = {op: {str(depth): [] for depth in DEPTHS} for op in OPERATIONS}
    taken = {op: {depth: 0 for depth in DEPTHS} for op in OPERATIONS}
    for number in range(rounds):
        order = DEPTHS if number % 2 == 0 else tuple(reversed(DEPTHS))
        for op in OPERATIONS:
            for depth in order:
                sample = runners[depth][op]
                first = taken[op][depth]
                seconds = [sample(first + i) for i in range(counts[op])]
                taken[op][depth] += counts[op]
                medians[op][str(depth)].append(statistics.median(seconds))
    return {
        "rows": rows,
        "rounds": rounds,
        "edits": edits,
        "lookups": lookups,
        "objects": {str(depth): rows // depth for depth in DEPTHS},
        "medians": medians,
    }
