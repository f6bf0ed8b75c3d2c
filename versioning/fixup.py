"""
The related-field fixup: when a new version replaces a row, rows that pointed
at the old row are re-pointed at the new one, and many-to-many links are
copied so the new version has the same links while the old one keeps its own.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

from django.db import connections, models
from django.db.models.fields.related_descriptors import ForwardManyToOneDescriptor

from .fields import PinnedForeignKey


@dataclass(frozen=True)
class LinkTable:
    """A many-to-many table with a column pointing at the versioned model."""

    through: type[models.Model]
    column_field: Any  # the through table's ForeignKey to the versioned model


def is_versioned(model) -> bool:
    return getattr(model, "_is_versioned_model", False)


def link_tables(model) -> list[LinkTable]:
    """Every many-to-many table that links rows of ``model``, both directions."""
    concrete = model._meta.concrete_model
    tables = []
    for field in concrete._meta.get_fields(include_hidden=True):
        if not field.many_to_many:
            continue
        if isinstance(field, models.ManyToManyField):  # declared on this model
            m2m, column_name = field, field.m2m_field_name()
        else:  # declared elsewhere, pointing here
            m2m, column_name = field.field, field.field.m2m_reverse_field_name()
        through = m2m.remote_field.through
        if through is None or isinstance(through, str):  # apps still loading
            continue
        link = LinkTable(through, through._meta.get_field(column_name))
        if link not in tables:
            tables.append(link)
    return tables


def referring_fields(model, *, include_pinned=False) -> list[models.ForeignKey]:
    """
    Foreign keys and one-to-one fields, on any model, that follow ``model``'s
    objects from version to version: every key to its primary key except
    pinned keys and the keys of many-to-many tables (whose links are copied).
    """
    concrete = model._meta.concrete_model
    through_models = {link.through for link in link_tables(concrete)}
    fields = []
    for relation in concrete._meta.get_fields(include_hidden=True):
        if not relation.auto_created or relation.concrete or relation.many_to_many:
            continue
        field = relation.field
        if (
            (isinstance(field, PinnedForeignKey) and not include_pinned)
            or field.model in through_models
            or field.target_field is not concrete._meta.pk
        ):
            continue
        fields.append(field)
    return fields


def repoint_referrers(instance, old_pk: Any, using: str) -> None:
    """
    Point every row that referred to ``old_pk`` at ``instance`` (its new
    version), in the database and in the objects held in ``instance``'s
    relation caches or that reached it through their key. In-memory changes
    are recorded for undo.
    """
    new_pk = instance.pk
    for field in referring_fields(type(instance), include_pinned=True):
        if isinstance(field, PinnedForeignKey):
            release_pinned_referrers(instance, field)
            continue
        rows = field.model._base_manager.using(using).filter(**{field.attname: old_pk})
        if is_versioned(field.model):
            # Historical referrer rows keep pointing at what they saw.
            rows = rows.filter(valid_to__isnull=True)
        rows.update(**{field.attname: new_pk})
        for referrer in cached_referrers(instance, field.remote_field):
            repoint_in_memory(referrer, field, old_pk, instance)
        for referrer in remembered_referrers(instance, field):
            repoint_in_memory(referrer, field, old_pk, instance)


def release_pinned_referrers(instance, field) -> None:
    """
    A pinned referrer that cached this object must not see it turn into the
    new version: drop the cache, so it loads the version it is pinned to.
    """
    for referrer in remembered_referrers(instance, field):
        if field.is_cached(referrer) and field.get_cached_value(referrer) is instance:
            field.delete_cached_value(referrer)
            record_undo(instance, recache(field, referrer, instance))


def recache(field, referrer, target) -> Callable[[], None]:
    def undo() -> None:
        field.set_cached_value(referrer, target)

    return undo


def cached_referrers(instance, relation) -> Iterable[models.Model]:
    """Referrers of ``instance`` through ``relation`` that it holds in memory."""
    if relation.one_to_one:
        if relation.is_cached(instance):
            referrer = relation.get_cached_value(instance)
            if referrer is not None:
                yield referrer
        return
    prefetched = getattr(instance, "_prefetched_objects_cache", {})
    queryset = prefetched.get(relation.cache_name)
    if queryset is not None:
        yield from queryset._result_cache or ()


def repoint_in_memory(referrer, field, old_pk, target) -> None:
    if getattr(referrer, field.attname) != old_pk:
        return
    if is_versioned(type(referrer)) and referrer.valid_to is not None:
        return
    was_cached = field.is_cached(referrer)
    cached = field.get_cached_value(referrer) if was_cached else None
    loaded = getattr(referrer, "_loaded_values", None)

    setattr(referrer, field.attname, target.pk)
    field.set_cached_value(referrer, target)
    if loaded is not None and field.attname in loaded:
        loaded[field.attname] = target.pk

    def undo():
        setattr(referrer, field.attname, old_pk)
        if was_cached:
            field.set_cached_value(referrer, cached)
        else:
            field.delete_cached_value(referrer)
        if loaded is not None and field.attname in loaded:
            loaded[field.attname] = old_pk

    record_undo(target, undo)


def copy_m2m_links(model, from_pk: Any, to_pk: Any, using: str) -> None:
    """Give row ``to_pk`` the same many-to-many links as row ``from_pk``."""
    for link in link_tables(model):
        copy_links(link, using, from_pk=from_pk, to_pk=to_pk)


def copied_columns(link: LinkTable) -> list[str] | None:
    """
    The link table's columns a copy writes (all but a database-made key), or
    None when its key is made in Python, so links must be copied in Python.
    """
    pk = link.through._meta.pk
    if not isinstance(pk, models.AutoField):
        return None
    fields = link.through._meta.concrete_fields
    return [cast(str, f.column) for f in fields if f is not pk]


def copy_links(link: LinkTable, using: str, *, from_pk, to_pk) -> None:
    through_meta = link.through._meta
    column = link.column_field.column
    columns = copied_columns(link)
    if columns is None:
        copy_links_in_python(link, using, from_pk=from_pk, to_pk=to_pk)
        return
    connection = connections[using]
    quote = connection.ops.quote_name
    target = ", ".join(quote(name) for name in columns)
    source = ", ".join("%s" if name == column else quote(name) for name in columns)
    to_value = link.column_field.get_db_prep_value(to_pk, connection)
    from_value = link.column_field.get_db_prep_value(from_pk, connection)
    table = quote(through_meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({target}) SELECT {source} FROM {table} "
            f"WHERE {quote(column)} = %s",
            [to_value, from_value],
        )


def copy_links_in_python(link: LinkTable, using: str, *, from_pk, to_pk) -> None:
    # A link table whose key is not generated by the database (a UUID key,
    # say) needs its new keys made in Python.
    rows = link.through._base_manager.using(using).filter(
        **{link.column_field.attname: from_pk}
    )
    copies = []
    for row in rows:
        row.pk = None
        row._state.adding = True
        if row._meta.pk.has_default():
            row.pk = row._meta.pk.get_default()
        setattr(row, link.column_field.attname, to_pk)
        copies.append(row)
    link.through._base_manager.using(using).bulk_create(copies)


# Referrers that reached a versioned object through their foreign key -------
#
# Django caches `order.item` on the order only; the item does not know the
# order. So that `order.item.save()` also moves `order.item_id`, the forward
# descriptor of every key to a versioned model remembers (weakly) who read or
# set the object through it.

REFERRERS_ATTRIBUTE = "_versioning_referrers"


class FollowingForwardDescriptor(ForwardManyToOneDescriptor):
    """A foreign key's descriptor that tells the versioned target who holds it."""

    def __get__(self, instance, cls=None):
        target = super().__get__(instance, cls)
        if instance is not None and target is not None:
            remember_referrer(target, instance, self.field)
        return target

    def __set__(self, instance, value):
        super().__set__(instance, value)
        if value is not None:
            remember_referrer(value, instance, self.field)


