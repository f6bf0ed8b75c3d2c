"""The benchmark's results as markdown (bench/results.md)."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess

from bench.growth import DEPTHS, OPERATIONS

APPROACHES = {
    "plain": "plain Django save() (no history)",
    "versioning": "versioning: save()",
    "plain_in_atomic": "plain Django save() inside your atomic()",
    "versioning_in_atomic": "versioning: save() inside your atomic()",
    "history_atomic": "simple-history: save() in atomic()",
    "history": "simple-history: save() in autocommit",
    "reversion": "reversion: save() in create_revision()",
    "hand_orm": "hand-written close + insert (ORM, one transaction)",
    "hand_sql": "hand-written close + insert (raw SQL, one transaction)",
}
BULK = {
    "plain": "plain `update()` (no history)",
    "versioning": "versioning `update()`",
    "history": "simple-history `bulk_update_with_history`",
    "reversion": "reversion: save() loop in one revision",
    "hand_orm": "hand-written: one closing UPDATE + one `bulk_create`",
}
CURRENT = {
    "plain": "plain Django, `get(pk=…)` (fewer columns)",
    "same_columns": "plain Django with a versioned row's columns, `get(pk=…)`",
    "versioning": "versioning, `objects.get(identity=…)`",
    "versioning_pk": "versioning, `objects.get(pk=…)`",
    "history": "simple-history, `get(pk=…)`",
    "reversion": "reversion, `get(pk=…)`",
}
HISTORY = {
    "versioning": "versioning, `all_versions.filter(identity=…)`",
    "history": "simple-history, `history.filter(id=…)`",
    "reversion": "reversion, `Version.objects.get_for_object()`",
}
STORAGE = {
    "plain": "plain Django (current rows only, no history)",
    "versioning": "versioning",
    "history": "simple-history (model table + history table)",
    "reversion": "reversion (model table + versions + revisions)",
}


def ratios(rounds, base_rounds):
    return sorted(a / b for a, b in zip(rounds, base_rounds, strict=True))


def ratio_text(rounds, base_rounds):
    values = ratios(rounds, base_rounds)
    return f"{statistics.median(values):.2f}× ({values[0]:.2f}–{values[-1]:.2f})"


def microseconds_text(rounds):
    values = sorted(rounds)
    return (
        f"{statistics.median(values) * 1e6:.0f} "
        f"({values[0] * 1e6:.0f}–{values[-1] * 1e6:.0f})"
    )


def code_version(root):
    """The commit measured, and whether the work tree differed from it."""

    def git(*args):
        return subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True
        ).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return "not a git checkout"
    changed = git("status", "--porcelain", "--untracked-files=no")
    return f"commit {commit}" + (" with uncommitted changes" if changed else "")


def markdown(results, quick, minutes, root, plot=None):
    lines = [
        "# Benchmark results",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}. "
        f"Code: {code_version(root)}.",
        f"Command: `python bench/run.py{' --quick' if quick else ''}` "
        "(`make bench`). Ratios are medians of per-round ratios with the "
        "lowest–highest round in brackets; times are medians of per-round medians, "
        "bracketed the same way; lower is better. The whole run took "
        f"{minutes:.1f} minutes.",
        "",
    ]
    for result in results:
        lines += [
            f"## {result['durability']}",
            "",
            f"This database's run took {result['seconds'] / 60:.1f} minutes.",
            "",
        ]
        lines += single_edits(result)
        lines += bulk_changes(result)
        lines += reads(result)
        lines += storage(result)
        for growth in result["growth"]:
            lines += growth_table(growth)
    if plot:
        lines += [f"![Cost growth]({plot})", ""]
    return "\n".join(lines)


def single_edits(result):
    sizes, single = result["sizes"], result["single"]
    lines = [
        "### Single-row edit, each in its own transaction "
        f"({sizes['rounds']} rounds × {sizes['edits']} edits)",
        "",
        "An edit inside your `atomic()` is compared with a plain save() inside one; "
        "SQL statements leave out transaction control.",
        "",
        "| approach | median µs | p95 µs | SQL statements | vs plain "
        "| vs hand-written (ORM) |",
        "|---|---:|---:|---:|---|---|",
    ]
    for name, data in single.items():
        # An edit inside the caller's transaction compares with a plain one there.
        plain = "plain_in_atomic" if name.endswith("_in_atomic") else "plain"
        lines.append(
            f"| {APPROACHES[name]} | {data['median_us']:.0f} | "
            f"{data['p95_us']:.0f} | {data['statements']} | "
            f"{ratio_text(data['rounds'], single[plain]['rounds'])} | "
            f"{ratio_text(data['rounds'], single['hand_orm']['rounds'])} |"
        )
    return [*lines, ""]


def bulk_changes(result):
    sizes, bulk = result["sizes"], result["bulk"]
    lines = [
        f"### Changing {sizes['bulk_rows']:,} rows at once "
        f"({sizes['bulk_rounds']} rounds)",
        "",
        "| approach | median seconds | vs plain update() "
        "| vs hand-written UPDATE + bulk_create |",
        "|---|---:|---|---|",
    ]
    for name, data in bulk.items():
        lines.append(
            f"| {BULK[name]} | {statistics.median(data['rounds']):.3f} | "
            f"{ratio_text(data['rounds'], bulk['plain']['rounds'])} | "
            f"{ratio_text(data['rounds'], bulk['hand_orm']['rounds'])} |"
        )
    return [*lines, ""]


def reads(result):
    sizes, current, history = (
        result["sizes"],
        result["reads"]["current"],
        result["reads"]["history"],
    )
    floor = current["same_columns"]["rounds"]
    lines = [
        f"### Reads with {sizes['objects']:,} objects × {sizes['versions']} versions "
        f"({sizes['rounds']} rounds)",
        "",
    ]
    lines += lookup_table(
        "The current row, one lookup at a time",
        "lookups",
        current,
        CURRENT,
        ["µs per lookup", "vs plain with the same columns"],
        lambda data: [
            microseconds_text(data["rounds"]),
            ratio_text(data["rounds"], floor),
        ],
    )
    lines += lookup_table(
        f"One object's full history ({sizes['versions']} versions)",
        "objects",
        history,
        HISTORY,
        ["µs per object", "vs simple-history"],
        lambda data: [
            microseconds_text(data["rounds"]),
            ratio_text(data["rounds"], history["history"]["rounds"]),
        ],
    )
    return lines


def lookup_table(title, what, table, labels, headers, figures):
    """
    One row per approach, its cells ``figures(data)``. How many lookups each
    round timed is said once, in the title, when every approach took as many,
    else in a column (a peer slow to look up may take fewer).
    """
    counts = {data["lookups"] for data in table.values()}
    same = len(counts) == 1
    if same:
        title += f", {counts.pop():,} {what} per round and approach"
    else:
        headers = [f"{what} per round", *headers]
    lines = [
        f"{title}:",
        "",
        "| approach | " + " | ".join(headers) + " |",
        "|---|" + "---:|" * (len(headers) - 1) + "---|",
    ]
    for name, data in table.items():
        cells = figures(data) if same else [f"{data['lookups']:,}", *figures(data)]
        lines.append(f"| {labels[name]} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def storage(result):
    sizes = result["storage"]
    lines = [
        "### Storage, tables plus indexes",
        "",
        "One measurement after the reads' history was written, so no spread.",
        "",
        "| approach | MB | vs simple-history |",
        "|---|---:|---:|",
    ]
    for name, size in sizes.items():
        lines.append(
            f"| {STORAGE[name]} | {size / 1e6:.1f} | {size / sizes['history']:.2f}× |"
        )
    return [*lines, ""]


def growth_table(growth):
    objects = " / ".join(f"{growth['objects'][str(d)]:,}" for d in DEPTHS)
    deepest = str(DEPTHS[-1])
    lines = [
        f"### Cost growth, {growth['rows']:,} rows in all",
        "",
        f"{growth['rounds']} rounds; per round and depth {growth['edits']} edits and "
        f"{growth['lookups']} lookups of each kind. Objects per table: {objects}. "
        "Median µs (lowest–highest round); the last column is the deepest "
        "history against 1 version, per round: flat is 1.00×.",
        "",
        "| operation | "
        + " | ".join(f"{d:,} version{'s' if d > 1 else ''}" for d in DEPTHS)
        + f" | {DEPTHS[-1]:,} vs 1 |",
        "|---|" + "---:|" * len(DEPTHS) + "---|",
    ]
    for op, label in OPERATIONS.items():
        by_depth = growth["medians"][op]
        lines.append(
            f"| {label} | "
            + " | ".join(microseconds_text(by_depth[str(d)]) for d in DEPTHS)
            + f" | {ratio_text(by_depth[deepest], by_depth['1'])} |"
        )
    return [*lines, ""]
