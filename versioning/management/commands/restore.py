from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError, CommandParser

import versioning
from versioning.exceptions import VersioningError
from versioning.management import arguments
from versioning.management.base import VersionedModelCommand
from versioning.models import restore_reason


class Command(VersionedModelCommand):
    help = (
        "Make an old version's data current again, as a new version. Works on "
        "deleted objects too. Example: manage.py restore catalog.Product 3 "
        "--to-version 1 --reason 'price rise reverted'"
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "object", help="identity (UUID) or primary key of any version"
        )
        # Not --version, which is Django's own "show Django's version".
        parser.add_argument(
            "--to-version",
            required=True,
            metavar="N",
            help="the version whose data to make current again",
        )
        parser.add_argument("--reason", default="", help="recorded as change_reason")
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="say what would happen; write nothing",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        model = arguments.versioned_model(options["model"])
        using = options["database"]
        identity = arguments.identity_of(model, options["object"], using)
        number = arguments.positive(options["to_version"], "--to-version")
        versions = model.all_versions.using(using).filter(identity=identity)
        chosen = versions.filter(version=number).first()
        if chosen is None:
            stored = list(
                versions.order_by("version").values_list("version", flat=True)
            )
            name = f"{model._meta.label} {identity}"
            if number > stored[-1]:
                raise CommandError(
                    f"{name} has no version {number}; its newest is {stored[-1]}."
                )
            # Versions are numbered without gaps: a missing one was pruned.
            listed = (
                f"Its stored versions: {', '.join(map(str, stored))}."
                if len(stored) <= 10
                else f"Its {len(stored)} stored versions run from {stored[0]} "
                f"to {stored[-1]}; the history command lists them."
            )
            raise CommandError(
                f"{name} has no version {number} any more: prune removed it. {listed}"
            )
        current = versions.filter(valid_to__isnull=True).first()
        if current is not None and current.pk == chosen.pk:
            self.say(f"Version {number} is the current version; nothing to do.")
            return
        if current is not None and not chosen.diff(current):
            self.say(
                f"Version {number} already matches the current version "
                f"{current.version}; nothing to do."
            )
            return
        if options["dry_run"]:
            self.say(
                f"Would restore version {number} of {model._meta.label} {identity} "
                f"({chosen}) as a new version. Nothing was written (--dry-run)."
            )
            return
        try:
            with versioning.changes(reason=options["reason"] or restore_reason(number)):
                restored = chosen.restore(using=using)
        except ValidationError as error:
            # A value another object took since, as a form would say it.
            raise CommandError(
                f"Version {number} of {model._meta.label} {identity} ({chosen}) "
                f"cannot be restored: {' '.join(error.messages)} Nothing was written."
            ) from None
        except VersioningError as error:
            raise CommandError(f"{error}") from None
        self.say(
            self.style.SUCCESS(
                f"Restored version {number} of {model._meta.label} {identity} "
                f"({restored}) as version {restored.version}."
            )
        )