def remember_referrer(target, referrer, field) -> None:
    referrers = target.__dict__.setdefault(REFERRERS_ATTRIBUTE, {})
    referrers[(id(referrer), field.name)] = (weakref.ref(referrer), field)


def remembered_referrers(target, field) -> list[models.Model]:
    found = []
    remembered = target.__dict__.get(REFERRERS_ATTRIBUTE, {})
    for reference, remembered_field in remembered.values():
        referrer = reference()
        if referrer is not None and remembered_field is field:
            found.append(referrer)
    return found


def follow_versioned_targets(model) -> None:
    """Give each key to a versioned model (pinned too) a remembering descriptor."""
    for field in model._meta.local_fields:
        if (
            field.many_to_one
            and is_versioned(field.related_model)
            and type(model.__dict__.get(field.name)) is ForwardManyToOneDescriptor
        ):
            setattr(model, field.name, FollowingForwardDescriptor(field))


# Undo of in-memory fixups when the write they belong to fails ---------------


def begin_undo_log(instance) -> None:
    instance.__dict__["_fixup_undo"] = []


def record_undo(instance, undo: Callable[[], None]) -> None:
    log = instance.__dict__.get("_fixup_undo")
    if log is not None:
        log.append(undo)


def end_undo_log(instance, *, undo: bool) -> None:
    log = instance.__dict__.pop("_fixup_undo", [])
    if undo:
        for step in reversed(log):
            step()
