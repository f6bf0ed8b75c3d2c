"""
An experiment, not a test: can a versioned table be partitioned by time on
PostgreSQL, which of its constraints survive, and what does it cost?

    python tests/pgserver.py -- python bench/partitioning.py [--objects N]

The tables are written by hand as the app lays a versioned model out (its
constraint and index names aside): id, identity, version, valid_from,
valid_to, a data column; at most one current row per identity; unique
(identity, version). One copy is a plain table, the other is partitioned by
RANGE (valid_to): closed rows in one partition per month of their valid_to,
current rows (valid_to IS NULL) in the DEFAULT partition. It prints which
statements PostgreSQL accepts or refuses, which partitions each read visits,
what two concurrent closes of one row raise, and per-operation times of the
partitioned table as a ratio of the plain one's (medians of interleaved
rounds). docs/replicas.md reports the results.
"""

from __future__ import annotations

import argparse
import datetime
import re
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.pgserver import database_from_environment  # noqa: E402

#: Monthly partitions, from 11 months ago to the next month: a row closed now
#: needs this month's partition (see main's output).
MONTHS = 13
_today = datetime.date.today()
START = datetime.date(
    _today.year - (_today.month <= 11), (_today.month - 12) % 12 + 1, 1
).isoformat()

COLUMNS = """
    id bigserial,
    identity uuid NOT NULL,
    version integer NOT NULL,
    valid_from timestamptz NOT NULL,
    valid_to timestamptz,
    name text NOT NULL
"""

PLAIN = f"""
CREATE TABLE plain ({COLUMNS}, PRIMARY KEY (id));
CREATE UNIQUE INDEX plain_current ON plain (identity) WHERE valid_to IS NULL;
CREATE UNIQUE INDEX plain_version ON plain (identity, version);
"""


def partitioned_schema() -> str:
    months = [
        f"CREATE TABLE parted_{month:02d} PARTITION OF parted FOR VALUES "
        f"FROM ('{START}'::date + interval '{month} month') "
        f"TO ('{START}'::date + interval '{month + 1} month');"
        for month in range(MONTHS)
    ]
    return "\n".join(
        [
            f"CREATE TABLE parted ({COLUMNS}) PARTITION BY RANGE (valid_to);",
            # Current rows: NULL matches no range, only the default partition.
            "CREATE TABLE parted_current PARTITION OF parted DEFAULT;",
            "ALTER TABLE parted_current ADD CHECK (valid_to IS NULL);",
            *months,
            # The closest thing to a primary key a partitioned table allows.
            "CREATE UNIQUE INDEX parted_id ON parted (id, valid_to) "
            "NULLS NOT DISTINCT;",
            # One current row per identity, on the partition that holds every
            # current row; (identity, version) unique on each partition.
            "CREATE UNIQUE INDEX parted_current_identity ON parted_current (identity);",
            "CREATE UNIQUE INDEX parted_current_version "
            "ON parted_current (identity, version);",
            *(
                f"CREATE UNIQUE INDEX parted_{m:02d}_version "
                f"ON parted_{m:02d} (identity, version);"
                for m in range(MONTHS)
            ),
        ]
    )


def moment(days: int) -> str:
    """``days`` after the first partition starts."""
    return (datetime.date.fromisoformat(START) + datetime.timedelta(days)).isoformat()


# What PostgreSQL accepts ---------------------------------------------------------

ATTEMPTS = [
    (
        "primary key (id) on the partitioned table",
        "CREATE TABLE t (id bigint PRIMARY KEY, valid_to timestamptz) "
        "PARTITION BY RANGE (valid_to)",
    ),
    (
        "primary key (id, valid_to): current rows have no valid_to",
        "CREATE TABLE t (id bigint, valid_to timestamptz, PRIMARY KEY (id, valid_to)) "
        "PARTITION BY RANGE (valid_to); CREATE TABLE t_d PARTITION OF t DEFAULT; "
        "INSERT INTO t VALUES (1, NULL)",
    ),
    (
        "unique (identity, version) on the partitioned table",
        "CREATE UNIQUE INDEX ON parted (identity, version)",
    ),
    (
        "unique (identity) WHERE valid_to IS NULL on the partitioned table",
        "CREATE UNIQUE INDEX ON parted (identity) WHERE valid_to IS NULL",
    ),
    (
        "unique (id, valid_to) NULLS NOT DISTINCT on the partitioned table",
        "CREATE UNIQUE INDEX ON parted (id, valid_to) NULLS NOT DISTINCT",
    ),
    (
        "a foreign key to the partitioned table's id",
        "CREATE TABLE referrer (item_id bigint REFERENCES parted (id))",
    ),
    (
        "partitioned by valid_from: one current row per identity",
        "CREATE TABLE f (identity uuid, valid_from timestamptz, valid_to timestamptz) "
        "PARTITION BY RANGE (valid_from); "
        "CREATE UNIQUE INDEX ON f (identity) WHERE valid_to IS NULL",
    ),
    (
        "a second current row of one identity",
        "INSERT INTO parted (identity, version, valid_from, name) "
        "SELECT identity, version + 100, now(), 'twin' FROM parted_current LIMIT 1",
    ),
]


