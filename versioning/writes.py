"""
The write engine. Every path that makes or closes versions (save(), restore(),
delete(), update(), bulk_update() and the managers Django uses behind related
objects) goes through the rules here, each written once: the clock, change
detection, who and why, closing rows, inserting versions, fixing up what
pointed at the closed rows, announcing new versions, and telling a stale
write from any other failure.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

from django.core.exceptions import FieldDoesNotExist, FieldError
from django.db import (
    IntegrityError,
    OperationalError,
    connections,
    models,
    transaction,
)
from django.db.models import Case, F, Max, Q, Value, When
from django.db.models.functions import Cast, Greatest
from django.db.models.sql import UpdateQuery
from django.utils import timezone

from . import context, fixup, schema, transactions
from .exceptions import HistoricalVersionError, StaleVersionError, VersioningError
from .signals import version_created
from .tracking import (
    ASSIGNED_ATTRIBUTE,
    BOOKKEEPING_FIELD_NAMES,
    LOADED_VALUES_ATTRIBUTE,
    assigned_who_and_why,
    bookkeeping_attnames,
    changed_fields,
    data_fields,
    loaded_values,
    remember_loaded_values,
    values_differ,
)

#: Rows handled per statement by the set-based writes; memory stays flat.
BATCH_SIZE = 2000


@dataclass(frozen=True)
class PendingVersion:
    """What the insert of a new version must fix up once its row exists."""

    replaces_pk: Any
    copy_links_from_pk: Any


# Entry points -----------------------------------------------------------------


def create_first_version(instance, using: str) -> None:
    """Insert version 1 of a new object."""
    with restored_on_error([instance]), transaction.atomic(using=using):
        instance.version = 1
        instance.valid_from = timezone.now()
        instance.valid_to = None
        apply_who_and_why(instance)
        instance._insert_row(using)
    remember_loaded_values(instance)
    transactions.remember_written_row(instance, transactions.commit_confirmation(using))


def save_version(instance, using: str) -> None:
    """Make the loaded current version's changes a new version, if it has any."""
    if not has_data_changes(instance, using):
        return
    # A new version never loses data the caller did not load.
    load_deferred_fields(instance, using)
    model = type(instance)
    old_pk = instance.pk
    now = version_time(instance.valid_from)
    previous = closed_copy(instance, using, now)
    with restored_on_error([instance]), stale_on_conflict(model, instance):
        with transaction.atomic(using=using):
            if not close_version(model, using, now, instance):
                raise StaleVersionError(stale_message(instance))
            resolve_expressions(instance, using)
            insert_version(
                instance,
                using,
                now,
                version=instance.version + 1,
                pending=PendingVersion(old_pk, old_pk),
                previous=previous,
            )
    remember_loaded_values(instance)
    confirmation = transactions.commit_confirmation(using)
    transactions.remember_written_row(instance, confirmation)
    fixup.follow_in_memory(instance, old_pk, confirmation)


def restore_version(instance, using: str):
    """Make ``instance``'s data current again as a new version; return it."""
    model = type(instance)
    load_deferred_fields(instance, using)
    with stale_on_conflict(model, instance), transaction.atomic(using=using):
        latest = identity_rows(instance, using).select_for_update().latest("version")
        if latest.valid_to is None and not versions_differ(instance, latest):
            return latest
        now = version_time(latest.valid_from, latest.valid_to)
        if latest.valid_to is None:
            if not close_version(model, using, now, latest):
                raise StaleVersionError(stale_message(latest))
            latest.valid_to = now
        restored = model.from_db(
            using,
            [f.attname for f in model._meta.concrete_fields],
            [getattr(latest, f.attname) for f in model._meta.concrete_fields],
        )
        for field in data_fields(model):
            setattr(restored, field.attname, field.value_from_object(instance))
        insert_version(
            restored,
            using,
            now,
            version=latest.version + 1,
            pending=PendingVersion(latest.pk, instance.pk),
            previous=latest,
        )
    remember_loaded_values(restored)
    transactions.remember_written_row(restored, transactions.commit_confirmation(using))
    return restored


