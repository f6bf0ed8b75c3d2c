"""
Managers and querysets of versioned models. Each queryset knows which rows it
stands for (its scope): the current versions (``objects``), every row
(``all_versions``), the versions current at a moment (``as_of()``), or every
row for Django's own machinery (the base manager). The mixins let your own
QuerySet and Manager classes keep their methods through all of them.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Self, TypeVar

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.query import ModelIterable
from django.db.models.sql.where import AND
from django.utils import timezone

from . import context, deletion, statements, writes
from .exceptions import HistoricalVersionError, VersioningError
from .joins import (
    ALL,
    AS_OF,
    CURRENT,
    ROWS,
    VersionedQuery,
    current_rows,
    versioned_query_combinable,
)
from .tracking import remember_loaded_values, remember_moment

__all__ = [
    "AllVersionsManager",
    "CurrentManager",
    "VersionedManagerMixin",
    "VersionedQuerySet",
    "VersionedQuerySetMixin",
]

Method = TypeVar("Method", bound=Callable[..., Any])

READ_ONLY = {ALL: "Model.all_versions querysets", AS_OF: "as_of() querysets"}

#: The hint a database router gets with reads of history (``all_versions``,
#: ``as_of()``, ``history()``), which may go to a replica; other reads lack it.
HISTORY_HINT = "versioning_history"


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


if TYPE_CHECKING:
    _QuerySetBase = models.QuerySet
    _ManagerBase = models.Manager
else:
    _QuerySetBase = _ManagerBase = object


class VersionedQuerySetMixin(_QuerySetBase):
    """
    What every versioned queryset does, for your own QuerySet classes:
    ``as_of()``, and writes that make new versions instead of overwriting.
    Querysets of history (``all_versions``, ``as_of()``) are read-only.
    """

    def __init__(
        self,
        model: type[models.Model] | None = None,
        query: Any = None,
        using: str | None = None,
        hints: dict[str, Any] | None = None,
    ) -> None:
        # The query carries the scope, so that joins into other versioned
        # models (written by the compiler) see the same versions.
        super().__init__(model, query or VersionedQuery(model), using, hints)

    @property
    def versioning_scope(self) -> str:
        return getattr(self._query, "versioning_scope", CURRENT)  # type: ignore[attr-defined]

    @versioning_scope.setter
    def versioning_scope(self, scope: str) -> None:
        self._query.versioning_scope = scope  # type: ignore[attr-defined]
        if scope in (ALL, AS_OF):
            # A new dict: Django shares a queryset's hints with its clones.
            self._hints = {**self._hints, HISTORY_HINT: True}  # type: ignore[has-type]

    def as_of(self, when: datetime.datetime) -> Self:
        """The versions that were current at ``when`` (an aware datetime)."""
        if self.versioning_scope == CURRENT:
            raise VersioningError(
                "Call as_of() on the manager, before filtering: "
                f"{self.model.__name__}.objects.as_of(when).filter(...)."
            )
        if self.versioning_scope == AS_OF:
            raise VersioningError(
                "This queryset is already as of "
                f"{self.query.versioning_when.isoformat()}; start again from "  # type: ignore[attr-defined]
                f"{self.model.__name__}.objects.as_of(when)."
            )
        moment = as_of_filter(when)
        clone = self._chain()  # type: ignore[attr-defined]  # not in django-stubs
        clone.versioning_scope = AS_OF
        clone.query.versioning_when = when
        if clone._iterable_class is ModelIterable:
            clone._iterable_class = AsOfModelIterable
        return clone.filter(moment)

    def create(self, **kwargs: Any) -> Any:
        self._refuse_history_writes(AS_OF)
        return super().create(**kwargs)

    def get_or_create(self, defaults: Any = None, **kwargs: Any) -> Any:
        self._refuse_history_writes(AS_OF)
        return super().get_or_create(defaults=defaults, **kwargs)

    def update_or_create(self, *args: Any, **kwargs: Any) -> Any:
        self._refuse_history_writes(AS_OF)
        return super().update_or_create(*args, **kwargs)

    def select_for_update(self, *args: Any, **kwargs: Any) -> Self:
        if self.versioning_scope == AS_OF:
            raise VersioningError(
                "as_of() querysets read history, which never changes, so they "
                "cannot be locked; lock current rows with "
                f"{self.model.__name__}.objects.select_for_update()."
            )
        return super().select_for_update(*args, **kwargs)

    def in_bulk(self, id_list: Any = None, *, field_name: str = "pk") -> Any:
        # An identity names one object: unique among current rows, or among
        # the rows of one moment.
        if field_name == "identity" and self.versioning_scope in (CURRENT, AS_OF):
            objects = self if id_list is None else self.filter(identity__in=id_list)
            return {obj.identity: obj for obj in objects}  # type: ignore[attr-defined]
        return super().in_bulk(id_list, field_name=field_name)

    def union(self, *other_qs: Any, all: bool = False) -> Self:  # noqa: A002
        self._refuse_other_moments(other_qs, "union()")
        return super().union(*other_qs, all=all)

    def intersection(self, *other_qs: Any) -> Self:
        self._refuse_other_moments(other_qs, "intersection()")
        return super().intersection(*other_qs)

    def difference(self, *other_qs: Any) -> Self:
        self._refuse_other_moments(other_qs, "difference()")
        return super().difference(*other_qs)

    def _refuse_other_moments(self, other_qs: Any, operation: str) -> None:
        for other in other_qs:
            versioned_query_combinable(self.query, other.query, operation)

    def _refuse_history_writes(self, *scopes: str) -> None:
        if self.versioning_scope in (scopes or (ALL, AS_OF)):
            raise HistoricalVersionError(
                f"{READ_ONLY[self.versioning_scope]} are read-only, so history "
                "cannot be rewritten. Use Model.objects.filter(...) to change "
                "current rows, or Model.all_versions.filter(...).purge() to "
                "erase every version of the matched objects."
            )

    @alters_data
    def update(self, **kwargs: Any) -> int:
        """
        Give every matched row a new version with ``kwargs`` applied (values
        or expressions such as F()), built inside the database. Returns the
        number of rows versioned. Like Django's update(), no signals are sent.
        """
        self._refuse_history_writes()
        if self.query.is_sliced:
            raise TypeError("Cannot update a query once a slice has been taken.")
        # As Django's update(): rows are matched where they are written.
        self._for_write = True
        if self.versioning_scope == ROWS and all(
            value is None and self.model._meta.get_field(name).many_to_one
            for name, value in kwargs.items()
        ):
            # Django's on_delete=SET_NULL: the row these keys name is being
            # deleted, and the database cannot keep a key to a missing row, so
            # the key is cleared in place on every version, history included.
            return models.QuerySet.update(self, **kwargs)
        return writes.update_versions(self, kwargs)

    @alters_data
    def delete(self) -> tuple[int, dict[str, int]]:
        """
        Close every matched row and apply the referrers' on_delete, as
        obj.delete() does; returns Django's (count, {label: count}).
        """
        self._refuse_history_writes()
        if self.query.is_sliced:
            raise TypeError("Cannot use 'limit' or 'offset' with delete().")
        self._for_write = True
        if (
            self.versioning_scope == ROWS
            and self.filter(valid_to__isnull=False).exists()
        ):
            raise HistoricalVersionError(
                "Historical versions cannot be deleted: history is kept. Close "
                "current rows with Model.objects.filter(...).delete()."
            )
        return writes.close_matched(self)

    @alters_data
    def bulk_update(
        self, objs: Iterable[Any], fields: Iterable[str], batch_size: int | None = None
    ) -> int:
        """Save each object's ``fields`` as a new version, a batch at a time."""
        self._refuse_history_writes()
        self._for_write = True
        return writes.bulk_update_versions(self, objs, fields, batch_size)

    def bulk_create(  # type: ignore[override]  # options by keyword only
        self, objs: Iterable[Any], batch_size: int | None = None, **kwargs: Any
    ) -> list[Any]:
        """Insert version 1 of each object, with fresh identities."""
        if self.versioning_scope in (ROWS, ALL):
            # Django's own machinery, and imports of history through
            # all_versions, insert rows exactly as given.
            return super().bulk_create(objs, batch_size=batch_size, **kwargs)
        self._refuse_history_writes()
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

    @alters_data
    def purge(self) -> tuple[int, dict[str, int]]:
        """
        Really delete every version of every object matched (for erasure
        requests). Referrers' on_delete is honoured as in a normal delete.
        Returns Django's (count, {label: count}).
        """
        self._for_write = True
        matched = self.order_by().values_list("identity", flat=True)
        identities = list(matched.distinct())
        rows = statements.plain_rows(self.model, self.db)
        purged = rows.filter(identity__in=identities)
        collector = deletion.PurgeCollector(self.db, origin=purged)
        collector.collect(purged)
        return collector.delete()