def try_statements(connection: psycopg.Connection) -> None:
    print("What PostgreSQL accepts:")
    for what, sql in ATTEMPTS:
        try:
            with connection.transaction():
                connection.execute(sql)
                raise Rollback
        except Rollback:
            print(f"  accepted  {what}")
        except psycopg.Error as error:
            first = str(error).splitlines()[0]
            print(f"  refused   {what}: {first}")


class Rollback(Exception):
    pass


# Loading ---------------------------------------------------------------------------


def load(connection: psycopg.Connection, table: str, objects: int, versions: int):
    """``objects`` objects with ``versions`` versions each, spread over the months."""
    step = f"interval '{MONTHS * 30 // versions} days'"
    connection.execute(
        f"""
        INSERT INTO {table} (identity, version, valid_from, valid_to, name)
        SELECT o.identity, v,
               '{START}'::timestamptz + (v - 1) * {step} + o.n * interval '1 second',
               CASE WHEN v < {versions}
                    THEN '{START}'::timestamptz + v * {step} + o.n * interval '1 second'
               END,
               'object ' || o.n || ' version ' || v
        FROM (SELECT n, gen_random_uuid() AS identity
              FROM generate_series(1, {objects}) n) o,
             generate_series(1, {versions}) v
        """
    )
    connection.execute(f"ANALYZE {table}")


def visited_partitions(connection: psycopg.Connection, sql: str, params) -> list[str]:
    plan = connection.execute("EXPLAIN (COSTS OFF) " + sql, params).fetchall()
    return sorted(
        {name for (line,) in plan for name in re.findall(r" on (parted_\w+)", line)}
    )


# Reads and writes, timed ------------------------------------------------------------

CURRENT = "SELECT name FROM {t} WHERE identity = %s AND valid_to IS NULL"
AS_OF = (
    "SELECT name FROM {t} WHERE identity = %s AND valid_from <= %s "
    "AND (valid_to > %s OR valid_to IS NULL)"
)
HISTORY = "SELECT version, name FROM {t} WHERE identity = %s ORDER BY version"
# The app's save on PostgreSQL: close the loaded row if it is still current,
# insert the next version, in one statement.
SAVE = """
WITH closed AS (
    UPDATE {t} SET valid_to = now()
    WHERE identity = %s AND version = %s AND valid_to IS NULL
    RETURNING identity, version, valid_to
)
INSERT INTO {t} (identity, version, valid_from, name)
SELECT identity, version + 1, valid_to, 'saved' FROM closed
RETURNING version
"""


def timed(connection, sql, params_list) -> float:
    """Seconds per statement, over ``params_list``."""
    started = time.perf_counter()
    for params in params_list:
        connection.execute(sql, params).fetchall()
    return (time.perf_counter() - started) / len(params_list)


def measure(connection, rounds: int, identities: list[uuid.UUID]) -> dict:
    early, recent = moment(45), moment(330)
    operations = {
        "current row by identity": (CURRENT, lambda i: (i,)),
        "as_of(early) of one object": (AS_OF, lambda i: (i, early, early)),
        "as_of(recent) of one object": (AS_OF, lambda i: (i, recent, recent)),
        "history() of one object": (HISTORY, lambda i: (i,)),
    }
    ratios: dict[str, list[float]] = {name: [] for name in [*operations, "save"]}
    absolute: dict[str, list[float]] = {name: [] for name in ratios}
    chunk = len(identities) // rounds
    for number in range(rounds):
        sample = identities[number * chunk : (number + 1) * chunk]
        order = ("plain", "parted") if number % 2 == 0 else ("parted", "plain")
        for name, (sql, params) in operations.items():
            seconds = {
                t: timed(connection, sql.format(t=t), [params(i) for i in sample])
                for t in order
            }
            ratios[name].append(seconds["parted"] / seconds["plain"])
            absolute[name].append(seconds["plain"])
        seconds = {}
        for t in order:
            versions = dict(
                connection.execute(
                    f"SELECT identity, version FROM {t} "
                    "WHERE valid_to IS NULL AND identity = ANY(%s)",
                    [sample],
                ).fetchall()
            )
            started = time.perf_counter()
            for identity in sample:
                with connection.transaction():
                    connection.execute(SAVE.format(t=t), (identity, versions[identity]))
            seconds[t] = (time.perf_counter() - started) / len(sample)
        ratios["save"].append(seconds["parted"] / seconds["plain"])
        absolute["save"].append(seconds["plain"])
    return {
        name: (
            statistics.median(ratios[name]),
            min(ratios[name]),
            max(ratios[name]),
            statistics.median(absolute[name]),
        )
        for name in ratios
    }


