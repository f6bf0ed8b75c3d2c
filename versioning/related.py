"""
Related objects of versioned models, through every descriptor Django gives a
relation:

- Time travel: relations followed from an object read through ``as_of(when)``
  (a foreign key, a one-to-one, a reverse or many-to-many manager, and their
  prefetch_related()) answer as of ``when``, found by identity; ``as_of()``
  on a related manager stays within the relation.
- Writes through reverse and many-to-many managers make new versions (the
  rules are in versioning.related_writes).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

from django.db import models, router
from django.db.models import F
from django.db.models.fields.related_descriptors import (
    ForwardManyToOneDescriptor,
    ManyToManyDescriptor,
    ReverseManyToOneDescriptor,
    ReverseOneToOneDescriptor,
)
from django.db.models.query import ModelIterable
from django.utils.functional import cached_property

from .fields import PinnedForeignKey
from .fixup import FollowingForwardDescriptor
from .joins import AS_OF
from .managers import HISTORY_HINT, AsOfModelIterable
from .related_writes import (
    add_links,
    add_referrers,
    clear_links,
    create_linked,
    created_with_link,
    refuse_writes_through_history,
    remove_links,
    remove_referrers,
    set_links,
)
from .tracking import (
    is_versioned,
    moment_of,
)

#: The annotation that tells a prefetched object which owner it belongs to.
OWNER_IDENTITY = "_versioning_owner_identity"

PrefetchQuerysets = tuple[
    models.QuerySet, Callable[[Any], tuple], Callable[[Any], tuple], bool, str, bool
]

#: Relations followed as of a moment read history: a router may send them
#: to a replica, as it does as_of() (docs/replicas.md).
AS_HISTORY = {HISTORY_HINT: True}


class TimeTravellingForwardDescriptor(FollowingForwardDescriptor):
    """
    A key to a versioned model: from an object read as of a moment, the
    target is the version current at that moment, found by identity (the
    key may have been re-pointed in place since). A pinned key is exact.
    """

    def get_object(self, instance: models.Model) -> Any:
        when = moment_of(instance)
        if when is None or not getattr(self.field, "versioning_by_identity", False):
            return super().get_object(instance)
        key = getattr(instance, self.field.attname)
        return next(iter(self.targets_as_of(instance, when, [key])[:1]), None)

    def get_prefetch_querysets(
        self, instances: list[models.Model], querysets: Any = None
    ) -> PrefetchQuerysets:
        when = prefetch_moment(instances, querysets)
        if when is None or not getattr(self.field, "versioning_by_identity", False):
            return super().get_prefetch_querysets(instances, querysets)
        attname = self.field.attname
        keys = {getattr(instance, attname) for instance in instances} - {None}
        target = self.field.related_model
        db = router.db_for_read(target, instance=instances[0], **AS_HISTORY)
        identity_of = dict(
            target._base_manager.db_manager(db)
            .filter(pk__in=keys)
            .values_list("pk", "identity")
        )
        queryset = querysets[0] if querysets else target._default_manager.as_of(when)
        queryset = queryset.using(db).filter(identity__in=set(identity_of.values()))
        return (
            queryset,
            lambda target: (target.identity,),
            lambda instance: (identity_of.get(getattr(instance, attname)),),
            True,
            self.field.cache_name,
            False,
        )

    def targets_as_of(
        self, instance: models.Model, when: datetime.datetime, keys: list[Any]
    ) -> models.QuerySet:
        target = self.field.related_model
        db = router.db_for_read(target, instance=instance, **AS_HISTORY)
        named = target._base_manager.db_manager(db).filter(pk__in=keys)
        current = target._default_manager.db_manager(db).as_of(when)
        return current.filter(identity__in=named.values("identity"))


def prefetch_moment(instances: list[Any], querysets: Any) -> Any:
    """
    The moment a prefetch reads: that of its own as_of() queryset
    (``Prefetch(..., queryset=Model.objects.as_of(t))``), or else that of
    the objects it is for.
    """
    if querysets:
        query = querysets[0].query
        if getattr(query, "versioning_scope", None) == AS_OF:
            return query.versioning_when
    return moment_of(instances[0])


class TimeTravellingReverseOneToOneDescriptor(ReverseOneToOneDescriptor):
    """``place.restaurant`` from a place read as of a moment, by identity."""

    def __get__(self, instance: Any, cls: Any = None) -> Any:
        when = moment_of(instance)
        if when is None:
            return super().__get__(instance, cls)
        try:
            rel_obj = self.related.get_cached_value(instance)
        except KeyError:
            queryset = related_as_of(
                self.related.related_model, self.related.field.name, instance, when
            )
            rel_obj = next(iter(queryset[:1]), None)
            if rel_obj is not None:
                self.related.field.set_cached_value(rel_obj, instance)
            self.related.set_cached_value(instance, rel_obj)
        if rel_obj is None:
            raise self.RelatedObjectDoesNotExist(
                f"{type(instance).__name__} has no {self.related.get_accessor_name()}."
            )
        return rel_obj


def related_as_of(
    model: Any,
    lookup: str,
    owner: Any,
    when: datetime.datetime,
    key: models.ForeignKey | None = None,
) -> models.QuerySet:
    """
    ``model``'s objects related to ``owner`` through ``lookup``: as of
    ``when`` if ``model`` is versioned, matched by the owner's identity if
    the owner is versioned. The objects remember ``when``, and those that
    hold ``key`` to an owner read as of ``when`` get it in their cache.
    """
    manager = model._default_manager.db_manager(
        router.db_for_read(model, instance=owner, **AS_HISTORY)
    )
    queryset = manager.as_of(when) if is_versioned(model) else manager.all()
    if is_versioned(type(owner)):
        queryset = queryset.filter(**{f"{lookup}__identity": owner.identity})
    else:
        queryset = queryset.filter(**{lookup: owner})
    queryset.query.versioning_when = when
    if key is not None and moment_of(owner) == when:
        queryset.query.versioning_owner = (key, owner)
    if queryset._iterable_class is ModelIterable:
        queryset._iterable_class = AsOfModelIterable
    return queryset


class TimeTravellingManagerMixin:
    """
    For reverse and many-to-many managers: ``as_of()`` stays within the
    relation, and an owner read as of a moment gives its related objects as
    of that moment (prefetch_related() included).
    """

    instance: Any
    model: Any

    def as_of(self, when: datetime.datetime) -> models.QuerySet:
        """The related objects that were current at ``when``."""
        if self.instance.pk is None:
            raise ValueError(
                f"{self.instance!r} needs to be saved before its related objects "
                "can be read as of a moment."
            )
        return related_as_of(self.model, self.lookup_to_owner(), self.instance, when)

    def get_queryset(self) -> models.QuerySet:
        when = moment_of(self.instance)
        if when is None or not self.follows_identity():
            return self.exact_links(super().get_queryset())  # type: ignore[misc]
        try:
            return self.instance._prefetched_objects_cache[self.owner_cache_name()]
        except (AttributeError, KeyError):
            key = getattr(self, "field", None)  # reverse foreign keys only
            return related_as_of(
                self.model, self.lookup_to_owner(), self.instance, when, key
            )

    def get_prefetch_querysets(
        self, instances: list[Any], querysets: Any = None
    ) -> PrefetchQuerysets:
        when = prefetch_moment(instances, querysets)
        if when is None or not self.follows_identity():
            found = super().get_prefetch_querysets(instances, querysets)  # type: ignore[misc]
            return (self.exact_links(found[0]), *found[1:])
        lookup = self.lookup_to_owner()
        if querysets:
            queryset = querysets[0]
        elif is_versioned(self.model):
            queryset = self.model._default_manager.as_of(when)
        else:
            queryset = self.model._default_manager.all()
        db = router.db_for_read(self.model, instance=instances[0], **AS_HISTORY)
        queryset = (
            queryset.using(db)
            .filter(**{f"{lookup}__identity__in": {i.identity for i in instances}})
            .annotate(**{OWNER_IDENTITY: F(f"{lookup}__identity")})
        )
        key = getattr(self, "field", None)  # reverse foreign keys only
        if key is not None:
            # As Django does, each object knows its owner (read at the same
            # moment), without its key being touched.
            owners = {i.identity: i for i in instances if moment_of(i) == when}
            for obj in queryset:
                owner = owners.get(getattr(obj, OWNER_IDENTITY))
                if owner is not None:
                    key.set_cached_value(obj, owner)
        return (
            queryset,
            lambda obj: (getattr(obj, OWNER_IDENTITY),),
            lambda instance: (instance.identity,),
            False,
            self.owner_cache_name(),
            False,
        )

    def exact_links(self, queryset: Any) -> Any:
        """
        The links of a versioned owner that declares them are exactly its
        row's, current or not: they are not narrowed to current rows.
        """
        if getattr(self, "reverse", True) is False and is_versioned(
            type(self.instance)
        ):
            queryset.query.versioning_exact_links = True
        return queryset

    def follows_identity(self) -> bool:
        """
        Whether the related objects are found by the owner's identity: when
        the owner is versioned, unless it declares the links to a plain
        model (its own links are exactly its row's) or they pin versions.
        """
        if isinstance(getattr(self, "field", None), PinnedForeignKey):
            return False  # lines pinned to this very version
        owner_declares = getattr(self, "reverse", True) is False
        return is_versioned(type(self.instance)) and (
            is_versioned(self.model) or not owner_declares
        )

    def lookup_to_owner(self) -> str:
        if hasattr(self, "query_field_name"):  # many-to-many
            return str(self.query_field_name)
        return str(self.field.name)  # type: ignore[attr-defined]

    def owner_cache_name(self) -> str:
        if hasattr(self, "prefetch_cache_name"):  # many-to-many
            return str(self.prefetch_cache_name)
        return str(self.field.remote_field.cache_name)  # type: ignore[attr-defined]


class VersionedReverseManyToOneDescriptor(ReverseManyToOneDescriptor):
    @cached_property
    def related_manager_cls(self) -> type[Any]:
        manager_cls = super().related_manager_cls
        methods: dict[str, Any] = {
            method: refuse_writes_through_history(method)
            for method in ("create", "get_or_create", "update_or_create")
        }
        if is_versioned(self.rel.related_model):
            methods["add"] = add_referrers
            if hasattr(manager_cls, "remove"):  # only for nullable keys
                methods["remove"] = remove_referrers
        return type(
            f"Versioned{manager_cls.__name__}",
            (TimeTravellingManagerMixin, manager_cls),
            methods,
        )


class VersionedManyToManyDescriptor(ManyToManyDescriptor):
    @cached_property
    def related_manager_cls(self) -> type[Any]:
        manager_cls = super().related_manager_cls
        methods = {
            "add": add_links,
            "remove": remove_links,
            "clear": clear_links,
            "set": set_links,
            "create": create_linked,
            "get_or_create": created_with_link("get_or_create"),
            "update_or_create": created_with_link("update_or_create"),
        }
        return type(
            f"Versioned{manager_cls.__name__}",
            (TimeTravellingManagerMixin, manager_cls),
            methods,
        )


def version_related_descriptors(model: Any) -> None:
    """
    Give each relation of ``model`` that touches a versioned model the
    descriptor that follows it through time (and writes new versions).
    """
    for field in model._meta.local_fields:
        if field.many_to_one and is_versioned(field.related_model):
            replace(
                model,
                field.name,
                ForwardManyToOneDescriptor,
                TimeTravellingForwardDescriptor,
                field,
            )
    for field in model._meta.local_many_to_many:
        if is_versioned(model) or is_versioned(field.related_model):
            replace(
                model,
                field.name,
                ManyToManyDescriptor,
                VersionedManyToManyDescriptor,
                field.remote_field,
                reverse=False,
            )
    for relation in model._meta.related_objects:
        if not (is_versioned(model) or is_versioned(relation.related_model)):
            continue
        name = relation.get_accessor_name()
        if relation.one_to_many:
            replace(
                model,
                name,
                ReverseManyToOneDescriptor,
                VersionedReverseManyToOneDescriptor,
                relation,
            )
        elif relation.one_to_one:
            replace(
                model,
                name,
                ReverseOneToOneDescriptor,
                TimeTravellingReverseOneToOneDescriptor,
                relation,
            )
        elif relation.many_to_many:
            replace(
                model,
                name,
                ManyToManyDescriptor,
                VersionedManyToManyDescriptor,
                relation,
                reverse=True,
            )


def replace(
    model: Any,
    name: str | None,
    django_class: type,
    ours: type,
    *args: Any,
    **kwargs: Any,
) -> None:
    """Put our descriptor where Django's own is (never over a user's)."""
    if name and type(model.__dict__.get(name)) is django_class:
        setattr(model, name, ours(*args, **kwargs))
