"""
What delete() does to the rows that point at what it deletes, written once
for obj.delete() and QuerySet.delete(), as Django's deletion.Collector is for
Django's. Each referring key's on_delete runs as Django's delete() would run
it, with the collector here in Django's place, so Django's handlers and a
project's own work unchanged. The difference is what happens to versioned
rows: they are closed, never erased.

- PROTECT and RESTRICT refuse with Django's ProtectedError/RestrictedError
  and Django's messages, before anything is written.
- CASCADE closes versioned referrers, and applies their own referrers'
  on_delete in turn; plain referrers go to Django's own Collector, which
  deletes them with their own on_delete and signals.
- SET_NULL, SET_DEFAULT and SET() give each versioned referrer one new
  version, built in the database as update() builds them; plain referrers
  are updated in place.
- Only what points at the deleted rows counts, and of a versioned referrer
  only its current row: its history keeps what it saw. Pinned keys name
  history and many-to-many links stay with the closed version: neither is a
  referrer here.

purge() really deletes, through Django's own Collector, with PurgeCollector
in its place: the row a key named is gone, so no version can keep the key.
A key whose on_delete gives it another target (SET_DEFAULT, SET()) is set in
place on a current row; a historical row naming a purged row refuses the
purge, before anything is written: history is never rewritten. A key set to
None is cleared on every version, as SET_NULL does.
"""

from __future__ import annotations

import datetime
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from functools import reduce
from itertools import chain
from operator import or_
from typing import Any, cast

from django.db import connections, models
from django.db.models import Q, sql
from django.db.models.deletion import (
    CASCADE,
    DO_NOTHING,
    PROTECT,
    RESTRICT,
    SET_DEFAULT,
    SET_NULL,
    Collector,
    ProtectedError,
    RestrictedError,
)
from django.utils import timezone

from . import writes
from .exceptions import HistoricalVersionError, StaleVersionError
from .fixup import DELETED, referring_fields
from .statements import batch_size, chunked, close_rows, plain_rows
from .tracking import is_versioned

__all__ = ["PurgeCollector", "VersionedCollector"]


def set_database_default(
    collector: Any, field: models.ForeignKey, sub_objs: Any, using: str
) -> None:
    collector.add_field_update(field, field.db_default, sub_objs)


set_database_default.lazy_sub_objs = True  # type: ignore[attr-defined]

#: Django 6.1's database-level actions, by their SQL: a close deletes no row,
#: so the database would never act; they apply as their Python counterparts.
DATABASE_ACTIONS: dict[str, Callable[..., None]] = {
    "CASCADE": CASCADE,
    "SET NULL": SET_NULL,
    "SET DEFAULT": set_database_default,
}


def on_delete_of(field: models.ForeignKey) -> Callable[..., None]:
    on_delete: Any = field.remote_field.on_delete
    if hasattr(on_delete, "on_delete_sql"):  # DB_CASCADE, DB_SET_NULL...
        return DATABASE_ACTIONS.get(getattr(on_delete, "operation", ""), on_delete)
    return cast(Callable[..., None], on_delete)


class SetKeyRecorder:
    """Stands in for Django's collector: what a SET handler sets the key to."""

    def __init__(self) -> None:
        self.value: Any = DELETED

    def add_field_update(self, field: Any, value: Any, objs: Any) -> None:
        self.value = value


def key_set_on_delete(field: models.ForeignKey, using: str) -> Any:
    """
    The key a delete of its target gives a referrer through ``field``, as its
    on_delete computes it (SET_NULL, SET_DEFAULT, SET(...)), or DELETED when
    the key stays on the deleted object's last row (DO_NOTHING, or a referrer
    the delete would have deleted or been refused by).
    """
    on_delete = on_delete_of(field)
    if on_delete in (CASCADE, PROTECT, RESTRICT, DO_NOTHING):
        return DELETED
    recorder = SetKeyRecorder()
    on_delete(recorder, field, [], using)
    return recorder.value


def applies_on_delete(model: type[models.Model]) -> bool:
    """Whether deleting rows of ``model`` has more to do than closing them."""
    return any(
        on_delete_of(field) is not DO_NOTHING for field in referring_fields(model)
    )


