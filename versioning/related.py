"""
Reverse foreign-key managers (``team.player_set``) for versioned referrers:
``add()`` and ``remove()`` make the objects passed new versions, in the
database and in memory, instead of rewriting their rows in place.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import router
from django.db.models.fields.related_descriptors import ReverseManyToOneDescriptor
from django.utils.functional import cached_property

from .exceptions import HistoricalVersionError
from .tracking import bookkeeping_attnames, is_versioned, remember_loaded_values


class VersionedReverseManyToOneDescriptor(ReverseManyToOneDescriptor):
    @cached_property
    def related_manager_cls(self) -> type[Any]:
        manager_cls = super().related_manager_cls
        methods: dict[str, Any] = {"add": add}
        if hasattr(manager_cls, "remove"):  # only for nullable keys
            methods["remove"] = remove
        return type(f"Versioned{manager_cls.__name__}", (manager_cls,), methods)


def add(self: Any, *objs: Any, bulk: bool = True) -> None:
    if not bulk:
        return super(type(self), self).add(*objs, bulk=False)
    self._check_fk_val()
    db = router.db_for_write(self.model, instance=self.instance)
    for obj in objs:
        check_instance(self, obj)
        if obj._state.adding or obj._state.db != db:
            raise ValueError(
                f"{obj!r} instance isn't saved. Use bulk=False or save the object "
                "first."
            )
    self._remove_prefetched_objects()
    write_key(self, db, objs, self.instance)


add.alters_data = True  # type: ignore[attr-defined]


def remove(self: Any, *objs: Any, bulk: bool = True) -> None:
    if not bulk or not objs:
        return super(type(self), self).remove(*objs, bulk=bulk)
    self._check_fk_val()
    value = self.field.get_foreign_related_value(self.instance)
    for obj in objs:
        check_instance(self, obj)
        if self.field.get_local_related_value(obj) != value:
            raise self.field.remote_field.model.DoesNotExist(
                f"{obj!r} is not related to {self.instance!r}."
            )
    self._remove_prefetched_objects()
    write_key(self, router.db_for_write(self.model, instance=self.instance), objs, None)


remove.alters_data = True  # type: ignore[attr-defined]


def check_instance(manager: Any, obj: Any) -> None:
    if not isinstance(obj, manager.model):
        raise TypeError(
            f"'{manager.model._meta.object_name}' instance expected, got {obj!r}"
        )


def write_key(manager: Any, db: str, objs: Iterable[Any], target: Any) -> None:
    """Set the key on each object and write it as a new version (bulk_update)."""
    if target is not None and getattr(target, "valid_to", None) is not None:
        raise HistoricalVersionError(
            f"{target!r} is a historical version: nothing can be added to it. "
            "Use the current version (obj.current_version())."
        )
    field = manager.field
    # Like Django, the same object may be passed more than once.
    by_identity: dict[Any, list] = {}
    for obj in objs:
        setattr(obj, field.name, target)
        twins = by_identity.setdefault(obj.identity, [])
        if not any(twin is obj for twin in twins):
            twins.append(obj)
    written = [twins[0] for twins in by_identity.values()]
    manager.model._base_manager.using(db).bulk_update(written, [field.name])
    for first, *others in by_identity.values():
        for twin in others:
            attnames = [*bookkeeping_attnames(type(first)), field.attname]
            twin.__dict__.update({a: first.__dict__[a] for a in attnames})
            remember_loaded_values(twin, attnames)


def version_reverse_managers(model: Any) -> None:
    """Give each reverse foreign key of ``model`` from a versioned model our manager."""
    for relation in model._meta.related_objects:
        if not relation.one_to_many or not is_versioned(relation.related_model):
            continue
        name = relation.get_accessor_name()
        if name and type(model.__dict__.get(name)) is ReverseManyToOneDescriptor:
            setattr(model, name, VersionedReverseManyToOneDescriptor(relation))
