"""
Indexes for versioned models.

Every version of an object lives in the model's own table, so a plain index on
a data field holds an entry for every version, and a lookup of current rows
through it reads past history. ``CurrentIndex`` indexes current rows only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django.db import models

if TYPE_CHECKING:
    from django.db.backends.base.schema import BaseDatabaseSchemaEditor
    from django.db.backends.ddl_references import Statement

__all__ = ["CurrentIndex"]

#: The rows a current-rows index holds: those of current versions.
CURRENT_ROWS = models.Q(valid_to__isnull=True)


class CurrentIndex(models.Index):
    """
    An index of the current rows only: ``Index`` with the condition
    ``valid_to IS NULL``. Lookups through ``Model.objects`` (which reads
    current rows) use it, and its size follows the number of objects, not of
    versions. Takes ``Index``'s arguments except ``condition``.

        class Meta:
            indexes = [CurrentIndex(fields=["email"], name="person_email_current")]

    Partial indexes exist on PostgreSQL and SQLite; other databases skip it
    (Django's models.W037).
    """

    suffix = "cur"

    def __init__(self, *expressions: Any, **kwargs: Any) -> None:
        if "condition" in kwargs:
            raise TypeError(
                "CurrentIndex() has its own condition (current rows only); "
                "for another condition use models.Index(condition=...)."
            )
        # Set after Index's checks: unlike a conditional Index it may go
        # unnamed, and Django names it from the fields and the suffix.
        super().__init__(*expressions, **kwargs)
        self.condition = CURRENT_ROWS

    def deconstruct(self) -> tuple[str, Sequence[Any], dict[str, Any]]:
        _, expressions, kwargs = super().deconstruct()
        del kwargs["condition"]
        return "versioning.CurrentIndex", expressions, kwargs


class AsOfIndex(models.Index):
    """
    The index that reads a whole table as of a moment. A BRIN index on
    PostgreSQL: versions are appended in time order, so a summary of each
    block range answers as well as a b-tree at a three-hundredth of its size. A
    b-tree elsewhere: on SQLite it holds both columns of the query, so rows
    that were not current at the moment are skipped without reading them.
    """

    def create_sql(
        self,
        model: type[models.Model],
        schema_editor: BaseDatabaseSchemaEditor,
        using: str = "",
        **kwargs: Any,
    ) -> Statement:
        if schema_editor.connection.vendor == "postgresql":
            using = " USING brin"
        return super().create_sql(model, schema_editor, using=using, **kwargs)