def apply_on_delete(
    rows: Sequence[Any], using: str, *, now: datetime.datetime, origin: Any
) -> tuple[int, dict[str, int]]:
    """
    Apply the referrers' on_delete for ``rows``, current versions the caller
    has just closed at ``now``. Returns Django's (count, {label: count}) of
    what was closed or deleted, ``rows`` included.
    """
    if not rows:
        return 0, {}
    collector = VersionedCollector(using, origin=origin, now=now)
    collector.collect(rows)
    return collector.delete(closed=rows)


def is_lazy(objs: Any) -> bool:
    """A queryset Django's handlers passed on without reading it (SET_NULL's)."""
    return isinstance(objs, models.QuerySet) and objs._result_cache is None


class VersionedCollector:
    """
    Django's Collector for versioned rows: on_delete handlers get it as their
    collector and call the methods Django's has. Collecting only reads (and
    may refuse); delete() writes it all, in the same transaction.
    """

    def __init__(
        self, using: str, origin: Any = None, now: datetime.datetime | None = None
    ) -> None:
        self.using = using
        self.origin = origin
        self.now = now or timezone.now()
        #: Versioned rows to close: {model: {pk: row}}.
        self.closing: defaultdict[Any, dict[Any, Any]] = defaultdict(dict)
        #: New values of referrers' keys: {(key, value): [rows or querysets]}.
        self.versioned_updates: defaultdict[tuple[Any, Any], list[Any]] = defaultdict(
            list
        )
        self.plain_updates: defaultdict[tuple[Any, Any], list[Any]] = defaultdict(list)
        #: Versioned referrers that RESTRICT: {model: {key: {rows}}}.
        self.restricted_objects: defaultdict[Any, defaultdict[Any, set[Any]]] = (
            defaultdict(lambda: defaultdict(set))
        )
        #: Plain rows are deleted by Django's own collector, with its rules.
        self.erasing = self.plain_collector()

    def plain_collector(self) -> Collector:
        return Collector(self.using, origin=self.origin)

    # What Django's on_delete handlers call ------------------------------------

    def collect(
        self,
        objs: Any,
        source: Any = None,
        nullable: bool = False,
        collect_related: bool = True,
        source_attr: str | None = None,
        reverse_dependency: bool = False,
        keep_parents: bool = False,
        fail_on_restricted: bool = True,
    ) -> None:
        """Add ``objs`` to what is deleted, and apply their referrers' on_delete."""
        if not objs:
            return
        model = type(objs[0])
        if is_versioned(model):
            new = self.add(objs)
            if new and collect_related:
                self.collect_referrers(new)
        else:
            self.erasing.collect(
                objs,
                source=source,
                nullable=nullable,
                collect_related=collect_related,
                source_attr=source_attr,
                reverse_dependency=reverse_dependency,
                keep_parents=keep_parents,
                fail_on_restricted=False,
            )
        if fail_on_restricted:
            self.refuse_restricted(model)

    def add_field_update(self, field: Any, value: Any, objs: Any) -> None:
        if is_versioned(field.model):
            self.versioned_updates[field, value].append(objs)
        else:
            self.plain_updates[field, value].append(objs)

    def add_restricted_objects(self, field: Any, objs: Any) -> None:
        if not objs:
            return
        if is_versioned(type(objs[0])):
            self.restricted_objects[type(objs[0])][field].update(objs)
        else:
            self.erasing.add_restricted_objects(field, objs)

    def add_dependency(
        self, model: Any, dependency: Any, reverse_dependency: bool = False
    ) -> None:
        # The order of deletes matters to plain rows only, and Django's own
        # collector orders those.
        pass

    # Collecting ----------------------------------------------------------------

    def add(self, objs: Iterable[Any]) -> list[Any]:
        """Add versioned rows to close; return those not collected before."""
        new = []
        for obj in objs:
            rows = self.closing[type(obj)]
            if obj.pk not in rows:
                rows[obj.pk] = obj
                new.append(obj)
        return new

    def collect_referrers(self, objs: list[Any]) -> None:
        """Run each referring key's on_delete for the rows that point at ``objs``."""
        model = type(objs[0])
        protected: defaultdict[str, list[Any]] = defaultdict(list)
        for field in referring_fields(model):
            on_delete = on_delete_of(field)
            if on_delete is DO_NOTHING:
                continue
            size = max(connections[self.using].ops.bulk_batch_size([field], objs), 1)
            for batch in chunked(objs, size):
                sub_objs = self.related_objects(field.model, [field], batch)
                if getattr(on_delete, "lazy_sub_objs", False) or sub_objs:
                    try:
                        on_delete(self, field, sub_objs, self.using)
                    except ProtectedError as error:
                        key = f"'{field.model.__name__}.{field.name}'"
                        protected[key] += error.protected_objects
        if protected:
            raise ProtectedError(
                f"Cannot delete some instances of model {model.__name__!r} "
                "because they are referenced through protected foreign keys: "
                f"{', '.join(protected)}.",
                set(chain.from_iterable(protected.values())),
            )

    def related_objects(
        self, related_model: Any, related_fields: list[Any], objs: list[Any]
    ) -> models.QuerySet:
        predicate = Q.create(
            [(f"{field.name}__in", objs) for field in related_fields],
            connector=Q.OR,
        )
        if is_versioned(related_model):
            # Current rows only: history keeps pointing at what it saw.
            rows = plain_rows(related_model, self.using)
            return rows.filter(predicate, valid_to__isnull=True)
        return related_model._base_manager.using(self.using).filter(predicate)

    def refuse_restricted(self, model: Any) -> None:
        """
        Django's RESTRICT: a restricted referrer refuses the delete, unless it
        goes too, through a CASCADE. Versioned referrers go if they are closed,
        plain ones if Django's collector deletes them.
        """
        erasing: Any = self.erasing
        for plain_model, instances in erasing.data.items():
            erasing.clear_restricted_objects_from_set(plain_model, set(instances))
        for queryset in erasing.fast_deletes:
            erasing.clear_restricted_objects_from_queryset(queryset.model, queryset)
        restricted: defaultdict[str, list[Any]] = defaultdict(list)
        for referrer_model, fields in self.restricted_objects.items():
            closing = self.closing.get(referrer_model, {})
            for field, objs in fields.items():
                left = [obj for obj in objs if obj.pk not in closing]
                if left:
                    restricted[f"'{referrer_model.__name__}.{field.name}'"] += left
        for referrer_model, fields in erasing.restricted_objects.items():
            for field, objs in fields.items():
                if objs:
                    restricted[f"'{referrer_model.__name__}.{field.name}'"] += objs
        if restricted:
            raise RestrictedError(
                f"Cannot delete some instances of model {model.__name__!r} "
                "because they are referenced through restricted foreign keys: "
                f"{', '.join(restricted)}.",
                set(chain.from_iterable(restricted.values())),
            )

    # Writing -------------------------------------------------------------------

    def delete(self, closed: Iterable[Any] = ()) -> tuple[int, dict[str, int]]:
        """
        Write what was collected, except closing ``closed``, rows the caller
        closed itself. Returns Django's (count, {label: count}).
        """
        already = {(type(obj), obj.pk) for obj in closed}
        counted: Counter[str] = Counter()
        for model, rows in self.closing.items():
            pending = [pk for pk in rows if (model, pk) not in already]
            for batch in chunked(pending, batch_size(self.using)):
                condition = Q(pk__in=batch)
                if close_rows(model, self.using, self.now, condition) != len(batch):
                    raise StaleVersionError(writes.stale_message(model=model))
            counted[model._meta.label] += len(rows)
        self.version_referrers()
        self.update_plain_referrers()
        if any(self.erasing.data.values()) or self.erasing.fast_deletes:
            counted.update(self.erasing.delete()[1])
        return sum(counted.values()), dict(counted)

    def version_referrers(self) -> None:
        """One new version of each versioned referrer, with all its new keys."""
        for model, by_row in self.versioned_changes().items():
            groups: defaultdict[tuple[tuple[Any, Any], ...], list[Any]] = defaultdict(
                list
            )
            for pk, assignments in by_row.items():
                groups[tuple(assignments.items())].append(pk)
            for keys, pks in groups.items():
                for batch in chunked(sorted(pks), batch_size(self.using)):
                    writes.version_rows(
                        model, self.using, batch, dict(keys), now=self.now
                    )

    def versioned_changes(self) -> defaultdict[Any, defaultdict[Any, dict[Any, Any]]]:
        """{model: {pk: {key: value}}}, leaving out the rows being closed."""
        changes: defaultdict[Any, defaultdict[Any, dict[Any, Any]]] = defaultdict(
            lambda: defaultdict(dict)
        )
        for (field, value), batches in self.versioned_updates.items():
            closing = self.closing.get(field.model, {})
            for pk in pks_of(batches):
                if pk not in closing:
                    changes[field.model][pk][field] = value
        return changes

    def update_plain_referrers(self) -> None:
        """Plain referrers' keys change in place, as in Django's delete()."""
        for (field, value), batches in self.plain_updates.items():
            lazy = [objs for objs in batches if is_lazy(objs)]
            if lazy:
                reduce(or_, lazy).update(**{field.name: value})
            loaded = {obj.pk for objs in batches if not is_lazy(objs) for obj in objs}
            if loaded:
                sql.UpdateQuery(field.model).update_batch(
                    list(loaded), {field.name: value}, self.using
                )


