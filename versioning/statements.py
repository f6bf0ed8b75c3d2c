"""
The statements the write engine sends: closing rows, matching the keys of a
set-based write in batches, and building new versions inside the database
from the rows they replace.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Iterator
from typing import Any, cast

from django.db import connections, models
from django.db.models import Case, F, Max, Q, Value, When
from django.db.models.functions import Cast, Greatest

from . import fixup
from .context import who_and_why
from .exceptions import HistoricalVersionError, VersioningError
from .tracking import (
    bookkeeping_attnames,
    forget_moment,
    is_expression,
    remember_loaded_values,
)

#: Rows handled per statement by the set-based writes; memory stays flat.
BATCH_SIZE = 2000


def plain_rows(model: type[models.Model], using: str) -> models.QuerySet:
    """Every row, through Django's own QuerySet: writes here are in place."""
    return models.QuerySet(model=model, using=using)


def identity_rows(instance: Any, using: str) -> models.QuerySet:
    return plain_rows(type(instance), using).filter(identity=instance.identity)


def close_version(
    model: Any, using: str, now: datetime.datetime, row: Any
) -> dict[str, Any] | None:
    """
    Close ``row`` if it is still current. Returns None when it was not (the
    write is stale), else the values its keys to versioned models hold now:
    the related-field fixup may have re-pointed them in place since ``row``
    was loaded.
    """
    connection = connections[using]
    keys = fixup.followed_keys(model)
    returning = bool(keys) and connection.features.can_return_columns_from_insert
    sql, params = closing_statement(model, connection, now, row, returning=returning)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if returning:
            closed = cursor.fetchall()
            if len(closed) != 1:
                return None
            return {f.attname: value for f, value in zip(keys, closed[0], strict=True)}
        if cursor.rowcount != 1:
            return None
    if not keys:
        return {}
    # A database that cannot return rows from an UPDATE reads them instead.
    return (
        plain_rows(model, using)
        .filter(pk=row.pk)
        .values(*[f.attname for f in keys])
        .get()
    )


def closing_statement(
    model: Any,
    connection: Any,
    now: datetime.datetime,
    row: Any,
    *,
    returning: bool,
) -> tuple[str, list[Any]]:
    """
    The UPDATE that closes ``row`` if it is still current, returning its
    keys to versioned models when asked. The row is matched by pk, identity,
    version and valid_from, so that a key left over from a rolled-back
    transaction, reused for another row, is never closed. The hot path of
    every save, so the statement is built once per model.
    """
    meta = model._meta
    matched_fields = [meta.pk, *(meta.get_field(name) for name in ROW_MATCH)]
    cache_key = (meta.label, connection.vendor, returning)
    sql = _closing_sql.get(cache_key)
    if sql is None:
        quote = connection.ops.quote_name
        valid_to = quote(meta.get_field("valid_to").column)
        matched = " AND ".join(f"{quote(f.column)} = %s" for f in matched_fields)
        sql = (
            f"UPDATE {quote(meta.db_table)} SET {valid_to} = %s "
            f"WHERE {matched} AND {valid_to} IS NULL"
        )
        if returning:
            keys = fixup.followed_keys(model)
            sql += " RETURNING " + ", ".join(quote(f.column) for f in keys)
        _closing_sql[cache_key] = sql
    params = [meta.get_field("valid_to").get_db_prep_save(now, connection)] + [
        field.get_db_prep_save(getattr(row, field.attname), connection)
        for field in matched_fields
    ]
    return sql, params


_closing_sql: dict[tuple[str, str, bool], str] = {}


class RowNotCurrent(Exception):  # noqa: N818 (a condition, not a fault)
    """The row a write was to close is no longer current: nothing was written."""


def closes_while_inserting(connection: Any) -> bool:
    """
    Whether the INSERT of a new version can close the row it replaces in the
    same statement: PostgreSQL's data-modifying WITH, with RETURNING.
    """
    return connection.vendor == "postgresql"


