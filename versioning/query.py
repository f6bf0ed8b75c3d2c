"""Managers and querysets: current rows, all versions, as-of reads, set-based writes."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings
from django.db import connections, models
from django.db.models import F, Q, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from . import context
from .exceptions import HistoricalVersionError, StaleVersionError, VersioningError

Method = TypeVar("Method", bound=Callable[..., Any])

#: Rows handled per statement by the set-based writes; memory stays flat.
BATCH_SIZE = 2000


def batch_size(using: str, requested: int | None = None) -> int:
    """Rows per batch, within the backend's limit on query parameters."""
    size = min(requested or BATCH_SIZE, BATCH_SIZE)
    limit = connections[using].features.max_query_params
    return min(size, limit - 50) if limit else size


def alters_data(method: Method) -> Method:
    """Mark a write method so templates never call it (Django's alters_data)."""
    method.alters_data = True  # type: ignore[attr-defined]
    return method


def as_of_filter(when: datetime.datetime) -> Q:
    """The rows that were current at ``when``: valid_from <= when < valid_to."""
    if not isinstance(when, datetime.datetime):
        raise TypeError(
            f"as_of() takes a datetime, not {type(when).__name__}; for a date, "
            "pass the moment you mean, e.g. "
            "datetime.combine(day, time.max, tzinfo=...)."
        )
    if settings.USE_TZ and timezone.is_naive(when):
        raise ValueError(
            f"as_of() needs an aware datetime, got naive {when.isoformat()}; "
            "use timezone.make_aware(when) or pass tzinfo."
        )
    return Q(valid_from__lte=when) & (Q(valid_to__gt=when) | Q(valid_to__isnull=True))


class AllVersionsQuerySet(models.QuerySet):
    """Every row, historical and current. Read-only: history is never rewritten."""

    def as_of(self, when: datetime.datetime) -> AllVersionsQuerySet:
        """The versions that were current at ``when``."""
        return self.filter(as_of_filter(when))

    @alters_data
    def update(self, **kwargs):
        raise HistoricalVersionError(
            "all_versions querysets are read-only, so history cannot be "
            "rewritten. Use Model.objects.filter(...).update(...) to version "
            "current rows."
        )

    @alters_data
    def delete(self):
        raise HistoricalVersionError(
            "all_versions querysets cannot delete: history is kept. Use "
            "Model.objects.filter(...).delete() to close current rows, or "
            "Model.all_versions.filter(...).purge() to erase every version of "
            "the matched objects."
        )

    @alters_data
    def purge(self) -> tuple[int, dict[str, int]]:
        """
        Really delete every version of every object matched (for erasure
        requests). Referrers' on_delete is honoured as in a normal delete.
        Returns Django's (count, {label: count}).
        """
        identities = list(self.order_by().values_list("identity", flat=True).distinct())
        rows = self.model._base_manager.using(self.db).filter(identity__in=identities)
        return rows.delete()


class CurrentQuerySet(models.QuerySet):
    """Current versions; writes make new versions instead of overwriting rows."""

    def as_of(self, when):
        raise VersioningError(
            "Call as_of() on the manager, before filtering: "
            f"{self.model.__name__}.objects.as_of(when).filter(...)."
        )

    @alters_data
    def delete(self):
        """Close every matched row; returns Django's (count, {label: count})."""
        if self.query.is_sliced:
            raise TypeError("Cannot use 'limit' or 'offset' with delete().")
        model = self.model
        matched = self.order_by().values("pk")
        closed = close_rows(model, self.db, timezone.now(), pk__in=matched)
        return closed, {model._meta.label: closed} if closed else {}

    @alters_data
    def update(self, **kwargs) -> int:
        """
        Give every matched row a new version with ``kwargs`` applied (values
        or expressions such as F()), built inside the database. Returns the
        number of rows versioned.
        """
        if self.query.is_sliced:
            raise TypeError("Cannot update a query once a slice has been taken.")
        from .writes import update_versions

        return update_versions(self, kwargs)

    @alters_data
    def bulk_update(self, objs, fields, batch_size=None) -> int:
        """Save each object's ``fields`` as a new version, a batch at a time."""
        from .writes import bulk_update_versions

        return bulk_update_versions(self, objs, fields, batch_size)

    def bulk_create(self, objs, batch_size=None, **kwargs):
        """Insert version 1 of each object, with fresh identities."""
        if kwargs.get("update_conflicts"):
            raise VersioningError(
                "bulk_create(update_conflicts=True) would overwrite rows in "
                "place; use update() or bulk_update() to make new versions."
            )
        objs = list(objs)
        now = timezone.now()
        user, reason = context.current_user(), context.current_reason()
        seen = set()
        for obj in objs:
            if not obj._state.adding:
                raise VersioningError(
                    f"bulk_create() inserts new objects; {obj!r} is already "
                    "saved. Use bulk_update() to make new versions."
                )
            if obj.identity in seen:
                raise VersioningError(
                    f"bulk_create() got two objects with identity {obj.identity}."
                )
            seen.add(obj.identity)
            obj.version = 1
            obj.valid_from = now
            obj.valid_to = None
            if obj.changed_by_id is None:
                obj.changed_by = user
            if not obj.change_reason:
                obj.change_reason = reason
        created = super().bulk_create(objs, batch_size=batch_size, **kwargs)
        for obj in created:
            obj._remember_loaded_values()
        return created


_CurrentManagerBase = models.Manager.from_queryset(CurrentQuerySet)
_AllVersionsManagerBase = models.Manager.from_queryset(AllVersionsQuerySet)


class CurrentManager(_CurrentManagerBase):
    """The default manager: current versions only."""

    def get_queryset(self):
        return super().get_queryset().filter(valid_to__isnull=True)

    def as_of(self, when: datetime.datetime) -> AllVersionsQuerySet:
        """The versions that were current at ``when`` (an aware datetime)."""
        return AllVersionsQuerySet(self.model, using=self._db).as_of(when)


class AllVersionsManager(_AllVersionsManagerBase):
    """Every row, historical and current."""


def close_rows(model, using, now, **lookups) -> int:
    """Close the matched rows that are still current; return how many were."""
    return (
        model._base_manager.using(using)
        .filter(valid_to__isnull=True, **lookups)
        .update(valid_to=Greatest(F("valid_from"), Value(now)))
    )


def close_row(model, using: str, now, pk) -> bool:
    """
    Close one row if it is still current; return whether it was. The hot path
    of every save, so the statement is built once per model rather than
    through a queryset.
    """
    connection = connections[using]
    meta = model._meta
    valid_to = meta.get_field("valid_to")
    sql = _close_row_sql.get((meta.label, connection.vendor))
    if sql is None:
        quote = connection.ops.quote_name
        sql = (
            f"UPDATE {quote(meta.db_table)} SET {quote(valid_to.column)} = %s "
            f"WHERE {quote(meta.pk.column)} = %s AND {quote(valid_to.column)} IS NULL"
        )
        _close_row_sql[(meta.label, connection.vendor)] = sql
    params = [
        valid_to.get_db_prep_save(now, connection),
        meta.pk.get_db_prep_save(pk, connection),
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount == 1


_close_row_sql: dict[tuple[str, str], str] = {}


def ensure_all_closed(model, closed: int, expected: int) -> None:
    if closed != expected:
        raise StaleVersionError(
            f"{expected - closed} of {expected} {model._meta.verbose_name_plural} "
            "changed while being written (a newer version was saved or the "
            "object was deleted). Nothing was written; run the write again."
        )