def pks_of(batches: list[Any]) -> list[Any]:
    lazy = [objs for objs in batches if is_lazy(objs)]
    pks = list(reduce(or_, lazy).values_list("pk", flat=True)) if lazy else []
    pks.extend(obj.pk for objs in batches if not is_lazy(objs) for obj in objs)
    return pks


class PurgeCollector(Collector):
    """
    Django's Collector for purge(), which really deletes rows: a versioned
    referrer's key that its on_delete gives another target is set in place on
    current rows, and a historical row it would rewrite refuses the purge.
    """

    def __init__(self, using: str, origin: Any = None) -> None:
        super().__init__(using, origin=origin)
        #: Versioned referrers' keys given a target: {(key, value): [rows]}.
        self.retargeted: defaultdict[tuple[Any, Any], list[Any]] = defaultdict(list)

    def add_field_update(self, field: Any, value: Any, objs: Any) -> None:
        if value is None or not is_versioned(field.model):
            # Cleared on every version, as SET_NULL is; plain rows as Django.
            super().add_field_update(field, value, objs)
        else:
            self.retargeted[field, value].append(objs)

    def collect(  # type: ignore[override]  # Django's arguments, by keyword
        self, objs: Any, fail_on_restricted: bool = True, **kwargs: Any
    ) -> None:
        super().collect(objs, fail_on_restricted=fail_on_restricted, **kwargs)
        # As Django's RESTRICT: decided once all is collected, at the top.
        if fail_on_restricted:
            self.retarget_current_rows()

    def retarget_current_rows(self) -> None:
        """Hand Django the current rows to set, or refuse if history names them."""
        retargeted, self.retargeted = self.retargeted, defaultdict(list)
        for (field, value), batches in retargeted.items():
            for objs in batches:
                rows = self.remaining(field.model, objs)
                historical = rows.filter(valid_to__isnull=False).count()
                if historical:
                    raise HistoricalVersionError(
                        f"Cannot purge: {historical} historical version(s) of "
                        f"{field.model._meta.label} point at these versions through "
                        f"{field.model.__name__}.{field.name}, whose "
                        f"on_delete={on_delete_name(field)} would rewrite them, "
                        "and history is never rewritten. Make that key "
                        "on_delete=PROTECT or SET_NULL."
                    )
                # A row closed since this check is left alone: its key to a
                # purged row then fails the delete, and nothing is written.
                current = rows.filter(valid_to__isnull=True)
                super().add_field_update(field, value, current)

    def remaining(self, model: Any, objs: Any) -> models.QuerySet:
        """The rows ``objs`` names that this purge does not delete as well."""
        if isinstance(objs, models.QuerySet):
            named = Q(pk__in=objs.values("pk"))
        else:
            named = Q(pk__in=[obj.pk for obj in objs])
        rows = plain_rows(model, self.using).filter(named)
        deleted = [obj.pk for obj in self.data.get(model, ())]
        if deleted:
            rows = rows.exclude(pk__in=deleted)
        for fast in self.fast_deletes:
            if fast.model is model:
                rows = rows.exclude(pk__in=fast.values("pk"))
        return rows


def on_delete_name(field: Any) -> str:
    on_delete = field.remote_field.on_delete
    if on_delete is SET_DEFAULT:
        return "SET_DEFAULT"
    if getattr(on_delete, "__name__", "") == "set_on_delete":
        return "SET(...)"
    return getattr(on_delete, "__name__", repr(on_delete))
