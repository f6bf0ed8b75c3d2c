from collections import Counter
from collections.abc import Iterable
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.db import models
from django.db.models import Count, ProtectedError, RestrictedError

from versioning.deletion import PurgeCollector
from versioning.exceptions import VersioningError
from versioning.management import arguments
from versioning.management.base import VersionedModelCommand
from versioning.statements import plain_rows


class Command(VersionedModelCommand):
    help = (
        "Really delete every version of the given objects, for erasure requests. "
        "Referrers' on_delete applies as in a normal delete. Example: "
        "manage.py purge catalog.Product 3 7 --dry-run"
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "objects",
            nargs="+",
            help="identities (UUIDs) or primary keys of any version",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="list what would go; delete nothing"
        )
        parser.add_argument(
            "--no-input",
            "--noinput",
            action="store_false",
            dest="interactive",
            help="do not ask for confirmation",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        model = arguments.versioned_model(options["model"])
        using = options["database"]
        identities = {
            arguments.identity_of(model, reference, using)
            for reference in options["objects"]
        }
        rows = model.all_versions.using(using).filter(identity__in=identities)
        stored = dict(
            rows.order_by()
            .values("identity")
            .annotate(versions=Count("pk"))
            .values_list("identity", "versions")
        )
        label = model._meta.label
        dry_run = options["dry_run"]
        self.say(
            f"{sum(stored.values())} version(s) of {len(identities)} {label} "
            f"object(s) {'would be' if dry_run else 'will be'} deleted for good:"
        )
        for identity in sorted(identities, key=str):
            latest = rows.filter(identity=identity).order_by("-version").first()
            self.say(f"  {identity}  {latest}  ({stored[identity]} version(s))")
        purged = plain_rows(model, using).filter(identity__in=identities)
        try:
            total, per_model = planned_deletion(purged)
        except ProtectedError as error:
            raise CommandError(blocked(error.protected_objects)) from None
        except RestrictedError as error:
            raise CommandError(blocked(error.restricted_objects)) from None
        except VersioningError as error:
            raise CommandError(f"{error} Nothing was deleted.") from None
        self.say(
            f"{'Would purge' if dry_run else 'Will purge'} {total} row(s): "
            f"{rows_text(per_model)}."
        )
        if dry_run:
            self.say("Nothing was deleted (--dry-run).")
            return
        if options["interactive"]:
            answer = input("This cannot be undone. Type 'yes' to purge: ")
            if answer.strip().lower() != "yes":
                # As Django's flush: declining is an answer, not a failure.
                self.stdout.write("Purge cancelled; nothing was deleted.")
                return
        try:
            total, per_model = rows.purge()
        except ProtectedError as error:
            raise CommandError(blocked(error.protected_objects)) from None
        except RestrictedError as error:
            raise CommandError(blocked(error.restricted_objects)) from None
        except VersioningError as error:
            raise CommandError(f"{error} Nothing was deleted.") from None
        self.say(self.style.SUCCESS(f"Purged {total} row(s): {rows_text(per_model)}."))


def planned_deletion(rows: models.QuerySet[Any]) -> tuple[int, dict[str, int]]:
    """
    What ``rows.purge()`` would return, without deleting: the collector it
    uses gathers the same rows, referrers' on_delete included, and refuses
    what it refuses.
    """
    collector = PurgeCollector(rows.db, origin=rows)
    collector.collect(rows)
    counts: Counter[str] = Counter()
    for fast in collector.fast_deletes:
        counts[fast.model._meta.label] += fast.count()
    for model, instances in collector.data.items():
        counts[model._meta.label] += len(instances)
    per_model = {name: count for name, count in counts.items() if count}
    return sum(per_model.values()), per_model


def rows_text(per_model: dict[str, int]) -> str:
    return ", ".join(f"{n} {name}" for name, n in sorted(per_model.items()))


def blocked(referrers: Iterable[models.Model]) -> str:
    labels = sorted({obj._meta.label for obj in referrers})
    return (
        f"Cannot purge: rows of {', '.join(labels)} still refer to these versions "
        "with on_delete=PROTECT or RESTRICT. Delete or re-point them first; "
        "nothing was deleted."
    )