class ClosingInsert:
    """
    An execute wrapper, installed by ``Versioned._do_insert()``, that makes
    Django's INSERT of a new version close the row it replaces in the same
    statement (PostgreSQL):

        WITH closed AS (UPDATE ... SET valid_to = ... WHERE <the loaded row>
                        AND valid_to IS NULL RETURNING 1)
        INSERT INTO ... (<columns>) SELECT <Django's values> FROM closed
        RETURNING ...

    Django still builds the INSERT (field pre_save(), parameter preparation,
    db_default and returned columns as for any save); only its VALUES row
    becomes a SELECT from the closed row, so nothing is inserted unless the
    loaded row was still current: then RowNotCurrent is raised, and the
    statement has changed nothing.
    """

    def __init__(
        self, model: Any, connection: Any, now: datetime.datetime, row: Any
    ) -> None:
        meta = model._meta
        quote = connection.ops.quote_name
        self.close_sql, self.close_params = closing_statement(
            model, connection, now, row, returning=False
        )
        self.head = f"{connection.ops.insert_statement()} {quote(meta.db_table)} ("
        identity = meta.get_field("identity")
        self.identity = identity.get_db_prep_save(row.identity, connection)
        self.done = False

    def __call__(
        self, execute: Any, sql: str, params: Any, many: bool, context: dict
    ) -> Any:
        # Installed around Django's _do_insert() of the new version: its
        # INSERT, once, and nothing else.
        if self.done or many or not sql.startswith(self.head):
            return execute(sql, params, many, context)
        if self.identity not in params:
            return execute(sql, params, many, context)
        self.done = True
        params = (*self.close_params, *params)
        result = execute(self.closing(sql), params, many, context)
        if context["cursor"].rowcount != 1:
            raise RowNotCurrent
        return result

    def closing(self, insert: str) -> str:
        """``insert`` with its VALUES row selected from the closed row."""
        columns, values_found, rest = insert[len(self.head) :].partition(") VALUES (")
        values, end_found, returning = rest.rpartition(")")
        if not (values_found and end_found) or not (
            returning == "" or returning.startswith(" RETURNING ")
        ):
            # Never insert without closing: that would fork the history.
            raise VersioningError(
                f"Cannot close the replaced row in the insert of a new version: "
                f"this Django builds it as {insert!r}. Please report it."
            )
        return (
            f"WITH closed AS ({self.close_sql} RETURNING 1) "
            f"{self.head}{columns}) SELECT {values} FROM closed{returning}"
        )


#: With the pk, what names one stored row exactly: a key may be reused
#: after a rollback, never together with these.
ROW_MATCH = ("identity", "version", "valid_from")


def row_match(obj: Any) -> Q:
    """The stored row ``obj`` was loaded from or written as, and no other."""
    return Q(pk=obj.pk, **{name: getattr(obj, name) for name in ROW_MATCH})


def close_rows(
    model: type[models.Model], using: str, now: datetime.datetime, condition: Q
) -> int:
    """Close the matched rows that are still current; return how many were."""
    return (
        plain_rows(model, using)
        .filter(condition, valid_to__isnull=True)
        .update(valid_to=Greatest(F("valid_from"), Value(now)))
    )


def batch_size(using: str, requested: int | None = None) -> int:
    """Rows per batch, within the backend's limit on query parameters."""
    size = min(requested or BATCH_SIZE, BATCH_SIZE)
    limit = connections[using].features.max_query_params
    return min(size, limit - 50) if limit else size


def matched_pk_batches(queryset: models.QuerySet[Any], size: int) -> Iterator[list]:
    """
    The matched rows' keys, each once, a batch at a time in key order, so
    that memory stays flat however many rows match. New versions get larger
    keys than any row matched at the start, so they are never matched again.
    A historical row among them is refused: history is never rewritten.
    """
    rows = queryset.order_by("pk").values_list("pk", "valid_to").distinct()
    first = refuse_historical(queryset.model, rows[:size])
    if len(first) < size:
        yield first
        return
    model = queryset.model
    if not isinstance(model._meta.pk, models.AutoField):
        # Keys made in Python (UUIDs) are not ordered by age: take them all.
        yield from chunked(refuse_historical(model, rows), size)
        return
    ceiling = plain_rows(model, queryset.db).aggregate(ceiling=Max("pk"))["ceiling"]
    batch = first
    while batch:
        yield batch
        if len(batch) < size:
            return
        batch = refuse_historical(
            model, rows.filter(pk__gt=batch[-1], pk__lte=ceiling)[:size]
        )


def refuse_historical(
    model: type[models.Model], rows: Iterable[tuple[Any, Any]]
) -> list:
    pks = []
    for pk, valid_to in rows:
        if valid_to is not None:
            raise HistoricalVersionError(
                f"{model._meta.object_name} row {pk} is a historical version and "
                "cannot be changed: history is never rewritten. Change current "
                "versions only."
            )
        pks.append(pk)
    return pks


