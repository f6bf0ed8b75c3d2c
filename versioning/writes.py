"""
Set-based writes: update() and bulk_update() version every matched row with a
few statements per batch, building the new rows inside the database.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

from django.core.exceptions import FieldDoesNotExist
from django.db import OperationalError, connections, models, transaction
from django.db.models import Case, F, Max, OuterRef, Subquery, Value, When
from django.utils import timezone

from . import context
from .exceptions import HistoricalVersionError, StaleVersionError, VersioningError
from .fixup import (
    LinkTable,
    copied_columns,
    copy_links,
    is_versioned,
    link_tables,
    referring_fields,
)
from .query import batch_size, close_rows, ensure_all_closed


def update_versions(queryset, values: dict[str, Any]) -> int:
    model = queryset.model
    using = queryset.db
    assignments = resolve_assignments(model, values)
    versioned = 0
    with retryable_conflicts(model), transaction.atomic(using=using):
        for pks in matched_pk_batches(queryset, batch_size(using)):
            version_rows(model, using, pks, assignments)
            versioned += len(pks)
    return versioned


def matched_pk_batches(queryset, size: int) -> Iterator[list]:
    """
    The matched rows' keys, a batch at a time in key order, so that memory
    stays flat however many rows match. New versions get larger keys than
    any row matched at the start, so they are never matched again.
    """
    pks = queryset.order_by("pk").values_list("pk", flat=True)
    first = list(pks[:size])
    if len(first) < size:
        yield first
        return
    meta = queryset.model._meta
    if not isinstance(meta.pk, models.AutoField):
        # Keys made in Python (UUIDs) are not ordered by age: take them all.
        yield from chunked(list(pks), size)
        return
    ceiling = queryset.model._base_manager.using(queryset.db).aggregate(
        ceiling=Max("pk")
    )["ceiling"]
    batch = first
    while batch:
        yield batch
        if len(batch) < size:
            return
        batch = list(pks.filter(pk__gt=batch[-1], pk__lte=ceiling)[:size])


def chunked(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@contextmanager
def retryable_conflicts(model):
    """Turn a deadlock or serialization failure into StaleVersionError."""
    try:
        yield
    except OperationalError as error:
        cause = error.__cause__
        code = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
        if code in {"40P01", "40001"}:
            raise StaleVersionError(
                f"Writing {model._meta.verbose_name_plural} collided with another "
                "transaction writing the same rows; nothing was written. Run the "
                "write again."
            ) from error
        raise


def bulk_update_versions(queryset, objs, fields, requested=None) -> int:
    model = queryset.model
    if requested is not None and requested <= 0:
        raise ValueError("Batch size must be a positive integer.")
    if not fields:
        raise ValueError("Field names must be given to bulk_update().")
    targets = [assignable_field(model, name) for name in fields]
    objs = list(objs)
    for obj in objs:
        if obj._state.adding or obj.pk is None:
            raise ValueError("All bulk_update() objects must have a primary key set.")
        if obj.valid_to is not None:
            raise HistoricalVersionError(
                f"bulk_update() got {obj._label()}, a historical version; pass "
                "current versions only."
            )
    changed = [obj for obj in objs if has_changes(obj, targets)]
    using = queryset.db
    # Each object adds a When() per field to the statement's parameters.
    size = max(batch_size(using, requested) // (2 * len(targets) + 1), 1)
    with retryable_conflicts(model), transaction.atomic(using=using):
        for start in range(0, len(changed), size):
            batch = changed[start : start + size]
            assignments = {
                field: Case(
                    *(
                        When(
                            pk=obj.pk,
                            then=Value(getattr(obj, field.attname), output_field=field),
                        )
                        for obj in batch
                    ),
                    output_field=field,
                )
                for field in targets
            }
            version_rows(model, using, [obj.pk for obj in batch], assignments)
            adopt_new_versions(model, using, batch)
    return len(changed)


def has_changes(obj, fields) -> bool:
    loaded = getattr(obj, "_loaded_values", {})
    return any(
        f.attname not in loaded or getattr(obj, f.attname) != loaded[f.attname]
        for f in fields
    )


def adopt_new_versions(model, using, objs) -> None:
    """Make each saved Python object the new version, as save() does."""
    by_identity = {obj.identity: obj for obj in objs}
    rows = (
        model._base_manager.using(using)
        .filter(identity__in=list(by_identity), valid_to__isnull=True)
        .values_list(
            "identity", "pk", "version", "valid_from", "changed_by", "change_reason"
        )
    )
    for identity, pk, version, valid_from, changed_by_id, reason in rows:
        obj = by_identity[identity]
        obj.pk, obj.version, obj.valid_from, obj.valid_to = (
            pk,
            version,
            valid_from,
            None,
        )
        obj.changed_by_id, obj.change_reason = changed_by_id, reason
        obj._remember_loaded_values()


def resolve_assignments(model, values: dict[str, Any]) -> dict[models.Field, Any]:
    if not values:
        raise ValueError("update() needs at least one field=value to change.")
    return {assignable_field(model, name): value for name, value in values.items()}


def assignable_field(model, name: str) -> models.Field:
    from .models import BOOKKEEPING_FIELD_NAMES

    try:
        field = model._meta.get_field(name)
    except FieldDoesNotExist:
        raise FieldDoesNotExist(
            f"{model._meta.object_name} has no field named '{name}'."
        ) from None
    if name in BOOKKEEPING_FIELD_NAMES or field.primary_key:
        raise VersioningError(
            f"'{name}' is managed by versioning and cannot be set by update(); "
            "use versioning.changes(user=..., reason=...) for who and why."
        )
    if not field.concrete or field.many_to_many:
        raise VersioningError(
            f"update() can only set concrete fields; '{name}' is a relation "
            "that has no column on this table."
        )
    return field


def version_rows(model, using: str, pks: list, assignments: dict) -> None:
    """Close rows ``pks`` and insert their new versions, then fix up relations."""
    if not pks:
        return
    now = timezone.now()
    ensure_all_closed(model, close_rows(model, using, now, pk__in=pks), len(pks))
    insert_new_versions(model, using, pks, assignments)
    for field in referring_fields(model):
        repoint_to_current(model, field, using, pks)
    for link in link_tables(model):
        copy_links_to_current(model, link, using, pks)


def new_row_expressions(model, assignments: dict) -> dict[models.Field, Any]:
    """What each column of a new version is, computed from the closed row."""
    user = context.current_user()
    meta = model._meta
    fixed = {
        "identity": F("identity"),
        "version": F("version") + 1,
        # The closed row's valid_to is exactly the new row's valid_from.
        "valid_from": F("valid_to"),
        "valid_to": Value(None, output_field=meta.get_field("valid_to")),
        "changed_by": Value(
            user.pk if user is not None else None,
            output_field=meta.get_field("changed_by").target_field,
        ),
        "change_reason": Value(
            context.current_reason(), output_field=models.TextField()
        ),
    }
    expressions = {}
    for field in meta.concrete_fields:
        if field.primary_key:
            continue
        if field.name in fixed:
            expressions[field] = fixed[field.name]
        elif field in assignments:
            value = assignments[field]
            if not hasattr(value, "resolve_expression"):
                if isinstance(value, models.Model):
                    value = value.pk
                value = Value(value, output_field=field)
            expressions[field] = value
        else:
            expressions[field] = F(field.attname)
    return expressions


def insert_new_versions(model, using: str, pks: list, assignments: dict) -> None:
    expressions = new_row_expressions(model, assignments)
    aliases = {f"versioning_new_{i}": e for i, e in enumerate(expressions.values())}
    source = (
        model._base_manager.using(using)
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
        model._base_manager.using(using).bulk_create(objs)
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


def current_pk_of(model, old_pk_reference):
    """A subquery: the current row's pk for the object whose old row is referenced."""
    rows = model._base_manager
    identity = rows.filter(pk=old_pk_reference).values("identity")[:1]
    return Subquery(
        rows.filter(valid_to__isnull=True, identity=Subquery(identity)).values("pk")[:1]
    )