def concurrent_close(dsn: str) -> str:
    """Two transactions close the same current row; what does the second get?"""
    first = psycopg.connect(dsn)
    second = psycopg.connect(dsn)
    identity, version = first.execute(
        "SELECT identity, version FROM parted_current LIMIT 1"
    ).fetchone()
    first.execute(SAVE.format(t="parted"), (identity, version))  # holds the lock
    outcome: list[str] = []

    def close_again() -> None:
        try:
            rows = second.execute(
                SAVE.format(t="parted"), (identity, version)
            ).fetchall()
            outcome.append(f"no error, {len(rows)} row(s) inserted")
            second.rollback()
        except psycopg.Error as error:
            second.rollback()
            outcome.append(f"SQLSTATE {error.sqlstate}: {str(error).splitlines()[0]}")

    waiting = threading.Thread(target=close_again)
    waiting.start()
    # Commit once the second transaction waits for the row's lock.
    pid = second.info.backend_pid
    for _ in range(3000):
        if first.execute(
            "SELECT NOT granted FROM pg_locks WHERE pid = %s AND NOT granted LIMIT 1",
            [pid],
        ).fetchone():
            break
        time.sleep(0.01)
    first.commit()
    waiting.join()
    first.close()
    second.close()
    return outcome[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--objects", type=int, default=20_000)
    parser.add_argument("--versions", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    database = database_from_environment()
    if database is None:
        print("Run it under tests/pgserver.py: it needs a PostgreSQL server.")
        return 1
    dsn = (
        f"host={database['HOST']} port={database['PORT']} "
        f"user={database['USER']} dbname={database['NAME']}"
    )
    with psycopg.connect(dsn, autocommit=True) as connection:
        version = connection.execute("SHOW server_version").fetchone()[0]
        commit = connection.execute("SHOW synchronous_commit").fetchone()[0]
        print(f"PostgreSQL {version}, synchronous_commit={commit}")
        connection.execute("DROP TABLE IF EXISTS plain, parted, referrer, f, t CASCADE")
        connection.execute(PLAIN)
        connection.execute(partitioned_schema())
        load(connection, "plain", args.objects, args.versions)
        # The same rows in both tables, keys included.
        connection.execute("INSERT INTO parted SELECT * FROM plain")
        connection.execute(
            "SELECT setval(pg_get_serial_sequence('parted', 'id'), max(id)) FROM parted"
        )
        connection.execute("ANALYZE parted")
        rows = args.objects * args.versions
        print(
            f"{args.objects:,} objects x {args.versions} versions = {rows:,} rows "
            "each, "
            f"{MONTHS} monthly partitions + the current rows' default partition\n"
        )
        try_statements(connection)

        identity = connection.execute("SELECT identity FROM plain LIMIT 1").fetchone()[
            0
        ]
        print("\nPartitions each read visits:")
        for name, sql, params in [
            ("current row by identity", CURRENT, (identity,)),
            ("as_of(recent)", AS_OF, (identity, moment(330), moment(330))),
            ("as_of(early)", AS_OF, (identity, moment(45), moment(45))),
            ("history()", HISTORY, (identity,)),
        ]:
            visited = visited_partitions(connection, sql.format(t="parted"), params)
            print(f"  {name}: {len(visited)} ({', '.join(visited)})")

        print("\nTwo saves from one version, concurrently (READ COMMITTED):")
        print(f"  the second gets: {concurrent_close(dsn)}")

        identities = [
            row[0]
            for row in connection.execute(
                "SELECT identity FROM plain WHERE valid_to IS NULL ORDER BY random() "
                "LIMIT %s",
                [args.rounds * 300],
            )
        ]
        print(
            f"\nPartitioned / plain, median of {args.rounds} rounds (lowest-highest):"
        )
        for name, (median, low, high, plain) in measure(
            connection, args.rounds, identities
        ).items():
            print(
                f"  {name:30} {median:5.2f}  ({low:.2f}-{high:.2f})   "
                f"plain: {plain * 1e6:6.0f} µs"
            )
        connection.execute("DROP TABLE IF EXISTS plain, parted CASCADE")
    return 0


if __name__ == "__main__":
    sys.exit(main())