def chunked(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def per_object_assignments(
    model: Any,
    using: str,
    batch: list[Any],
    targets: list[models.Field],
) -> dict[models.Field, Any]:
    """Case/When assignments giving each object its own values and who/why."""
    connection = connections[using]
    casting = connection.features.requires_casted_case_in_updates

    def case(field: models.Field, values: list[Any]) -> Case | Cast:
        statement = Case(
            *(
                When(
                    pk=obj.pk,
                    then=value if is_expression(value) else Value(value, field),
                )
                for obj, value in zip(batch, values, strict=True)
            ),
            output_field=field,
        )
        # PostgreSQL types a CASE of NULLs as text; Django casts too.
        return Cast(statement, output_field=field) if casting else statement

    assignments = {
        field: case(field, [getattr(obj, field.attname) for obj in batch])
        for field in targets
    }
    chosen = [who_and_why(obj) for obj in batch]
    user_field = model._meta.get_field("changed_by")
    reason_field = model._meta.get_field("change_reason")
    assignments[user_field] = case(user_field.target_field, [c.user_id for c in chosen])
    assignments[reason_field] = case(reason_field, [c.reason for c in chosen])
    return assignments


def adopt_new_versions(
    model: type[models.Model],
    using: str,
    objs: list[Any],
    targets: list[models.Field],
) -> None:
    """Make each Python object the new version, as save() does."""
    by_identity = {obj.identity: obj for obj in objs}
    # Values assigned as expressions are read back as the database computed them.
    computed = [
        f.attname
        for f in targets
        if any(is_expression(obj.__dict__.get(f.attname)) for obj in objs)
    ]
    # So are generated columns, and keys the fixup re-pointed in place.
    generated = [f.attname for f in model._meta.concrete_fields if f.generated]
    followed = [f.attname for f in fixup.followed_keys(model)]
    attnames = (*bookkeeping_attnames(model), *computed, *generated, *followed)
    rows = (
        plain_rows(model, using)
        .filter(identity__in=list(by_identity), valid_to__isnull=True)
        .values_list(*attnames)
    )
    identity_index = attnames.index("identity")
    for values in rows:
        obj = by_identity[values[identity_index]]
        for attname, value in zip(attnames, values, strict=True):
            obj.__dict__[attname] = value
        if obj._state.fields_cache.get("changed_by") is not None:
            if obj._state.fields_cache["changed_by"].pk != obj.changed_by_id:
                del obj._state.fields_cache["changed_by"]
        # Only the listed fields were written; other edits stay pending.
        remember_loaded_values(obj, [*attnames, *(f.attname for f in targets)])
        forget_moment(obj)


def new_row_expressions(
    model: Any, assignments: dict[models.Field, Any]
) -> dict[models.Field, Any]:
    """What each column of a new version is, computed from the closed row."""
    meta = model._meta
    chosen = who_and_why()
    fixed = {
        "identity": F("identity"),
        "version": F("version") + 1,
        # The closed row's valid_to is exactly the new row's valid_from.
        "valid_from": F("valid_to"),
        "valid_to": Value(None, output_field=meta.get_field("valid_to")),
        "changed_by": Value(
            chosen.user_id, output_field=meta.get_field("changed_by").target_field
        ),
        "change_reason": Value(chosen.reason, output_field=models.TextField()),
    }
    expressions = {}
    for field in meta.concrete_fields:
        if field.primary_key or field.generated:
            continue
        if field in assignments:
            value = assignments[field]
            if not hasattr(value, "resolve_expression"):
                if isinstance(value, models.Model):
                    value = value.pk
                value = Value(value, output_field=field)
            expressions[field] = value
        elif field.name in fixed:
            expressions[field] = fixed[field.name]
        elif getattr(field, "auto_now", False):
            expressions[field] = Value(
                field.pre_save(model(), add=False), output_field=field
            )
        else:
            expressions[field] = F(field.attname)
    return expressions


def insert_new_versions(
    model: type[models.Model],
    using: str,
    pks: list[Any],
    assignments: dict[models.Field, Any],
) -> None:
    expressions = new_row_expressions(model, assignments)
    aliases = {f"versioning_new_{i}": e for i, e in enumerate(expressions.values())}
    source = (
        plain_rows(model, using)
        .filter(pk__in=pks)
        .annotate(**aliases)
        .values_list(*aliases)
    )
    pk = model._meta.pk
    if not isinstance(pk, models.AutoField):
        # Keys made in Python (a UUID default) need the rows in Python.
        objs = []
        for values in source:
            obj = model(
                **{f.attname: v for f, v in zip(expressions, values, strict=True)}
            )
            obj.pk = pk.get_default()
            objs.append(obj)
        plain_rows(model, using).bulk_create(objs)
        return
    connection = connections[using]
    quote = connection.ops.quote_name
    select_sql, params = source.query.get_compiler(using).as_sql()
    columns = ", ".join(quote(cast(str, f.column)) for f in expressions)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(model._meta.db_table)} ({columns}) {select_sql}",
            params,
        )
