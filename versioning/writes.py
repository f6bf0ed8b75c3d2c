"""
The write engine. Every path that makes or closes versions (save(), restore(),
delete(), update(), bulk_update() and the managers Django uses behind related
objects) goes through the rules here, each written once: the clock, change
detection, who and why, closing rows, inserting versions, fixing up what
pointed at the closed rows, announcing new versions, and telling a stale
write from any other failure.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import functools
import operator
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import FieldDoesNotExist, FieldError
from django.db import (
    DatabaseError,
    IntegrityError,
    OperationalError,
    connections,
    models,
    transaction,
)
from django.db.models import Q
from django.db.models.signals import post_save
from django.db.models.sql import UpdateQuery
from django.utils import timezone

from . import context, deletion, fixup, schema, statements, transactions
from .exceptions import (
    HistoricalVersionError,
    RestoreRefusedError,
    StaleVersionError,
    VersioningError,
)
from .links import declared_links, link_changes
from .signals import version_created
from .statements import (
    RowNotCurrent,
    adopt_new_versions,
    batch_size,
    chunked,
    close_rows,
    close_version,
    identity_rows,
    insert_new_versions,
    matched_pk_batches,
    per_object_assignments,
    plain_rows,
    row_match,
)
from .tracking import (
    ASSIGNED_ATTRIBUTE,
    BOOKKEEPING_FIELD_NAMES,
    LOADED_VALUES_ATTRIBUTE,
    assigned_who_and_why,
    bookkeeping_attnames,
    changed_fields,
    data_fields,
    forget_moment,
    is_expression,
    is_versioned,
    loaded_values,
    remember_loaded_values,
    values_differ,
)


@dataclass(frozen=True)
class PendingVersion:
    """
    What the insert of a new version must do: close the row it replaces in
    the same statement (``closing``, PostgreSQL), and what it must fix up
    once its row exists.
    """

    replaces_pk: Any
    copy_links_from_pk: Any
    closing: statements.ClosingInsert | None = None


# Entry points -----------------------------------------------------------------


def create_first_version(instance: Any, using: str) -> None:
    """Insert version 1 of a new object."""
    with (
        restored_on_error([instance]),
        failed_as_a_plain_save(using),
        transaction.atomic(using=using),
    ):
        if is_copy(instance):
            instance.identity = instance._meta.get_field("identity").get_default()
        instance.version = 1
        instance.valid_from = timezone.now()
        instance.valid_to = None
        apply_who_and_why(instance)
        instance._insert_row(using)
    remember_loaded_values(instance)
    transactions.remember_written_row(instance, transactions.commit_confirmation(using))


def is_copy(instance: Any) -> bool:
    """
    Whether a new object is a stored one copied as Django's documentation
    copies instances (``pk = None``, ``_state.adding = True``): it still
    holds the identity it was loaded with, which names the original.
    """
    loaded = loaded_values(instance).get("identity")
    return loaded is not None and loaded == instance.identity


def save_version(instance: Any, using: str, *, links_changed: bool = False) -> None:
    """
    Make the loaded current version's changes a new version, if it has any
    (or if its many-to-many links are about to change: ``links_changed``).
    """
    transactions.check_written_row(instance)
    if not links_changed and not has_data_changes(instance, using):
        return
    # A new version never loses data the caller did not load.
    load_deferred_fields(instance, using)
    model = type(instance)
    old_pk = instance.pk
    now = version_time(instance.valid_from)
    previous = closed_copy(instance, using, now)
    connection = connections[using]
    # Values assigned as expressions are computed from the row being
    # replaced before the new one is written. (Keys the fixup re-pointed in
    # place since the instance was loaded are read back by the close when it
    # is a statement of its own; else the check of written keys, after the
    # insert, follows them to the current version the same way.)
    one_statement = statements.closes_while_inserting(connection) and not any(
        map(is_expression, instance.__dict__.values())
    )
    closing = (
        statements.ClosingInsert(model, connection, now, instance)
        if one_statement
        else None
    )
    transaction_of_its_own = own_transaction(model, using, one_statement)
    with refused_when_stale(instance, using), restored_on_error([instance]):
        with (
            failed_as_a_plain_save(using),
            stale_on_conflict(model, instance),
            transaction_of_its_own,
        ):
            if closing is None:
                stored_keys = close_version(model, using, now, instance)
                if stored_keys is None:
                    raise RowNotCurrent
                follow_stored_keys(instance, stored_keys)
                resolve_expressions(instance, using)
            insert_version(
                instance,
                using,
                now,
                version=instance.version + 1,
                pending=PendingVersion(old_pk, old_pk, closing),
                previous=previous,
            )
    remember_loaded_values(instance)
    forget_moment(instance)  # the new version is current, whenever it was read
    confirmation = transactions.commit_confirmation(using)
    transactions.remember_written_row(instance, confirmation)
    fixup.follow_in_memory(instance, old_pk, confirmation)


def own_transaction(
    model: type[models.Model], using: str, one_statement: bool
) -> contextlib.AbstractContextManager[Any]:
    """
    The transaction a save needs of its own. A save that is one statement
    (PostgreSQL) and writes nothing but the new version, with nobody to hear
    of it before it is done, needs none in autocommit, nor a savepoint inside
    the caller's READ COMMITTED transaction: there a stale save is a
    statement that changed nothing, and any other failure aborts the
    caller's transaction as a failed plain save() does. Anything more (two
    statements, referrers, links, the keys' check, receivers that may fail
    after the insert) runs in a transaction, so that a failure undoes it all.
    At REPEATABLE READ or SERIALIZABLE a stale save meets a serialization
    failure, which a savepoint keeps from aborting the caller's transaction.
    """
    if one_statement and writes_only_the_new_version(model):
        if transactions.reads_committed(connections[using]):
            return contextlib.nullcontext()
        return savepoint(using)
    return transaction.atomic(using=using)


def writes_only_the_new_version(model: type[models.Model]) -> bool:
    return (
        not model._meta.parents
        and not fixup.followed_keys(model)
        and not fixup.referring_fields(model)
        and not fixup.link_tables(model)
        and not heard_before_done(model)
    )


def heard_before_done(model: type[models.Model]) -> bool:
    """
    Whether receivers run after the insert, inside the save, where their
    failure must undo the version: version_created and post_save receivers.
    """
    return version_created.has_listeners(model) or post_save.has_listeners(model)


@contextmanager
def failed_as_a_plain_save(using: str) -> Iterator[None]:
    """
    A save whose statement fails inside the caller's transaction leaves it to
    be rolled back, as a failed plain save() does, on every database alike
    (SQLite's two statements run in a savepoint, PostgreSQL's one statement
    in none). A stale save wrote nothing and leaves it usable.
    """
    try:
        yield
    except StaleVersionError:
        raise
    except DatabaseError:
        if connections[using].in_atomic_block:
            transaction.set_rollback(True, using=using)
        raise


@contextmanager
def refused_when_stale(instance: Any, using: str | None = None) -> Iterator[None]:
    """
    The row the write was to close was no longer current: say so. Nothing
    was written, so the caller's transaction stays as usable as it was,
    although Django's guard around the insert marked it for rollback.
    """
    connection = connections[using] if using else None
    in_transaction = connection is not None and connection.in_atomic_block
    rollback = transaction.get_rollback(using) if in_transaction else False
    try:
        yield
    except RowNotCurrent:
        if in_transaction:
            transaction.set_rollback(rollback, using)
        raise StaleVersionError(stale_message(instance)) from None


def restore_version(instance: Any, using: str) -> Any:
    """Make ``instance``'s data current again as a new version; return it."""
    transactions.check_written_row(instance)
    model = type(instance)
    load_deferred_fields(instance, using)
    latest = None
    one_statement = statements.closes_while_inserting(
        connections[using]
    ) and writes_only_the_new_version(model)
    # A restore reads before it writes, and after a failure it reads again to
    # tell a lost race: inside the caller's transaction it keeps a savepoint.
    transaction_of_its_own = (
        savepoint(using) if one_statement else transaction.atomic(using=using)
    )
    try:
        with stale_on_conflict(model, instance), transaction_of_its_own:
            rows = identity_rows(instance, using)
            # Locked in a transaction, so that a version newer than its
            # snapshot shows (a serialization failure). In autocommit the
            # read sees the latest committed row, and the insert that closes
            # it (or, after a delete, the (identity, version) constraint)
            # refuses the restore if it changed meanwhile.
            if connections[using].in_atomic_block:
                rows = rows.select_for_update()
            latest = rows.latest("version")
            if latest.valid_to is None and not versions_differ(instance, latest):
                return latest
            restored = restore_after(latest, instance, using)
    except IntegrityError as error:
        # Restores of a deleted object wait on its latest row, not on the
        # insert of a newer one: a version that appeared meanwhile means this
        # restore lost the race, whichever constraint noticed first.
        if latest is not None and newer_version_exists(latest, using):
            raise StaleVersionError(stale_message(latest)) from error
        raise
    remember_loaded_values(restored)
    forget_moment(restored)
    transactions.remember_written_row(restored, transactions.commit_confirmation(using))
    return restored


