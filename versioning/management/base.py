"""What every versioning command shares: the model argument, --database, verbosity."""

from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import DEFAULT_DB_ALIAS


class VersionedModelCommand(BaseCommand):
    """A command about one versioned model, named as app_label.ModelName."""

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("model", help="app_label.ModelName of a versioned model")
        parser.add_argument(
            "--database",
            default=DEFAULT_DB_ALIAS,
            help="the database to use (default: %(default)s)",
        )

    def execute(self, *args: Any, **options: Any) -> str | None:
        self.verbosity = options.get("verbosity", 1)
        return super().execute(*args, **options)

    def say(self, message: str, style: Callable[[str], str] | None = None) -> None:
        """Write a line unless --verbosity 0 asked for silence."""
        if self.verbosity >= 1:
            self.stdout.write(style(message) if style else message)