def close_object(instance, using: str) -> None:
    """Close the current version (delete()): every row stays."""
    now = version_time(instance.valid_from)
    with stale_on_conflict(type(instance), instance):
        if not close_version(type(instance), using, now, instance):
            raise StaleVersionError(stale_message(instance))
    instance.valid_to = now
    remember_loaded_values(instance, ["valid_to"])
    transactions.remember_written_row(instance, transactions.commit_confirmation(using))


def update_versions(queryset, values: dict[str, Any]) -> int:
    """QuerySet.update(): a new version of every matched current row."""
    model = queryset.model
    using = queryset.db
    assignments = resolve_assignments(model, values, "update()")
    versioned = 0
    with stale_on_conflict(model), transaction.atomic(using=using):
        for pks in matched_pk_batches(queryset, batch_size(using)):
            version_rows(model, using, pks, assignments)
            versioned += len(pks)
    return versioned


def bulk_update_versions(queryset, objs, fields, requested=None) -> int:
    """
    QuerySet.bulk_update(): a new version of each object whose ``fields``
    changed, built in the database a batch at a time. The objects become the
    new versions; edits of fields not listed stay pending on them.
    """
    model = queryset.model
    using = queryset.db
    if requested is not None and requested <= 0:
        raise ValueError("Batch size must be a positive integer.")
    if not fields:
        raise ValueError("Field names must be given to bulk_update().")
    targets = [assignable_field(model, name, "bulk_update()") for name in fields]
    objs = list(objs)
    for obj in objs:
        if obj._state.adding or obj.pk is None:
            raise ValueError("All bulk_update() objects must have a primary key set.")
        if obj.valid_to is not None:
            raise HistoricalVersionError(
                f"bulk_update() got {label(obj)}, a historical version; pass "
                "current versions only."
            )
    identities = [obj.identity for obj in objs]
    if len(set(identities)) != len(identities):
        raise ValueError(
            "bulk_update() got the same object twice; pass each object once."
        )
    changed = [obj for obj in objs if any(changed_fields(obj, targets))]
    if not changed:
        return 0
    # Parameters per object: a When() per assigned column (targets, who,
    # why), its key, and the four values that match its loaded row.
    size = max(batch_size(using, requested) // (2 * (len(targets) + 2) + 5), 1)
    old_pks = [obj.pk for obj in changed]
    with restored_on_error(changed), stale_on_conflict(model):
        with transaction.atomic(using=using):
            for start in range(0, len(changed), size):
                batch = changed[start : start + size]
                previous = [closed_copy(obj, using, None) for obj in batch]
                assignments = per_object_assignments(model, using, batch, targets)
                version_rows(
                    model,
                    using,
                    [obj.pk for obj in batch],
                    assignments,
                    loaded_rows=functools.reduce(operator.or_, map(row_match, batch)),
                )
                adopt_new_versions(model, using, batch, targets)
                for obj, closed in zip(batch, previous, strict=True):
                    announce(obj, closed, using)
    confirmation = transactions.commit_confirmation(using)
    for obj, old_pk in zip(changed, old_pks, strict=True):
        transactions.remember_written_row(obj, confirmation)
        fixup.follow_in_memory(obj, old_pk, confirmation)
    return len(changed)


def close_matched(queryset) -> int:
    """QuerySet.delete(): close every matched current row in one statement."""
    model = queryset.model
    matched = queryset.order_by().values("pk")
    with stale_on_conflict(model):
        return close_rows(model, queryset.db, timezone.now(), Q(pk__in=matched))


# The rules --------------------------------------------------------------------


def version_time(*after) -> Any:
    """The moment a new version starts: now, never before what it follows."""
    return max(timezone.now(), *(moment for moment in after if moment is not None))


def has_data_changes(instance, using: str) -> bool:
    changed, unknown = changed_fields(instance, data_fields(type(instance)))
    if changed:
        return True
    if not unknown:
        return False
    # Values that were fetched without passing through from_db (a peer
    # fetch, say) are compared with the stored row.
    stored = (
        plain_rows(type(instance), using)
        .filter(pk=instance.pk)
        .values(*[f.attname for f in unknown])
        .first()
    )
    return stored is None or any(
        values_differ(f, instance.__dict__[f.attname], stored[f.attname])
        for f in unknown
    )


def versions_differ(one, other) -> bool:
    return any(
        values_differ(f, f.value_from_object(one), f.value_from_object(other))
        for f in data_fields(type(one))
    )


@dataclass(frozen=True)
class WhoAndWhy:
    user_id: Any
    user: Any  # the user object when it came from changes(), else None
    reason: str


def who_and_why(instance=None) -> WhoAndWhy:
    """
    Who made the next version of ``instance`` and why: what was assigned on
    the instance (even a value equal to the previous version's), otherwise
    the changes() block's.
    """
    user = context.current_user()
    from_context = WhoAndWhy(user.pk if user else None, user, context.current_reason())
    if instance is None:
        return from_context
    loaded = loaded_values(instance)
    assigned = assigned_who_and_why(instance)
    user_id, reason = instance.changed_by_id, instance.change_reason
    keep_user = "changed_by_id" in assigned or user_id != loaded.get("changed_by_id")
    keep_reason = "change_reason" in assigned or reason != loaded.get(
        "change_reason", ""
    )
    return WhoAndWhy(
        user_id if keep_user else from_context.user_id,
        None if keep_user else from_context.user,
        reason if keep_reason else from_context.reason,
    )


def apply_who_and_why(instance) -> None:
    chosen = who_and_why(instance)
    if chosen.user is not None:
        instance.changed_by = chosen.user
    else:
        instance.changed_by_id = chosen.user_id
    instance.change_reason = chosen.reason


def resolve_expressions(instance, using: str) -> None:
    """
    Values assigned as expressions (``obj.counter = F("counter") + 1``) are
    computed from the row being replaced, as Django's own save() would.
    """
    expressions = {
        f"versioning_{attname}": value
        for attname, value in instance.__dict__.items()
        if is_expression(value)
    }
    if not expressions:
        return
    computed = (
        plain_rows(type(instance), using)
        .filter(pk=instance.pk)
        .annotate(**expressions)
        .values(*expressions)
        .get()
    )
    for alias, value in computed.items():
        setattr(instance, alias.removeprefix("versioning_"), value)


def is_expression(value) -> bool:
    return hasattr(value, "resolve_expression")


def load_deferred_fields(instance, using: str) -> None:
    deferred = [
        f.attname
        for f in type(instance)._meta.concrete_fields
        if f.attname not in instance.__dict__ and not f.generated
    ]
    if deferred:
        instance.refresh_from_db(using=using, fields=deferred)


def closed_copy(instance, using: str, now):
    """The loaded row as it is stored once closed, for version_created."""
    if not version_created.has_listeners(type(instance)):
        return None
    model = type(instance)
    loaded = loaded_values(instance)
    fields = model._meta.concrete_fields
    values = [loaded.get(f.attname, models.DEFERRED) for f in fields]
    previous = model.from_db(using, [f.attname for f in fields], values)
    previous.__dict__[LOADED_VALUES_ATTRIBUTE] = dict(loaded)
    if now is not None:
        previous.valid_to = now
    return previous


def announce(instance, previous, using: str) -> None:
    if version_created.has_listeners(type(instance)):
        if previous is not None and previous.valid_to is None:
            previous.valid_to = instance.valid_from
        version_created.send(
            type(instance), instance=instance, previous=previous, using=using
        )


def insert_version(instance, using: str, now, *, version, pending, previous) -> None:
    """Insert ``instance`` as a new row; the model's save hooks do the fixup."""
    instance.version = version
    instance.valid_from = now
    instance.valid_to = None
    apply_who_and_why(instance)
    instance._pending_version = pending
    try:
        instance._insert_row(using)
    finally:
        instance._pending_version = None
    announce(instance, previous, using)


def fix_up_new_version(instance, using: str, pending: PendingVersion) -> None:
    """Re-point referrers of the replaced row and copy links to the new one."""
    model = type(instance)
    fixup.repoint_referrers(model, using, [pending.replaces_pk])
    fixup.copy_links(model, using, [pending.copy_links_from_pk])


@contextmanager
def restored_on_error(instances) -> Iterator[None]:
    """Put each instance's bookkeeping back as it was if the write fails."""
    saved = [
        (
            instance,
            {
                attname: value
                for attname, value in instance.__dict__.items()
                if attname in bookkeeping_attnames(type(instance))
                or is_expression(value)
            },
            dict(instance._state.fields_cache),
            instance._state.adding,
            dict(loaded_values(instance)),
            set(assigned_who_and_why(instance)),
        )
        for instance in instances
    ]
    try:
        yield
    except BaseException:
        for instance, values, cache, adding, loaded, assigned in saved:
            instance.__dict__.update(values)
            instance._state.fields_cache = cache
            instance._state.adding = adding
            instance.__dict__[LOADED_VALUES_ATTRIBUTE] = loaded
            instance.__dict__[ASSIGNED_ATTRIBUTE] = assigned
        raise


# Errors -----------------------------------------------------------------------

#: Deadlock detected, serialization failure: another writer won.
CONFLICT_SQLSTATES = frozenset({"40P01", "40001"})


@contextmanager
def stale_on_conflict(model, instance=None) -> Iterator[None]:
    """
    Report a lost race as StaleVersionError, and only a lost race: a
    violation of the version constraints, a deadlock or a serialization
    failure. Every other error is the database's own.
    """
    try:
        yield
    except IntegrityError as error:
        if not violates_version_constraints(model, error):
            raise
        raise StaleVersionError(stale_message(instance, model)) from error
    except OperationalError as error:
        if sqlstate(error) not in CONFLICT_SQLSTATES:
            raise
        raise StaleVersionError(stale_message(instance, model)) from error


def sqlstate(error: Exception) -> str | None:
    cause = error.__cause__
    return getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)


