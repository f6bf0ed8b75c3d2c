from __future__ import annotations

import datetime
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.core.management.base import CommandError, CommandParser, OutputWrapper
from django.db import IntegrityError, connections, transaction
from django.db.models import F, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from versioning.management import arguments
from versioning.management.base import VersionedModelCommand
from versioning.references import own_link_keys, referenced_versions
from versioning.statements import batch_size, plain_rows

if TYPE_CHECKING:
    from versioning.models import Versioned


class Command(VersionedModelCommand):
    help = (
        "Remove old historical versions, in batches. Never removes a current row "
        "or a version that anything points at (a foreign, pinned or one-to-one "
        "key, a versioned referrer's history, another object's many-to-many "
        "link, a generic foreign key), and never deletes another model's rows; "
        "a removed version's own links go with it. Examples: "
        "manage.py prune catalog.Product --keep 10 ; "
        "manage.py prune catalog.Product --older-than 365d --dry-run"
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--keep",
            help="keep the N newest versions of every object (current included)",
        )
        parser.add_argument(
            "--older-than",
            help="remove versions closed longer ago than this: 45s, 30m, 12h, 90d, 2w",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="count what would go; delete nothing"
        )
        parser.add_argument("--batch-size", default="1000", help="rows per batch")

    def handle(self, *args: Any, **options: Any) -> None:
        model = arguments.versioned_model(options["model"])
        using = options["database"]
        if not options["keep"] and not options["older_than"]:
            raise CommandError(
                "Say what to prune: --keep N, --older-than DURATION, or both."
            )
        keep = options["keep"] and arguments.positive(options["keep"], "--keep")
        older_than = options["older_than"] and arguments.duration(options["older_than"])
        size = min(
            arguments.positive(options["batch_size"], "--batch-size"), batch_size(using)
        )

        candidates = self.candidates(model, using, keep, older_than)
        plan = plan_removal(model, using, candidates, size)
        label = model._meta.label
        batches = math.ceil(len(plan.removable) / size)
        planned = (
            f"{len(plan.removable)} historical version(s) of {label} in "
            f"{batches} batch(es) of up to {size}"
        )
        if plan.kept:
            planned += (
                f"; {len(plan.kept)} more match but other rows point at them and stay"
            )
        planned += "."
        if options["dry_run"]:
            self.say(f"Would remove {planned} Nothing was deleted (--dry-run).")
            self.explain(plan.kept_by)
            return

        self.say(f"Removing {planned}")
        removed = reclaimed = 0
        kept_by = {name: set(pks) for name, pks in plan.kept_by.items()}
        progress = Progress(self.stdout, len(plan.removable), self.verbosity)
        for start in range(0, len(plan.removable), size):
            batch = plan.removable[start : start + size]
            removal = remove_versions(model, using, batch)
            removed += removal.removed
            reclaimed += removal.reclaimed
            for name, pks in removal.kept_by.items():
                kept_by.setdefault(name, set()).update(pks)
            progress.update(removal.removed, removed)
        progress.finish()
        space = (
            f"; about {reclaimed / 1024:.1f} KiB of row data freed "
            "(reusable after VACUUM)"
            if connections[using].vendor == "postgresql"
            else ""
        )
        self.say(
            self.style.SUCCESS(
                f"Removed {removed} historical version(s) of {label}{space}."
            )
        )
        kept = set().union(*kept_by.values())
        if kept:
            self.say(f"Kept {len(kept)} old version(s) that other rows point at.")
        self.explain(kept_by)

    def explain(self, kept_by: dict[str, set[Any]]) -> None:
        """With --verbosity 2, what keeps the versions that stay."""
        if self.verbosity >= 2:
            for name, pks in sorted(kept_by.items()):
                self.say(f"  {len(pks)} pointed at by {name}")

    def candidates(
        self,
        model: type[Versioned],
        using: str,
        keep: int | None,
        older_than: datetime.timedelta | None,
    ) -> QuerySet[Any]:
        rows = model.all_versions.using(using).filter(valid_to__isnull=False)
        if older_than:
            rows = rows.filter(valid_to__lt=timezone.now() - older_than)
        if keep:
            latest = (
                model._base_manager.filter(identity=OuterRef("identity"))
                .order_by("-version")
                .values("version")[:1]
            )
            rows = rows.alias(latest=Coalesce(Subquery(latest), 0)).filter(
                version__lte=F("latest") - keep
            )
        return rows