def restore_after(latest: Any, instance: Any, using: str) -> Any:
    """Insert ``instance``'s data as the version after ``latest``."""
    model = type(instance)
    now = version_time(latest.valid_from, latest.valid_to)
    connection = connections[using]
    closing = None
    if latest.valid_to is None:
        if statements.closes_while_inserting(connection):
            # Closed by the insert itself, once the checks below have passed.
            closing = statements.ClosingInsert(model, connection, now, latest)
        elif close_version(model, using, now, latest) is None:
            raise StaleVersionError(stale_message(latest))
        latest.valid_to = now
    restored = model.from_db(
        using,
        [f.attname for f in model._meta.concrete_fields],
        [getattr(latest, f.attname) for f in model._meta.concrete_fields],
    )
    for field in data_fields(model):
        setattr(restored, field.attname, field.value_from_object(instance))
    follow_restored_keys(restored, instance, using)
    refuse_links_to_deleted_objects(instance, using)
    # A scoped unique value another object took meanwhile is a ValidationError
    # naming the field, as a form reports it, and nothing is written.
    restored.validate_constraints(exclude={"identity", "version"})
    with refused_when_stale(latest):
        insert_version(
            restored,
            using,
            now,
            version=latest.version + 1,
            pending=PendingVersion(latest.pk, instance.pk, closing),
            previous=latest,
        )
    return restored


