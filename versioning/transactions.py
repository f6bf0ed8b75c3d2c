"""
Writes inside the caller's transaction stay unconfirmed until it commits.

A version made inside an outer ``atomic()`` may never commit, and its key may
then be reused by another row (SQLite reuses rolled-back keys). Neither the
object that was written nor a referrer that followed it in memory may write
through that key once the transaction (or the savepoint) it was made in has
rolled back: such a write raises StaleVersionError instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import connections, models, transaction

from .exceptions import StaleVersionError

UNCONFIRMED_ROW_ATTRIBUTE = "_versioning_unconfirmed_row"
FOLLOWED_KEYS_ATTRIBUTE = "_versioning_followed_keys"


class CommitConfirmation:
    """
    Tells whether a write made inside a transaction committed, is still
    pending in the open transaction, or was rolled back: Django runs the
    on_commit callback at commit and discards it on rollback.
    """

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.confirmed = False

    def confirm(self) -> None:
        self.confirmed = True

    def __getstate__(self) -> dict[str, Any]:
        # A copy in another process cannot see this connection's transaction.
        return {"connection": None, "confirmed": self.confirmed}

    @property
    def rolled_back(self) -> bool:
        if self.confirmed or self.connection is None:
            return False
        pending = self.connection.run_on_commit
        return not any(callback == self.confirm for _, callback, *_ in pending)


def commit_confirmation(using: str) -> CommitConfirmation | None:
    """None when the write just committed; else what will say it did."""
    connection = connections[using]
    if not connection.in_atomic_block:
        return None
    confirmation = CommitConfirmation(connection)
    transaction.on_commit(confirmation.confirm, using=using)
    return confirmation


# The written object ------------------------------------------------------------


def remember_written_row(
    instance: models.Model, confirmation: CommitConfirmation | None
) -> None:
    if confirmation is None:
        instance.__dict__.pop(UNCONFIRMED_ROW_ATTRIBUTE, None)
    else:
        instance.__dict__[UNCONFIRMED_ROW_ATTRIBUTE] = confirmation


def unconfirmed_row(instance: models.Model) -> CommitConfirmation | None:
    confirmation = instance.__dict__.get(UNCONFIRMED_ROW_ATTRIBUTE)
    if confirmation is None or confirmation.confirmed:
        return None
    return confirmation


def check_written_row(instance: Any) -> None:
    """Refuse to write through ``instance`` if its row was rolled back."""
    confirmation = unconfirmed_row(instance)
    if confirmation is not None and confirmation.rolled_back:
        # The last write through the object was a delete if it closed the row.
        written = "deleted" if instance.valid_to is not None else "written"
        raise StaleVersionError(
            f"{instance._meta.object_name} {instance.identity} version "
            f"{instance.version} was {written} in a transaction that was rolled "
            "back, so this object no longer matches the database; nothing was "
            "written. Load the current version (obj.current_version()) and "
            "apply the change again, or create the object again if it was "
            "created in that transaction."
        )


def check_links_owner(
    sender: type[models.Model], instance: Any, action: str, **kwargs: Any
) -> None:
    """m2m_changed: no links are written through a row that was rolled back."""
    if action.startswith("pre_"):
        check_written_row(instance)


# Referrers that followed it ----------------------------------------------------


@dataclass(frozen=True)
class FollowedKey:
    pk: Any
    confirmation: CommitConfirmation


def remember_followed_key(
    referrer: models.Model,
    field: models.Field,
    target: models.Model,
    confirmation: CommitConfirmation | None,
) -> None:
    followed = referrer.__dict__.setdefault(FOLLOWED_KEYS_ATTRIBUTE, {})
    if confirmation is None:
        followed.pop(field.attname, None)
    else:
        followed[field.attname] = FollowedKey(target.pk, confirmation)


def check_followed_keys(
    sender: type[models.Model],
    instance: models.Model,
    raw: bool = False,
    **kwargs: Any,
) -> None:
    """
    pre_save of a referrer: a key it took from a version whose transaction
    was rolled back is never written.
    """
    followed = instance.__dict__.get(FOLLOWED_KEYS_ATTRIBUTE)
    if not followed or raw:
        return
    for attname, key in list(followed.items()):
        if key.confirmation.confirmed or getattr(instance, attname) != key.pk:
            del followed[attname]
        elif key.confirmation.rolled_back:
            raise StaleVersionError(
                f"{instance._meta.object_name}.{attname} = {key.pk} names a "
                "version whose transaction was rolled back; nothing was "
                "written. Reload the object it points at and set the key again."
            )


# Lost races ---------------------------------------------------------------------

#: Deadlock detected, serialization failure: another writer won.
CONFLICT_SQLSTATES = frozenset({"40P01", "40001"})


def lost_to_another_writer(error: Exception) -> bool:
    """Whether a database error is a deadlock or a serialization failure."""
    cause = error.__cause__
    state = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
    return state in CONFLICT_SQLSTATES


def reads_committed(connection: Any) -> bool:
    """
    Whether each statement of the connection's transactions sees what was
    committed before it began: PostgreSQL's READ COMMITTED, Django's default
    unless the database's OPTIONS name another isolation level.
    """
    from django.db.backends.postgresql.psycopg_any import IsolationLevel

    return getattr(connection, "isolation_level", None) == IsolationLevel.READ_COMMITTED
