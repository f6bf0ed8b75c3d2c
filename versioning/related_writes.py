"""
Writes through related managers make new versions instead of rewriting rows:

- Reverse foreign-key managers (``team.player_set``) of versioned referrers:
  ``add()`` and ``remove()`` make the objects passed new versions, in the
  database and in memory.
- Many-to-many links belong to the model that declares them: ``add()``,
  ``remove()``, ``set()`` and ``clear()``, from either side, make one new
  version of each versioned declaring object whose links change, per call;
  the previous version keeps its own links and the objects in hand become the
  new versions. Links of a historical version are read-only; a fixture's and
  a form's links are written as given (see versioning.links).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.db import models, router, transaction

from . import writes
from .exceptions import HistoricalVersionError
from .links import FROM_FIXTURE, LINKS_AS_GIVEN_ATTRIBUTE, one_version
from .tracking import bookkeeping_attnames, is_versioned, remember_loaded_values


def add_referrers(self: Any, *objs: Any, bulk: bool = True) -> None:
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


add_referrers.alters_data = True  # type: ignore[attr-defined]


def remove_referrers(self: Any, *objs: Any, bulk: bool = True) -> None:
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


remove_referrers.alters_data = True  # type: ignore[attr-defined]


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


def add_links(self: Any, *objs: Any, through_defaults: Any = None) -> None:
    django_add = super(type(self), self).add
    change_links(
        self,
        objs,
        "add",
        lambda manager: django_add.__func__(
            manager, *objs, through_defaults=through_defaults
        ),
        through_defaults,
    )


def remove_links(self: Any, *objs: Any) -> None:
    django_remove = super(type(self), self).remove
    change_links(
        self, objs, "remove", lambda manager: django_remove.__func__(manager, *objs)
    )


def clear_links(self: Any) -> None:
    django_clear = super(type(self), self).clear
    change_links(self, (), "clear", lambda manager: django_clear.__func__(manager))


def set_links(
    self: Any, objs: Iterable[Any], *, clear: bool = False, through_defaults: Any = None
) -> None:
    objs = tuple(objs)
    django_set = super(type(self), self).set
    change_links(
        self,
        objs,
        "set",
        lambda manager: django_set.__func__(
            manager, objs, clear=clear, through_defaults=through_defaults
        ),
        through_defaults,
    )


def create_linked(self: Any, *, through_defaults: Any = None, **kwargs: Any) -> Any:
    refuse_historical(self.instance, ())
    if not (self.reverse and is_versioned(self.model)):
        return super(type(self), self).create(
            through_defaults=through_defaults, **kwargs
        )
    # Created from the other side: one version 1 that has the link already.
    using = router.db_for_write(type(self.instance), instance=self.instance)
    with transaction.atomic(using=using):
        created = self.model._default_manager.db_manager(using).create(**kwargs)
        with one_version(created, made=True):
            getattr(created, self.query_field_name).add(
                self.instance, through_defaults=through_defaults
            )
    return created


def created_with_link(method: str) -> Callable[..., Any]:
    """
    ``get_or_create()``/``update_or_create()`` of a many-to-many manager: an
    object created from the other side is one version 1 with its link.
    """

    def write(self: Any, *, through_defaults: Any = None, **kwargs: Any) -> Any:
        refuse_historical(self.instance, ())
        if not (self.reverse and is_versioned(self.model)):
            return getattr(super(type(self), self), method)(
                through_defaults=through_defaults, **kwargs
            )
        using = router.db_for_write(type(self.instance), instance=self.instance)
        django_manager = type(self).__bases__[-1]  # Django's ManyRelatedManager
        with transaction.atomic(using=using):
            # Django's own lookup within the relation, without its add().
            lookup = getattr(super(django_manager, self.db_manager(using)), method)
            obj, created = lookup(**kwargs)
            if created:
                with one_version(obj, made=True):
                    getattr(obj, self.query_field_name).add(
                        self.instance, through_defaults=through_defaults
                    )
        return obj, created

    write.__name__ = method
    write.alters_data = True  # type: ignore[attr-defined]
    return write


def refuse_writes_through_history(method: str) -> Callable[..., Any]:
    """A related manager method that first refuses a historical owner."""

    def write(self: Any, *args: Any, **kwargs: Any) -> Any:
        refuse_historical(self.instance, ())
        return getattr(super(type(self), self), method)(*args, **kwargs)

    write.__name__ = method
    write.alters_data = True  # type: ignore[attr-defined]
    return write


add_links.alters_data = True  # type: ignore[attr-defined]
remove_links.alters_data = True  # type: ignore[attr-defined]
clear_links.alters_data = True  # type: ignore[attr-defined]
set_links.alters_data = True  # type: ignore[attr-defined]
create_linked.alters_data = True  # type: ignore[attr-defined]


def change_links(
    manager: Any,
    objs: tuple[Any, ...],
    action: str,
    write: Callable[[Any], None],
    through_defaults: Any = None,
) -> None:
    owner = manager.instance
    if owner.__dict__.get(LINKS_AS_GIVEN_ATTRIBUTE) == FROM_FIXTURE:
        return write(manager)  # history is being loaded as it was
    refuse_historical(owner, objs)
    refuse_historical_keys(manager, objs)
    declaring = manager.model if manager.reverse else type(owner)
    if not is_versioned(declaring):
        return write(manager)
    if manager.reverse:
        return change_declaring_objects(manager, objs, action, through_defaults)
    as_given = owner.__dict__.get(LINKS_AS_GIVEN_ATTRIBUTE)
    if as_given is True:
        return write(manager)
    before = linked_pks(manager, router.db_for_write(manager.through, instance=owner))
    after = links_after(manager, before, objs, action)
    if after == before:
        return None
    using = router.db_for_write(type(owner), instance=owner)
    # The new version and its links, or neither (and the object as it was).
    with (
        writes.announced_when_complete(),
        writes.restored_on_error([owner]),
        transaction.atomic(using=using),
    ):
        writes.save_version(owner, using, links_changed=True)
        if as_given is not None:  # later changes in a one_version() block
            owner.__dict__[LINKS_AS_GIVEN_ATTRIBUTE] = True
        # The manager (maybe kept in a variable) now names the new version.
        type(manager).__init__(manager, owner)
        with one_version(owner, made=True):
            write(manager)
    return None


def change_declaring_objects(
    manager: Any, objs: tuple[Any, ...], action: str, through_defaults: Any
) -> None:
    """
    From the other side, each declaring object whose links change gets its
    own new version, through its own manager (the objects passed become the
    new versions).
    """
    owner = manager.instance
    using = router.db_for_write(manager.model, instance=owner)
    forward = manager.query_field_name
    with transaction.atomic(using=using):
        if action == "add":
            for obj in declaring_objects(manager, objs, using):
                getattr(obj, forward).add(owner, through_defaults=through_defaults)
        elif action == "remove":
            for obj in declaring_objects(manager, objs, using):
                getattr(obj, forward).remove(owner)
        else:
            wanted = declaring_objects(manager, objs, using)
            wanted_pks = {obj.pk for obj in wanted}
            linked = list(manager.db_manager(using).all())
            for obj in linked:
                if obj.pk not in wanted_pks:
                    getattr(obj, forward).remove(owner)
            linked_pks = {obj.pk for obj in linked}
            for obj in wanted:
                if obj.pk not in linked_pks:
                    getattr(obj, forward).add(owner, through_defaults=through_defaults)


def declaring_objects(manager: Any, objs: tuple[Any, ...], using: str) -> list[Any]:
    """The objects passed, loading those given by primary key (as Django allows)."""
    pks = [obj for obj in objs if not isinstance(obj, models.Model)]
    loaded = {
        obj.pk: obj
        for obj in manager.model._base_manager.using(using).filter(pk__in=pks)
    }
    found = []
    for obj in objs:
        if not isinstance(obj, models.Model):
            obj = loaded.get(obj)
            if obj is None:
                continue
        if obj.valid_to is not None:
            raise HistoricalVersionError(
                f"{writes.label(obj)} is a historical version: its links are "
                "read-only. Change the links of the current version."
            )
        found.append(obj)
    return found


def linked_pks(manager: Any, using: str) -> frozenset[Any]:
    """The keys ``manager``'s owner links to, read where links are written."""
    through = manager.through._base_manager.using(using)
    rows = through.filter(**{manager.source_field.attname: manager.related_val[0]})
    return frozenset(rows.values_list(manager.target_field.attname, flat=True))


