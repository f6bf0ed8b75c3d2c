from __future__ import annotations

import csv
import datetime
import json
from typing import TYPE_CHECKING, Any

from django.core.management.base import (
    CommandError,
    CommandParser,
    DjangoHelpFormatter,
)
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from versioning.history import PREVIOUS_VERSION_PRUNED, history_with_changes
from versioning.links import Links
from versioning.management import arguments
from versioning.management.base import VersionedModelCommand
from versioning.tracking import BOOKKEEPING_FIELD_NAMES

if TYPE_CHECKING:
    from versioning.models import Versioned

SHORT = 40


def shorten(value: Any) -> str:
    text = "∅" if value is None else str(value)
    text = " ".join(text.split()) or '""'
    return text if len(text) <= SHORT else text[: SHORT - 1] + "…"


class Command(VersionedModelCommand):
    help = (
        "Show every version of one object, or recent changes across a model.\n\n"
        "Examples:\n"
        "  manage.py history catalog.Product 3\n"
        "  manage.py history catalog.Product 5b9d…-uuid --format json\n"
        "  manage.py history catalog.Product 3 --as-of '2026-11-27 14:00'\n"
        "  manage.py history catalog.Product --since 2026-11-01 --limit 20"
    )

    def create_parser(self, *args: Any, **kwargs: Any) -> CommandParser:
        class KeepNewlines(DjangoHelpFormatter):
            def _fill_text(self, text: str, width: int, indent: str) -> str:
                return "".join(indent + line for line in text.splitlines(True))

        parser = super().create_parser(*args, **kwargs)
        parser.formatter_class = KeepNewlines
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "object",
            nargs="?",
            help="identity (UUID) or primary key of any version; omit with --since",
        )
        parser.add_argument("--as-of", help="show the version current at this moment")
        parser.add_argument(
            "--since", help="without OBJECT: versions made since this moment"
        )
        parser.add_argument(
            "--format", choices=["table", "json", "csv"], default="table"
        )
        parser.add_argument("--limit", help="show at most the N newest versions")

    def handle(self, *args: Any, **options: Any) -> None:
        model = arguments.versioned_model(options["model"])
        using = options["database"]
        limit = options["limit"] and arguments.positive(options["limit"], "--limit")
        as_of = options["as_of"] and arguments.moment(options["as_of"], "--as-of")
        since = options["since"] and arguments.moment(options["since"], "--since")
        rows = model.all_versions.using(using).select_related("changed_by")

        versions: Any  # a queryset, then the list of its rows
        if options["object"] is None:
            if since is None:
                raise CommandError(
                    "Name an OBJECT (identity or primary key), or use --since "
                    "DATETIME to list recent changes across the model."
                )
            versions = rows.filter(valid_from__gte=since).order_by("-valid_from", "-pk")
        else:
            if since is not None:
                raise CommandError(
                    "--since lists changes across the model; drop OBJECT."
                )
            identity = arguments.identity_of(model, options["object"], using)
            versions = rows.filter(identity=identity).order_by("-version")
            if as_of is not None:
                versions = versions.as_of(as_of)
        versions = list(versions[:limit] if limit else versions)
        versions.reverse()
        if options["object"] is not None and as_of is not None and not versions:
            raise CommandError(
                f"The object did not exist at {as_of.isoformat()} "
                "(not yet created, or deleted then)."
            )
        records = self.records(model, versions)
        getattr(self, f"write_{options['format']}")(model, records)

    def records(
        self, model: type[Versioned], versions: list[Any]
    ) -> list[dict[str, Any]]:
        return [
            {
                "object": str(entry.version),
                "version": entry.version.version,
                "pk": entry.version.pk,
                "identity": entry.version.identity,
                "valid_from": entry.version.valid_from,
                "valid_to": entry.version.valid_to,
                "deleted": entry.deleted,
                "changed_by": entry.version.changed_by.get_username()
                if entry.version.changed_by
                else None,
                "change_reason": entry.version.change_reason,
                "previous_pruned": entry.previous_pruned,
                "changes": {
                    name: [old, new] for name, (old, new) in entry.changes.items()
                },
                "data": {
                    field.name: field.value_from_object(entry.version)
                    for field in model._meta.concrete_fields
                    if field.name not in BOOKKEEPING_FIELD_NAMES
                },
            }
            for entry in history_with_changes(versions)
        ]

    def write_json(self, model: type[Versioned], records: list[dict[str, Any]]) -> None:
        self.stdout.write(json.dumps(records, cls=ExactJSONEncoder, indent=2))

    def write_csv(self, model: type[Versioned], records: list[dict[str, Any]]) -> None:
        data_names = list(records[0]["data"]) if records else []
        writer = csv.writer(self.stdout, lineterminator="\n")
        fixed = ["version", "pk", "identity", "valid_from", "valid_to", "deleted"]
        fixed += ["changed_by"]
        writer.writerow(
            [*fixed, "change_reason", "previous_pruned", "changes", *data_names]
        )
        encoder = ExactJSONEncoder()
        for record in records:
            writer.writerow(
                [
                    *(csv_value(record[name]) for name in fixed),
                    record["change_reason"],
                    csv_value(record["previous_pruned"]),
                    encoder.encode(record["changes"]),
                    *(csv_value(record["data"][name]) for name in data_names),
                ]
            )

    def write_table(
        self, model: type[Versioned], records: list[dict[str, Any]]
    ) -> None:
        if not records:
            self.stdout.write("No versions.")
            return
        first = records[0]
        one_object = len({r["identity"] for r in records}) == 1
        if one_object:
            self.stdout.write(
                self.style.MIGRATE_HEADING(
                    f"{model._meta.label} {first['identity']} "
                    f"({shorten(first['object'])}): {len(records)} version(s) shown"
                )
            )
        header = ["version", "pk", "valid_from", "valid_to", "changed_by", "reason"]
        if not one_object:
            header.insert(0, "object")
        rows = [
            [
                *([] if one_object else [shorten(r["object"])]),
                str(r["version"]),
                str(r["pk"]),
                moment_text(r["valid_from"]),
                moment_text(r["valid_to"]) if r["valid_to"] else "current",
                r["changed_by"] or "-",
                shorten(r["change_reason"]) if r["change_reason"] else "-",
            ]
            for r in records
        ]
        widths = [
            max(len(row[i]) for row in [header, *rows]) for i in range(len(header))
        ]
        line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
        self.stdout.write(self.style.SQL_FIELD(line + "  changes"))
        for record, row in zip(records, rows, strict=True):
            cells = "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))
            if record["version"] == 1:
                change_text = "created"
            elif record["previous_pruned"]:
                change_text = str(PREVIOUS_VERSION_PRUNED)
            elif record["changes"]:
                change_text = "; ".join(
                    f"{name}: {shorten(old)} → {shorten(new)}"
                    for name, (old, new) in record["changes"].items()
                )
            else:
                change_text = "restored, no field changed"
            if record["deleted"]:
                change_text += "; then deleted"
            self.stdout.write(f"{cells}  {change_text}")
            if self.verbosity >= 2:
                for name, value in record["data"].items():
                    self.stdout.write(f"{'':{len(cells)}}    {name} = {shorten(value)}")


class ExactJSONEncoder(DjangoJSONEncoder):
    """Keeps microseconds: DjangoJSONEncoder rounds datetimes to milliseconds."""

    def default(self, o: Any) -> Any:
        if isinstance(o, datetime.datetime):
            return o.isoformat()
        if isinstance(o, Links):
            return [str(obj) for obj in o.objects]
        return super().default(o)


def moment_text(value: datetime.datetime | None) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S") if value else ""


def csv_value(value: Any) -> str:
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)
