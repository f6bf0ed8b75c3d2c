"""
The admin's delete confirmation: a dry run of versioning.deletion's rules,
as Django's NestedObjects is of Django's collector. It lists what a delete
would close, delete or change, nested under what each object refers to, and
the protected objects that would refuse it; it writes nothing.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from itertools import chain
from typing import Any

from django.db import models
from django.db.models.deletion import Collector, ProtectedError, RestrictedError

from .deletion import VersionedCollector
from .tracking import is_versioned

__all__ = ["Consequence", "DeletionPreview"]


@dataclass(frozen=True)
class Consequence:
    """What a delete does to one object: close, delete, or change its keys."""

    action: str  # "close", "delete" or "update"
    keys: tuple[tuple[models.Field, Any], ...] = ()  # for "update": key, new value

    @property
    def versioned(self) -> bool:
        return bool(self.keys) and is_versioned(self.keys[0][0].model)


class DeletionPreview(VersionedCollector):
    """
    What a delete would do, without writing anything: for the admin's
    confirmation pages, as Django's NestedObjects is for Django's. It goes on
    past a protected referrer, to list every one, and knows which object
    each one refers to.
    """

    def __init__(self, using: str, origin: Any = None) -> None:
        super().__init__(using, origin)
        self.refusing: set[Any] = set()
        self.edges: defaultdict[Any, list[Any]] = defaultdict(list)

    def plain_collector(self) -> Collector:
        from django.contrib.admin.utils import NestedObjects

        return NestedObjects(self.using, origin=self.origin)

    @property
    def protected(self) -> set[Any]:
        """The objects that would refuse the delete (PROTECT or RESTRICT)."""
        return self.refusing | getattr(self.erasing, "protected", set())

    def collect(  # type: ignore[override]
        self,
        objs: Any,
        source: Any = None,
        source_attr: str | None = None,
        fail_on_restricted: bool = True,
        **kwargs: Any,
    ) -> None:
        if objs and is_versioned(type(objs[0])):
            for obj in objs:
                self.edges[self.referred(obj, source, source_attr)].append(obj)
        try:
            super().collect(
                objs,
                source=source,
                source_attr=source_attr,
                fail_on_restricted=False,
                **kwargs,
            )
        except ProtectedError as error:
            self.refusing.update(error.protected_objects)
        if fail_on_restricted and objs:
            try:
                self.refuse_restricted(type(objs[0]))
            except RestrictedError as error:
                self.refusing.update(error.restricted_objects)

    def related_objects(
        self, related_model: Any, related_fields: list[Any], objs: list[Any]
    ) -> models.QuerySet:
        rows = super().related_objects(related_model, related_fields, objs)
        if is_versioned(related_model):
            return rows
        # Django's collector follows each plain row's key to find its parent.
        return rows.select_related(*[field.name for field in related_fields])

    def referred(self, obj: Any, source: Any, source_attr: str | None) -> Any:
        """The collected row ``obj`` points at through ``source_attr``, if any."""
        if source is None or not source_attr:
            return None
        attname = obj._meta.get_field(source_attr).attname
        return self.closing.get(source, {}).get(getattr(obj, attname))

    def updated(self) -> dict[Any, list[tuple[models.Field, Any]]]:
        """The referrers whose keys would change, with each key's new value."""
        changed: defaultdict[Any, list[tuple[models.Field, Any]]] = defaultdict(list)
        updates = chain(
            self.versioned_updates.items(),
            self.plain_updates.items(),
            self.erasing.field_updates.items(),
        )
        for (field, value), batches in updates:
            for objs in batches:
                for obj in objs:
                    if not self.removes(obj):
                        changed[obj].append((field, value))
        return changed

    def removes(self, obj: Any) -> bool:
        """Whether the delete closes or deletes ``obj`` (setting its keys is moot)."""
        return obj.pk in self.closing.get(type(obj), {}) or obj in (
            self.erasing.data.get(type(obj), ())
        )

    def consequences(self) -> dict[Any, Consequence]:
        """Every object the delete would close, delete or change."""
        found: dict[Any, Consequence] = {}
        for rows in self.closing.values():
            found.update({row: Consequence("close") for row in rows.values()})
        for objs in self.erasing.data.values():
            found.update({obj: Consequence("delete") for obj in objs})
        for obj, keys in self.updated().items():
            found[obj] = Consequence("update", tuple(keys))
        return found

    def nested(self, format_callback: Callable[[Any, Consequence], Any]) -> list[Any]:
        """
        The objects as a nested list, each followed by the list of what
        refers to it, for the admin's ``unordered_list``.
        """
        consequences = self.consequences()
        below: defaultdict[Any, list[Any]] = defaultdict(list)
        # Django's NestedObjects knows who refers to whom among plain rows.
        erasing_edges: dict[Any, list[Any]] = getattr(self.erasing, "edges", {})
        for parent, children in chain(self.edges.items(), erasing_edges.items()):
            below[parent].extend(children)
        for obj, consequence in consequences.items():
            if consequence.action == "update":
                field = consequence.keys[0][0]
                below[self.target_of(obj, field)].append(obj)
        seen: set[Any] = set()

        def walk(obj: Any) -> list[Any]:
            if obj in seen or obj not in consequences:
                return []
            seen.add(obj)
            children = list(chain.from_iterable(walk(child) for child in below[obj]))
            entry = [format_callback(obj, consequences[obj])]
            return [*entry, children] if children else entry

        return list(chain.from_iterable(walk(root) for root in below[None]))

    def target_of(self, obj: Any, field: Any) -> Any:
        """The collected object ``obj`` points at through ``field``, or None."""
        value = getattr(obj, field.attname)
        target = self.closing.get(field.related_model, {}).get(value)
        if target is None:
            target = next(
                (
                    row
                    for row in self.erasing.data.get(field.related_model, ())
                    if row.pk == value
                ),
                None,
            )
        return target

    def protects(self, obj: Any) -> list[Any]:
        """The collected objects a protected ``obj`` points at: what it protects."""
        keys = [
            field
            for field in obj._meta.concrete_fields
            if field.many_to_one or field.one_to_one
        ]
        targets = (self.target_of(obj, field) for field in keys)
        return [target for target in targets if target is not None]

    def counts(self) -> Counter[tuple[Any, str]]:
        """How many objects of each model each action touches."""
        return Counter(
            (type(obj), consequence.action)
            for obj, consequence in self.consequences().items()
        )
