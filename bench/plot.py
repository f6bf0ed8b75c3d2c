"""The cost-growth curves as a PNG (docs/growth.png), drawn with matplotlib."""

from __future__ import annotations

import statistics

from bench.growth import DEPTHS, OPERATIONS

DATABASES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
# Edits cost several times a read: each gets its own row of panels.
ROWS = (("edit",), ("identity", "code", "as_of"))
COLOURS = {"edit": "C0", "identity": "C1", "code": "C2", "as_of": "C3"}


def growth_png(results, path):
    """
    One column per database and table size, edits above and reads below:
    median µs against versions per object, the lowest–highest round as error
    bars. Flat lines are the goal.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        (result["database"], growth)
        for result in results
        for growth in result["growth"]
    ]
    figure, axes = plt.subplots(
        len(ROWS), len(panels), figsize=(4.4 * len(panels), 7.5), squeeze=False
    )
    for column, (database, growth) in enumerate(panels):
        for row, operations in enumerate(ROWS):
            axis = axes[row][column]
            for op in operations:
                draw_operation(axis, op, growth["medians"][op])
            axis.set_xscale("log")
            axis.set_xticks(DEPTHS, [f"{d:,}" for d in DEPTHS])
            axis.set_ylim(bottom=0, top=axis.get_ylim()[1] * 1.1)
            axis.grid(True, alpha=0.3)
        axes[0][column].set_title(
            f"{DATABASES.get(database, database)}, {growth['rows']:,} rows in all"
        )
        axes[-1][column].set_xlabel("versions per object")
    for row in axes:
        row[0].set_ylabel("µs, median of rounds")
    handles, labels = [], []
    for row in axes:
        row_handles, row_labels = row[0].get_legend_handles_labels()
        handles += row_handles
        labels += row_labels
    figure.legend(handles, labels, loc="lower center", ncol=2)
    figure.suptitle("Cost growth: error bars span the lowest and highest round")
    figure.tight_layout(rect=(0, 0.07, 1, 1))
    figure.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(figure)


def draw_operation(axis, op, by_depth):
    rounds = [sorted(by_depth[str(d)]) for d in DEPTHS]
    medians = [statistics.median(r) * 1e6 for r in rounds]
    low = [m - r[0] * 1e6 for m, r in zip(medians, rounds, strict=True)]
    high = [r[-1] * 1e6 - m for m, r in zip(medians, rounds, strict=True)]
    axis.errorbar(
        DEPTHS,
        medians,
        yerr=[low, high],
        label=OPERATIONS[op],
        color=COLOURS[op],
        marker="o",
        capsize=3,
    )