def follow_restored_keys(restored: Any, instance: Any, using: str) -> None:
    """
    The restored data's keys name the objects they named then, at their
    current versions; a key to an object deleted since cannot be restored.
    """
    for field in fixup.followed_keys(type(restored)):
        key = getattr(restored, field.attname)
        if key is None:
            continue
        target = field.related_model
        current = plain_rows(target, using).filter(
            valid_to__isnull=True,
            identity__in=plain_rows(target, using).filter(pk=key).values("identity"),
        )
        current_pk = current.values_list("pk", flat=True).first()
        if current_pk is None:
            raise RestoreRefusedError(
                label(instance),
                f"its {field.name} ({target._meta.object_name} row {key}) has "
                f"been deleted since. Restore that {target._meta.object_name} "
                f"first, or restore a version with another {field.name}.",
            )
        setattr(restored, field.attname, current_pk)


def refuse_links_to_deleted_objects(instance: Any, using: str) -> None:
    """A restored version's links must name objects that still exist."""
    for field in declared_links(type(instance)):
        target: Any = field.related_model
        if not is_versioned(target):
            continue
        through: Any = field.remote_field.through
        source = through._meta.get_field(field.m2m_field_name()).attname
        key = through._meta.get_field(field.m2m_reverse_field_name()).attname
        named = plain_rows(target, using).filter(
            pk__in=plain_rows(through, using)
            .filter(**{source: instance.pk})
            .values(key)
        )
        alive = plain_rows(target, using).filter(valid_to__isnull=True)
        gone = named.exclude(identity__in=alive.values("identity")).first()
        if gone is not None:
            raise RestoreRefusedError(
                label(instance),
                f"its {field.name} link to {gone._meta.object_name} “{gone}” "
                f"names an object deleted since. Restore that "
                f"{gone._meta.object_name} first, or restore a version without "
                "that link.",
            )


def newer_version_exists(latest: Any, using: str) -> bool:
    return identity_rows(latest, using).filter(version__gt=latest.version).exists()


def close_object(instance: Any, using: str) -> tuple[int, dict[str, int]]:
    """
    Close the current version (delete()): every row stays. Then the
    referrers' on_delete applies to what points at it (versioning.deletion).
    Returns Django's (count, {label: count}).
    """
    transactions.check_written_row(instance)
    model = type(instance)
    now = version_time(instance.valid_from)
    with stale_on_conflict(model, instance), deletion_transaction(model, using):
        # Closed first: a stale object is refused before its referrers are read.
        if close_version(model, using, now, instance) is None:
            raise StaleVersionError(stale_message(instance))
        deleted = deletion.apply_on_delete([instance], using, now=now, origin=instance)
    instance.valid_to = now
    remember_loaded_values(instance, ["valid_to"])
    transactions.remember_written_row(instance, transactions.commit_confirmation(using))
    return deleted