@dataclass
class Plan:
    """The candidates prune removes, and those it keeps, by what points at them."""

    removable: list[Any]
    kept_by: dict[str, set[Any]]

    @property
    def kept(self) -> set[Any]:
        return set().union(*self.kept_by.values())


@dataclass
class Removal:
    removed: int
    reclaimed: int
    kept_by: dict[str, set[Any]]


def plan_removal(
    model: type[Versioned], using: str, candidates: QuerySet[Any], size: int
) -> Plan:
    """
    Sort the candidates, batch by batch, into those nothing refers to and
    those something does. The dry run reports this plan and the real run
    carries it out, so both answer alike; what points at a version is judged
    on the rows as they are before anything is removed.
    """
    plan = Plan(removable=[], kept_by={})
    pks = candidates.order_by("pk").values_list("pk", flat=True)
    batch = list(pks[:size])
    while batch:
        referenced = referenced_versions(model, using, batch)
        held = set().union(*referenced.values())
        plan.removable.extend(pk for pk in batch if pk not in held)
        for name, found in referenced.items():
            plan.kept_by.setdefault(name, set()).update(found)
        batch = list(pks.filter(pk__gt=batch[-1])[:size])
    return plan


def remove_versions(model: type[Versioned], using: str, pks: list[Any]) -> Removal:
    """
    Delete these historical rows and their own links, nothing else: a row
    that something started pointing at since the plan was made stays. Rows
    go by plain DELETE statements, never through Django's collector, so no
    on_delete rule cascades into another model (and no delete signals are
    sent); a key written concurrently makes the database refuse the batch.
    """
    try:
        with transaction.atomic(using=using):
            referenced = referenced_versions(model, using, pks)
            held = set().union(*referenced.values())
            pks = [pk for pk in pks if pk not in held]
            if not pks:
                return Removal(0, 0, referenced)
            reclaimed = row_bytes(model, using, pks)
            for key in own_link_keys(model):
                links = plain_rows(key.model, using).filter(
                    **{f"{key.attname}__in": pks}
                )
                links._raw_delete(using)
            removed = plain_rows(model, using).filter(pk__in=pks)._raw_delete(using)
    except IntegrityError as error:
        raise CommandError(
            f"Another row started pointing at a version of {model._meta.label} "
            "while prune was removing it, so that batch was left as it was. "
            f"Run prune again. ({str(error).splitlines()[0]})"
        ) from error
    return Removal(removed, reclaimed, referenced)


def row_bytes(model: Any, using: str, pks: Iterable[Any]) -> int:
    connection = connections[using]
    if connection.vendor != "postgresql":
        return 0
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT COALESCE(SUM(pg_column_size(t.*)), 0) FROM "
            f"{quote(model._meta.db_table)} t WHERE {quote(model._meta.pk.column)} "
            f"= ANY(%s)",
            [list(pks)],
        )
        return int(cursor.fetchone()[0])


class Progress:
    """
    A bar on a terminal; a line per batch with --verbosity 2; nothing more
    otherwise, so a scheduled run's log gets the summary lines only.
    """

    def __init__(self, stdout: OutputWrapper, total: int, verbosity: int) -> None:
        self.stdout, self.total, self.verbosity = stdout, total, verbosity
        self.bar = verbosity == 1 and stdout.isatty() and total > 0
        self.batches = 0

    def update(self, in_batch: int, done: int) -> None:
        self.batches += 1
        if self.verbosity >= 2:
            self.stdout.write(
                f"  batch {self.batches}: removed {in_batch} ({done}/{self.total})"
            )
        elif self.bar:
            filled = int(30 * done / self.total)
            self.stdout.write(
                f"\r[{'#' * filled}{'.' * (30 - filled)}] {done}/{self.total}",
                ending="",
            )
            self.stdout.flush()

    def finish(self) -> None:
        if self.bar:
            self.stdout.write("")