def links_after(
    manager: Any, before: frozenset[Any], objs: tuple[Any, ...], action: str
) -> frozenset[Any]:
    target = manager.target_field.target_field
    pks = frozenset(
        target.get_prep_value(obj.pk if isinstance(obj, models.Model) else obj)
        for obj in objs
    )
    if action == "add":
        return before | pks
    if action == "remove":
        return before - pks
    if action == "clear":
        return frozenset()
    return pks


def refuse_historical_keys(manager: Any, objs: tuple[Any, ...]) -> None:
    """Objects given by primary key (as Django allows) must be current too."""
    keys = [obj for obj in objs if not isinstance(obj, models.Model)]
    if keys and is_versioned(manager.model):
        using = router.db_for_write(manager.model, instance=manager.instance)
        rows = manager.model._base_manager.using(using)
        historical = rows.filter(pk__in=keys, valid_to__isnull=False).first()
        if historical is not None:
            refuse_historical(historical, ())


def refuse_historical(owner: Any, objs: tuple[Any, ...]) -> None:
    for obj in (owner, *objs):
        if (
            isinstance(obj, models.Model)
            and is_versioned(type(obj))
            and obj.valid_to is not None  # type: ignore[attr-defined]
            and obj.__dict__.get(LINKS_AS_GIVEN_ATTRIBUTE) != FROM_FIXTURE
        ):
            raise HistoricalVersionError(
                f"{writes.label(obj)} is a historical version: its links are "
                "read-only. Change the links of the current version."
            )