def update_versions(queryset: models.QuerySet[Any], values: dict[str, Any]) -> int:
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


def bulk_update_versions(
    queryset: models.QuerySet[Any],
    objs: Iterable[Any],
    fields: Iterable[str],
    requested: int | None = None,
) -> int:
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
        transactions.check_written_row(obj)
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


def close_matched(queryset: models.QuerySet[Any]) -> tuple[int, dict[str, int]]:
    """
    QuerySet.delete(): close every matched current row, in one statement when
    no referrer has an on_delete to apply; else close the matched rows a
    batch at a time and apply it (versioning.deletion). Returns Django's
    (count, {label: count}).
    """
    model = queryset.model
    using = queryset.db
    now = timezone.now()
    if not deletion.applies_on_delete(model):
        matched = queryset.order_by().values("pk")
        with stale_on_conflict(model), savepoint(using):
            closed = close_rows(model, using, now, Q(pk__in=matched))
        return closed, {model._meta.label: closed} if closed else {}
    with stale_on_conflict(model), transaction.atomic(using=using):
        # Keys only, as Django's delete() reads them: enough to find what
        # points at the rows.
        keys_only = queryset.order_by().select_related(None).prefetch_related(None)
        rows = list({row.pk: row for row in keys_only.only("pk")}.values())
        for batch in chunked([row.pk for row in rows], batch_size(using)):
            if close_rows(model, using, now, Q(pk__in=batch)) != len(batch):
                raise StaleVersionError(stale_message(model=model))
        return deletion.apply_on_delete(rows, using, now=now, origin=queryset)


# The rules --------------------------------------------------------------------


def version_time(*after: datetime.datetime | None) -> datetime.datetime:
    """The moment a new version starts: now, never before what it follows."""
    return max(timezone.now(), *(moment for moment in after if moment is not None))


def has_data_changes(instance: Any, using: str) -> bool:
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


def restored_attnames(model: type[models.Model]) -> frozenset[str]:
    """What a write may change on an instance besides data: put back on failure."""
    return _restored_attnames(model)


@functools.cache
def _restored_attnames(model: type[models.Model]) -> frozenset[str]:
    followed = (field.attname for field in fixup.followed_keys(model))
    return frozenset((*bookkeeping_attnames(model), *followed))


def versions_differ(one: Any, other: Any) -> bool:
    return any(
        values_differ(f, f.value_from_object(one), f.value_from_object(other))
        for f in data_fields(type(one))
    ) or bool(link_changes(one, other))


def apply_who_and_why(instance: Any) -> None:
    chosen = context.who_and_why(instance)
    if chosen.user is not None:
        instance.changed_by = chosen.user
    else:
        instance.changed_by_id = chosen.user_id
    instance.change_reason = chosen.reason


def deletion_transaction(
    model: type[models.Model], using: str
) -> contextlib.AbstractContextManager[Any]:
    """
    A delete that applies its referrers' on_delete writes several statements:
    a transaction of its own (a savepoint inside the caller's); a delete that
    only closes is one statement.
    """
    if deletion.applies_on_delete(model):
        return transaction.atomic(using=using)
    return savepoint(using)


def savepoint(using: str) -> contextlib.AbstractContextManager[Any]:
    """
    A savepoint inside the caller's transaction, so that a failed statement
    leaves that transaction usable; nothing extra in autocommit, where one
    statement is atomic by itself.
    """
    if connections[using].in_atomic_block:
        return transaction.atomic(using=using)
    return contextlib.nullcontext()


def follow_stored_keys(instance: Any, stored: dict[str, Any]) -> None:
    """
    Keys the caller did not change take the value the replaced row holds:
    the fixup may have re-pointed it in place at a newer version of the
    target since the instance was loaded.
    """
    loaded = loaded_values(instance)
    for attname, value in stored.items():
        if attname in loaded and instance.__dict__.get(attname) == loaded[attname]:
            setattr(instance, attname, value)
            loaded[attname] = value


def resolve_expressions(instance: Any, using: str) -> None:
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


