from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.core.management.base import CommandError, CommandParser, OutputWrapper
from django.db import connections, transaction
from django.db.models import F, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from versioning.fixup import referring_fields
from versioning.management import arguments
from versioning.management.base import VersionedModelCommand
from versioning.statements import batch_size, plain_rows

if TYPE_CHECKING:
    from versioning.models import Versioned


class Command(VersionedModelCommand):
    help = (
        "Remove old historical versions, in batches. Never removes a current row "
        "or a version that another row points at (a pinned key, a referrer of a "
        "deleted object, a versioned referrer's history). Examples: "
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
        total = candidates.count()
        referenced = self.referenced(model, using)
        kept = candidates.filter(referenced).count() if referenced else 0
        removable = candidates.exclude(referenced) if referenced else candidates
        to_remove = total - kept
        label = model._meta.label
        if options["dry_run"]:
            self.say(
                f"Would remove {to_remove} historical version(s) of {label}; "
                f"{kept} more match but other rows point at them and stay. "
                "Nothing was deleted (--dry-run)."
            )
            return

        removed = reclaimed = 0
        progress = Progress(self.stdout, to_remove, options["verbosity"])
        while True:
            pks = list(removable.order_by("pk").values_list("pk", flat=True)[:size])
            if not pks:
                break
            with transaction.atomic(using=using):
                reclaimed += row_bytes(model, using, pks)
                _, per_model = plain_rows(model, using).filter(pk__in=pks).delete()
            removed += per_model.get(label, 0)
            progress.update(removed)
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
        if kept:
            self.say(f"Kept {kept} old version(s) that other rows point at.")

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

    def referenced(self, model: type[Versioned], using: str) -> Q:
        condition = Q()
        for field in referring_fields(model, include_pinned=True):
            pointed_at = field.model._base_manager.using(using).filter(
                **{f"{field.attname}__isnull": False}
            )
            condition |= Q(pk__in=pointed_at.values(field.attname))
        return condition


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
    """A bar on a terminal, plain lines otherwise."""

    def __init__(self, stdout: OutputWrapper, total: int, verbosity: int) -> None:
        self.stdout, self.total, self.verbosity = stdout, total, verbosity
        self.terminal = stdout.isatty()

    def update(self, done: int) -> None:
        if self.verbosity < 1 or not self.total:
            return
        if self.terminal:
            filled = int(30 * done / self.total)
            self.stdout.write(
                f"\r[{'#' * filled}{'.' * (30 - filled)}] {done}/{self.total}",
                ending="",
            )
            self.stdout.flush()
        else:
            self.stdout.write(f"pruned {done}/{self.total}")

    def finish(self) -> None:
        if self.terminal and self.verbosity >= 1 and self.total:
            self.stdout.write("")