def violates_version_constraints(model, error: IntegrityError) -> bool:
    diag = getattr(error.__cause__, "diag", None)
    if diag is not None:  # PostgreSQL names the constraint
        return diag.constraint_name in schema.version_constraint_names(model)
    # SQLite names the columns: "UNIQUE constraint failed: table.a, table.b".
    prefix = "UNIQUE constraint failed: "
    message = str(error)
    if not message.startswith(prefix):
        return False
    columns = {
        name.strip().rpartition(".")[2] for name in message[len(prefix) :].split(",")
    }
    return columns in schema.version_constraint_columns(model)


def label(instance) -> str:
    return (
        f"{instance._meta.object_name} {instance.identity} version {instance.version}"
    )


def stale_message(instance=None, model=None) -> str:
    if instance is None:
        return (
            f"Some {model._meta.verbose_name_plural} changed while being written "
            "(a newer version was saved or the object was deleted). Nothing was "
            "written; run the write again."
        )
    return (
        f"{label(instance)} is no longer current: a newer version was saved, "
        "or the object was deleted, after it was loaded. Nothing was "
        "written. Load the current version (obj.current_version()), "
        "reapply the change and save again."
    )


# Rows -------------------------------------------------------------------------


def plain_rows(model, using: str) -> models.QuerySet:
    """Every row, through Django's own QuerySet: writes here are in place."""
    return models.QuerySet(model=model, using=using)