def load_deferred_fields(instance: Any, using: str) -> None:
    deferred = [
        f.attname
        for f in type(instance)._meta.concrete_fields
        if f.attname not in instance.__dict__ and not f.generated
    ]
    if deferred:
        instance.refresh_from_db(using=using, fields=deferred)


def closed_copy(instance: Any, using: str, now: datetime.datetime | None) -> Any:
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


#: Announcements held back until the write they belong to is complete.
DEFERRED_ANNOUNCEMENTS: contextvars.ContextVar[list[tuple[Any, Any, str]] | None] = (
    contextvars.ContextVar("versioning_deferred_announcements", default=None)
)


@contextmanager
def announced_when_complete() -> Iterator[None]:
    """
    Send version_created for the versions made inside the block only once
    the block is done (a change of links: after the links are written), and
    not at all if it fails.
    """
    held: list[tuple[Any, Any, str]] = []
    token = DEFERRED_ANNOUNCEMENTS.set(held)
    try:
        yield
    finally:
        DEFERRED_ANNOUNCEMENTS.reset(token)
    for instance, previous, using in held:
        announce(instance, previous, using)


def announce(instance: Any, previous: Any, using: str) -> None:
    held = DEFERRED_ANNOUNCEMENTS.get()
    if held is not None:
        held.append((instance, previous, using))
        return
    if version_created.has_listeners(type(instance)):
        if previous is not None and previous.valid_to is None:
            previous.valid_to = instance.valid_from
        version_created.send(
            type(instance), instance=instance, previous=previous, using=using
        )


def insert_version(
    instance: Any,
    using: str,
    now: datetime.datetime,
    *,
    version: int,
    pending: PendingVersion,
    previous: Any,
) -> None:
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


def fix_up_new_version(instance: Any, using: str, pending: PendingVersion) -> None:
    """Copy links to the new version and re-point referrers of the replaced row."""
    model = type(instance)
    # Links first: a link to itself is copied, then re-pointed with the rest.
    fixup.copy_links(model, using, [pending.copy_links_from_pk])
    if pending.copy_links_from_pk != pending.replaces_pk:  # a restore
        fixup.follow_copied_links(model, using, [instance.pk])
    fixup.repoint_referrers(model, using, [pending.replaces_pk])
    # The row is written: a post_save receiver that changes and saves the
    # object again compares with what the new row holds.
    remember_loaded_values(instance)


@contextmanager
def restored_on_error(instances: Iterable[Any]) -> Iterator[None]:
    """Put each instance's bookkeeping back as it was if the write fails."""
    saved = [
        (
            instance,
            {
                attname: value
                for attname, value in instance.__dict__.items()
                if attname in restored_attnames(type(instance)) or is_expression(value)
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


@contextmanager
def stale_on_conflict(
    model: type[models.Model], instance: Any = None
) -> Iterator[None]:
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
        if not transactions.lost_to_another_writer(error):
            raise
        raise StaleVersionError(stale_message(instance, model)) from error


def violates_version_constraints(
    model: type[models.Model], error: IntegrityError
) -> bool:
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


def label(instance: Any) -> str:
    return (
        f"{instance._meta.object_name} {instance.identity} version {instance.version}"
    )


def stale_message(instance: Any = None, model: Any = None) -> str:
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


# Set-based writes -------------------------------------------------------------


def resolve_assignments(
    model: type[models.Model], values: dict[str, Any], call: str
) -> dict[models.Field, Any]:
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


def assignable_field(model: type[models.Model], name: str, call: str) -> models.Field:
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


def version_rows(
    model: type[models.Model],
    using: str,
    pks: list[Any],
    assignments: dict[models.Field, Any],
    loaded_rows: Q | None = None,
    now: datetime.datetime | None = None,
) -> None:
    """
    Close rows ``pks``, insert their new versions, then fix up relations.
    Keys that come from Python objects are matched with the rows the objects
    were loaded from (``loaded_rows``), so a key left over from a rolled-back
    transaction closes nothing. ``now`` is when the new versions start (a
    delete gives its referrers' new versions its own moment).
    """
    if not pks:
        return
    now = now or timezone.now()
    condition = Q(pk__in=pks) if loaded_rows is None else Q(pk__in=pks) & loaded_rows
    closed = close_rows(model, using, now, condition)
    if closed != len(pks):
        raise StaleVersionError(stale_message(model=model))
    insert_new_versions(model, using, pks, assignments)
    fixup.copy_links(model, using, pks)
    fixup.repoint_referrers(model, using, pks)
