from collections.abc import Iterable
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.db import models
from django.db.models import ProtectedError, RestrictedError

from versioning.management import arguments
from versioning.management.base import VersionedModelCommand


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
        count = rows.count()
        label = model._meta.label
        self.say(
            f"{count} version(s) of {len(identities)} {label} object(s) "
            f"{'would be' if options['dry_run'] else 'will be'} deleted for good:"
        )
        for identity in sorted(identities, key=str):
            latest: Any = rows.filter(identity=identity).order_by("-version").first()
            self.say(f"  {identity}  {latest}  ({latest.version} version(s))")
        if options["dry_run"]:
            self.say("Nothing was deleted (--dry-run).")
            return
        if options["interactive"]:
            answer = input("This cannot be undone. Type 'yes' to purge: ")
            if answer.strip().lower() != "yes":
                raise CommandError("Purge cancelled; nothing was deleted.")
        try:
            total, per_model = rows.purge()
        except ProtectedError as error:
            raise CommandError(blocked(error.protected_objects)) from None
        except RestrictedError as error:
            raise CommandError(blocked(error.restricted_objects)) from None
        details = ", ".join(f"{n} {name}" for name, n in sorted(per_model.items()))
        self.say(self.style.SUCCESS(f"Purged {total} row(s): {details}."))


def blocked(referrers: Iterable[models.Model]) -> str:
    labels = sorted({obj._meta.label for obj in referrers})
    return (
        f"Cannot purge: rows of {', '.join(labels)} still refer to these versions "
        "with on_delete=PROTECT or RESTRICT. Delete or re-point them first; "
        "nothing was deleted."
    )
