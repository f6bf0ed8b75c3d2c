"""Managers and querysets: current rows, all versions, as-of reads, set-based writes."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from . import context, statements, writes
from .exceptions import HistoricalVersionError, VersioningError
from .tracking import remember_loaded_values

Method = TypeVar("Method", bound=Callable[..., Any])


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
        rows = statements.plain_rows(self.model, self.db)
        return rows.filter(identity__in=identities).delete()


class VersioningQuerySet(models.QuerySet):
    """Writes make new versions of the matched current rows instead of overwriting."""

    @alters_data
    def delete(self):
        """Close every matched row; returns Django's (count, {label: count})."""
        if self.query.is_sliced:
            raise TypeError("Cannot use 'limit' or 'offset' with delete().")
        closed = writes.close_matched(self)
        return closed, {self.model._meta.label: closed} if closed else {}

    @alters_data
    def update(self, **kwargs) -> int:
        """
        Give every matched row a new version with ``kwargs`` applied (values
        or expressions such as F()), built inside the database. Returns the
        number of rows versioned. Like Django's update(), no signals are sent.
        """
        if self.query.is_sliced:
            raise TypeError("Cannot update a query once a slice has been taken.")
        return writes.update_versions(self, kwargs)

    @alters_data
    def bulk_update(self, objs, fields, batch_size=None) -> int:
        """Save each object's ``fields`` as a new version, a batch at a time."""
        return writes.bulk_update_versions(self, objs, fields, batch_size)


class CurrentQuerySet(VersioningQuerySet):
    """Current versions; writes make new versions instead of overwriting rows."""

    def as_of(self, when):
        raise VersioningError(
            "Call as_of() on the manager, before filtering: "
            f"{self.model.__name__}.objects.as_of(when).filter(...)."
        )

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
            remember_loaded_values(obj)
        return created


class RowsQuerySet(VersioningQuerySet):
    """
    Every row, for Django's own machinery (the base manager: related objects,
    refresh_from_db, reverse managers' add()). Its writes version current
    rows and refuse historical ones, so Django never rewrites history.
    """

    @alters_data
    def update(self, **kwargs) -> int:
        if kwargs and all(
            value is None and self.model._meta.get_field(name).many_to_one
            for name, value in kwargs.items()
        ):
            # Django's on_delete=SET_NULL: the row these keys name is being
            # deleted, and the database cannot keep a key to a missing row, so
            # the key is cleared in place on every version, history included.
            return models.QuerySet.update(self, **kwargs)
        return super().update(**kwargs)

    @alters_data
    def delete(self):
        if self.filter(valid_to__isnull=False).exists():
            raise HistoricalVersionError(
                f"Historical {self.model._meta.verbose_name_plural} cannot be "
                "deleted: history is kept. Close current rows with "
                "Model.objects.filter(...).delete()."
            )
        return super().delete()


_CurrentManagerBase = models.Manager.from_queryset(CurrentQuerySet)
_AllVersionsManagerBase = models.Manager.from_queryset(AllVersionsQuerySet)
_RowsManagerBase = models.Manager.from_queryset(RowsQuerySet)


class CurrentManager(_CurrentManagerBase):
    """The default manager: current versions only."""

    def get_queryset(self):
        return super().get_queryset().filter(valid_to__isnull=True)

    def as_of(self, when: datetime.datetime) -> AllVersionsQuerySet:
        """The versions that were current at ``when`` (an aware datetime)."""
        return AllVersionsQuerySet(self.model, using=self._db).as_of(when)


class AllVersionsManager(_AllVersionsManagerBase):
    """Every row, historical and current."""


class RowsManager(_RowsManagerBase):
    """The base manager of versioned models; see RowsQuerySet."""
