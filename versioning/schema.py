"""The constraints and indexes that every concrete versioned model carries."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from django.db import models

from .indexes import CURRENT_ROWS, AsOfIndex

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.models.sql.compiler import SQLCompiler


def constraint_name(model: type[models.Model], suffix: str) -> str:
    # Index names are limited to 30 characters (models.E034); a digest of the
    # table name keeps them unique across models.
    table = model._meta.db_table
    digest = hashlib.md5(table.encode(), usedforsecurity=False).hexdigest()[:6]
    return f"{table[: 30 - len(suffix) - 8]}_{digest}_{suffix}"


def version_constraints(model: type[models.Model]) -> list[models.BaseConstraint]:
    return [
        # The database itself guarantees at most one current row per object.
        models.UniqueConstraint(
            fields=["identity"],
            condition=CURRENT_ROWS,
            name=constraint_name(model, "current"),
        ),
        # Unique (identity, version) is also the index that reads history.
        models.UniqueConstraint(
            fields=["identity", "version"], name=constraint_name(model, "version")
        ),
    ]


def version_indexes(model: type[models.Model]) -> list[models.Index]:
    # Reading one object (current row, history, as of a moment) goes through
    # the constraints' indexes on identity; this one reads a whole table as
    # of a moment.
    return [
        AsOfIndex(
            fields=["valid_from", "valid_to"], name=constraint_name(model, "asof")
        )
    ]


def add_version_constraints(model: type[models.Model]) -> None:
    """Add the version constraints and indexes unless the model's Meta has them."""
    meta = model._meta
    if meta.proxy:
        return
    names = {c.name for c in meta.constraints} | {i.name for i in meta.indexes}
    meta.constraints = [*meta.constraints] + [
        c for c in version_constraints(model) if c.name not in names
    ]
    meta.indexes = [*meta.indexes] + [
        i for i in version_indexes(model) if i.name not in names
    ]
    # Migrations read these options only when the model's Meta "declared" them.
    meta.original_attrs["constraints"] = meta.constraints
    meta.original_attrs["indexes"] = meta.indexes


def version_constraint_names(model: type[models.Model]) -> frozenset[str]:
    return frozenset(
        {constraint_name(model, "current"), constraint_name(model, "version")}
    )


def version_constraint_columns(model: Any) -> tuple[set[str], set[str]]:
    """The columns SQLite names when one of the version constraints fails."""
    identity = model._meta.get_field("identity").column
    version = model._meta.get_field("version").column
    return ({identity}, {identity, version})


class RandomUUID(models.Func):
    """
    A new random UUID for each row, made by the database: the default that
    gives each row existing when a model becomes versioned its own identity.
    """

    output_field = models.UUIDField()

    # Narrower than the stubs' Func.as_sql: no function/template arguments,
    # and the params come back as a list, as Django's own backends return them.
    def as_sql(  # type: ignore[override]
        self,
        compiler: SQLCompiler,
        connection: BaseDatabaseWrapper,
        **extra_context: Any,
    ) -> tuple[str, list[Any]]:
        try:
            return RANDOM_UUID_SQL[connection.vendor], []
        except KeyError:
            raise NotImplementedError(
                f"versioning cannot make random UUIDs on {connection.vendor}."
            ) from None


#: Hexadecimal (SQLite, MySQL, Oracle store UUIDs as 32 characters) or uuid.
RANDOM_UUID_SQL = {
    "postgresql": "gen_random_uuid()",
    "sqlite": "lower(hex(randomblob(16)))",
    "mysql": "REPLACE(UUID(), '-', '')",
    "oracle": "LOWER(RAWTOHEX(SYS_GUID()))",
}