def identity_rows(instance, using: str) -> models.QuerySet:
    return plain_rows(type(instance), using).filter(identity=instance.identity)


def close_version(model, using: str, now, row) -> bool:
    """
    Close ``row`` if it is still current; return whether it was. The row is
    matched by pk, identity, version and valid_from, so that a key left over
    from a rolled-back transaction, reused for another row, is never closed.
    The hot path of every save, so the statement is built once per model.
    """
    connection = connections[using]
    meta = model._meta
    matched_fields = [meta.pk, *(meta.get_field(name) for name in ROW_MATCH)]
    sql = _close_version_sql.get((meta.label, connection.vendor))
    if sql is None:
        quote = connection.ops.quote_name
        valid_to = quote(meta.get_field("valid_to").column)
        matched = " AND ".join(f"{quote(f.column)} = %s" for f in matched_fields)
        sql = (
            f"UPDATE {quote(meta.db_table)} SET {valid_to} = %s "
            f"WHERE {matched} AND {valid_to} IS NULL"
        )
        _close_version_sql[(meta.label, connection.vendor)] = sql
    params = [meta.get_field("valid_to").get_db_prep_save(now, connection)] + [
        field.get_db_prep_save(getattr(row, field.attname), connection)
        for field in matched_fields
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount == 1


#: With the pk, what names one stored row exactly: a key may be reused
#: after a rollback, never together with these.
ROW_MATCH = ("identity", "version", "valid_from")


def row_match(obj) -> Q:
    """The stored row ``obj`` was loaded from or written as, and no other."""
    return Q(pk=obj.pk, **{name: getattr(obj, name) for name in ROW_MATCH})


_close_version_sql: dict[tuple[str, str], str] = {}


def close_rows(model, using: str, now, condition: Q) -> int:
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


# Set-based writes -------------------------------------------------------------


def matched_pk_batches(queryset, size: int) -> Iterator[list]:
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


def refuse_historical(model, rows) -> list:
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


def resolve_assignments(model, values: dict[str, Any], call: str) -> dict:
    if not values:
        raise ValueError(f"{call} needs at least one field=value to change.")
    assignments = {
        assignable_field(model, name, call): value for name, value in values.items()
    }
    # As Django's own update(): an expression may not reach across a join.
    query = UpdateQuery(model)
    for value in assignments.values():
        if hasattr(value, "resolve_expression"):
            value.resolve_expression(query, allow_joins=False, for_save=True)
    return assignments


def assignable_field(model, name: str, call: str) -> models.Field:
    try:
        field = model._meta.get_field(name)
    except FieldDoesNotExist:
        raise FieldDoesNotExist(
            f"{model._meta.object_name} has no field named '{name}'."
        ) from None
    if name in BOOKKEEPING_FIELD_NAMES or getattr(field, "primary_key", False):
        raise VersioningError(
            f"'{name}' is managed by versioning and cannot be set by {call}; "
            "use versioning.changes(user=..., reason=...) for who and why."
        )
    if not field.concrete or field.many_to_many:
        raise VersioningError(
            f"{call} can only set concrete fields; '{name}' is a relation "
            "that has no column on this table."
        )
    if field.generated:
        raise FieldError(
            f"{call} cannot set '{name}': it is a generated field, computed by "
            "the database."
        )
    return field


def version_rows(model, using: str, pks: list, assignments: dict, loaded_rows=None):
    """
    Close rows ``pks``, insert their new versions, then fix up relations.
    Keys that come from Python objects are matched with the rows the objects
    were loaded from (``loaded_rows``), so a key left over from a rolled-back
    transaction closes nothing.
    """
    if not pks:
        return
    now = timezone.now()
    condition = Q(pk__in=pks) if loaded_rows is None else Q(pk__in=pks) & loaded_rows
    closed = close_rows(model, using, now, condition)
    if closed != len(pks):
        raise StaleVersionError(stale_message(model=model))
    insert_new_versions(model, using, pks, assignments)
    fixup.repoint_referrers(model, using, pks)
    fixup.copy_links(model, using, pks)


def per_object_assignments(model, using: str, batch, targets) -> dict:
    """Case/When assignments giving each object its own values and who/why."""
    connection = connections[using]
    casting = connection.features.requires_casted_case_in_updates

    def case(field, values):
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


def adopt_new_versions(model, using: str, objs, targets) -> None:
    """Make each Python object the new version, as save() does."""
    by_identity = {obj.identity: obj for obj in objs}
    # Values assigned as expressions are read back as the database computed them.
    computed = [
        f.attname
        for f in targets
        if any(is_expression(obj.__dict__.get(f.attname)) for obj in objs)
    ]
    generated = [f.attname for f in model._meta.concrete_fields if f.generated]
    attnames = (*bookkeeping_attnames(model), *computed, *generated)
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


def new_row_expressions(model, assignments: dict) -> dict[models.Field, Any]:
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


def insert_new_versions(model, using: str, pks: list, assignments: dict) -> None:
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