def repoint_to_current(model, field, using: str, old_pks: list) -> None:
    rows = field.model._base_manager.using(using).filter(
        **{f"{field.attname}__in": old_pks}
    )
    if is_versioned(field.model):
        rows = rows.filter(valid_to__isnull=True)
    rows.update(
        **{field.attname: current_pk_of(model, OuterRef(OuterRef(field.attname)))}
    )


def copy_links_to_current(model, link: LinkTable, using: str, old_pks: list) -> None:
    through_meta = link.through._meta
    column = link.column_field.column
    columns = copied_columns(link)
    if columns is None:
        new_pks = dict(
            model._base_manager.using(using)
            .filter(pk__in=old_pks)
            .values_list("pk", current_pk_of(model, OuterRef("pk")))
        )
        for old_pk, new_pk in new_pks.items():
            copy_links(link, using, from_pk=old_pk, to_pk=new_pk)
        return
    connection = connections[using]
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    pk_column = quote(model._meta.pk.column)
    identity = quote(model._meta.get_field("identity").column)
    valid_to = quote(model._meta.get_field("valid_to").column)
    target = ", ".join(quote(name) for name in columns)
    source = ", ".join(
        f"new_row.{pk_column}" if name == column else f"link_row.{quote(name)}"
        for name in columns
    )
    placeholders = ", ".join(["%s"] * len(old_pks))
    params = [link.column_field.get_db_prep_value(pk, connection) for pk in old_pks]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(through_meta.db_table)} ({target}) "
            f"SELECT {source} FROM {quote(through_meta.db_table)} link_row "
            f"JOIN {table} old_row ON old_row.{pk_column} = link_row.{quote(column)} "
            f"JOIN {table} new_row ON new_row.{identity} = old_row.{identity} "
            f"AND new_row.{valid_to} IS NULL "
            f"WHERE link_row.{quote(column)} IN ({placeholders})",
            params,
        )