class AsOfModelIterable(ModelIterable):
    """
    Objects read as of a moment remember it, and so do the objects
    select_related() brought with them: relations followed from them answer
    as of that moment. Objects read from an owner's related manager get the
    owner in their cache, without their key being touched.
    """

    def __iter__(self) -> Iterator[models.Model]:
        query: Any = self.queryset.query
        when = query.versioning_when
        key, owner = getattr(query, "versioning_owner", (None, None))
        known = {id(owner)}
        for objs in self.queryset._known_related_objects.values():  # type: ignore[attr-defined]
            known.update(id(obj) for obj in objs.values())
        for obj in super().__iter__():
            if key is not None and not key.is_cached(obj):
                key.set_cached_value(obj, owner)
            remember_moment(obj, when, skip=known)
            yield obj


class VersionedQuerySet(VersionedQuerySetMixin, models.QuerySet):
    """The queryset of versioned models; subclass it for your own methods."""


class VersionedManagerMixin(_ManagerBase):
    """
    Scopes a manager's querysets (current rows, all versions, Django's base
    rows) and gives it ``as_of()``, for managers built on your own QuerySet,
    a subclass of VersionedQuerySet:
    ``CurrentManager.from_queryset(PageQuerySet)()``.
    """

    versioning_scope = CURRENT

    def get_queryset(self) -> VersionedQuerySetMixin:
        queryset: Any = super().get_queryset()
        queryset.versioning_scope = self.versioning_scope
        if self.versioning_scope == CURRENT:
            # The condition filter(valid_to__isnull=True) would build, added
            # to the new queryset's own query: every read starts here, and
            # resolving the lookup by name each time costs more than the
            # rest of a lookup by key.
            query = queryset.query
            query.where.add(current_rows(self.model, query.get_initial_alias()), AND)
        return queryset

    def as_of(self, when: datetime.datetime) -> VersionedQuerySetMixin:
        """The versions that were current at ``when`` (an aware datetime)."""
        queryset: Any = super().get_queryset()
        queryset.versioning_scope = ALL
        return queryset.as_of(when)


_VersionedManager = models.Manager.from_queryset(VersionedQuerySet)


class CurrentManager(VersionedManagerMixin, _VersionedManager):
    """The default manager: current versions only."""


class AllVersionsManager(VersionedManagerMixin, _VersionedManager):
    """Every row, historical and current; read-only."""

    versioning_scope = ALL


class RowsManager(VersionedManagerMixin, _VersionedManager):
    """
    The base manager of versioned models: every row, for Django's own
    machinery (related objects, refresh_from_db, reverse managers' add()).
    Its writes version current rows and refuse historical ones, so Django
    never rewrites history.
    """

    versioning_scope = ROWS
