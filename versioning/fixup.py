"""
The related-field fixup: when a new version replaces a row, rows that pointed
at the old row are re-pointed at the new one. Many-to-many links belong to the
model that declares them: its new version gets a copy of its links while the
old one keeps its own; a new version of the other side has the links of
current declaring rows re-pointed at it, like a foreign key.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

from django.db import OperationalError, connections, models
from django.db.models import OuterRef, Subquery
from django.db.models.fields.related_descriptors import ForwardManyToOneDescriptor
from django.db.models.signals import post_save, pre_save

from . import transactions
from .exceptions import HistoricalVersionError, StaleVersionError
from .fields import PinnedForeignKey
from .tracking import is_expression, is_versioned, update_loaded_value
from .transactions import CommitConfirmation


@dataclass(frozen=True)
class LinkTable:
    """A many-to-many table with a column pointing at the versioned model."""

    through: type[models.Model]
    column_field: Any  # the through table's ForeignKey to the versioned model
    declared_here: bool  # the versioned model declares the many-to-many
    declaring_field: Any  # the through table's ForeignKey to the declaring side


def link_tables(model: Any) -> list[LinkTable]:
    """Every many-to-many table that links rows of ``model``, both directions."""
    concrete = model._meta.concrete_model
    tables = []
    for field in concrete._meta.get_fields(include_hidden=True):
        if not field.many_to_many:
            continue
        declared_here = isinstance(field, models.ManyToManyField)
        m2m = field if declared_here else field.field
        if declared_here:
            column_name = m2m.m2m_field_name()
        else:  # declared elsewhere, pointing here
            column_name = m2m.m2m_reverse_field_name()
        through = m2m.remote_field.through
        if through is None or isinstance(through, str):  # apps still loading
            continue
        link = LinkTable(
            through,
            through._meta.get_field(column_name),
            declared_here,
            through._meta.get_field(m2m.m2m_field_name()),
        )
        if link not in tables:
            tables.append(link)
    return tables


def referring_fields(
    model: Any, *, include_pinned: bool = False
) -> list[models.ForeignKey]:
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


def is_key(field: Any) -> bool:
    """A foreign key or a one-to-one field: a column naming another row."""
    return bool(field.many_to_one or field.one_to_one) and field.concrete


def followed_keys(model: type[models.Model]) -> tuple[models.ForeignKey, ...]:
    """
    ``model``'s own keys that the fixup re-points in place when their target
    gets a new version: to a versioned model's primary key, not pinned.
    """
    return _followed_keys(model)


@functools.cache
def _followed_keys(model: Any) -> tuple[models.ForeignKey, ...]:
    return tuple(
        field
        for field in model._meta.concrete_fields
        if is_key(field)
        and is_versioned(field.related_model)
        and not isinstance(field, PinnedForeignKey)
        and field.target_field is field.related_model._meta.pk
    )


def current_pk_of(model: type[models.Model], old_pk_reference: OuterRef) -> Subquery:
    """A subquery: the current row's pk for the object whose old row is referenced."""
    rows: models.QuerySet = models.QuerySet(model=model)
    identity = rows.filter(pk=old_pk_reference).values("identity")[:1]
    return Subquery(
        rows.filter(valid_to__isnull=True, identity=Subquery(identity)).values("pk")[:1]
    )


def repoint_referrers(
    model: type[models.Model], using: str, old_pks: list[Any]
) -> None:
    """
    Point every row that referred to one of ``old_pks`` at the current
    version of the same object. Versioned referrers are re-pointed in place,
    on their current rows only: their historical rows keep what they saw.
    Links declared on another model are re-pointed the same way: those of its
    current rows, or all of them when it is not versioned.
    """
    for field in referring_fields(model):
        rows: models.QuerySet = models.QuerySet(model=field.model, using=using).filter(
            **{f"{field.attname}__in": old_pks}
        )
        if is_versioned(field.model):
            rows = rows.filter(valid_to__isnull=True)
        repoint(rows, field, model)
    for link in link_tables(model):
        if link.declared_here:
            continue
        field = link.column_field
        rows = models.QuerySet(model=link.through, using=using).filter(
            **{f"{field.attname}__in": old_pks}
        )
        declaring = link.declaring_field.related_model
        if is_versioned(declaring):
            current: models.QuerySet = models.QuerySet(
                model=declaring, using=using
            ).filter(valid_to__isnull=True)
            rows = rows.filter(**{f"{link.declaring_field.attname}__in": current})
        repoint(rows, field, model)


def follow_copied_links(model: type[models.Model], using: str, pks: list[Any]) -> None:
    """
    Links copied from an old row (a restore) name the other side's rows as
    they were then: re-point them at the current versions of those objects
    (a deleted object's last row stays named).
    """
    for link in link_tables(model):
        other = getattr(link.column_field, "versioning_other_link_key", None)
        if not link.declared_here or other is None:
            continue
        target = other.related_model
        if not is_versioned(target) or isinstance(other, PinnedForeignKey):
            continue
        targets: models.QuerySet = models.QuerySet(model=target, using=using)
        moved = targets.filter(
            valid_to__isnull=False,
            identity__in=targets.filter(valid_to__isnull=True).values("identity"),
        )
        rows: models.QuerySet = models.QuerySet(model=link.through, using=using)
        rows = rows.filter(
            **{f"{link.column_field.attname}__in": pks, f"{other.attname}__in": moved}
        )
        repoint(rows, other, target)


def repoint(rows: models.QuerySet, field: Any, model: type[models.Model]) -> None:
    rows.update(
        **{field.attname: current_pk_of(model, OuterRef(OuterRef(field.attname)))}
    )


def follow_in_memory(
    instance: Any, old_pk: Any, confirmation: CommitConfirmation | None
) -> None:
    """
    After ``instance`` became a new version (its row ``old_pk`` closed), move
    the referrers it holds in its relation caches, or that reached it through
    their key, to the new version; pinned referrers drop it instead. Inside a
    caller's transaction the move stays unconfirmed until commit.
    """
    for field in referring_fields(type(instance), include_pinned=True):
        if isinstance(field, PinnedForeignKey):
            release_pinned_referrers(instance, field)
            continue
        for referrer in cached_referrers(instance, field.remote_field):
            repoint_in_memory(referrer, field, old_pk, instance, confirmation)
        for referrer in remembered_referrers(instance, field):
            repoint_in_memory(referrer, field, old_pk, instance, confirmation)


def release_pinned_referrers(instance: Any, field: models.ForeignKey) -> None:
    """
    A pinned referrer that cached this object must not see it turn into the
    new version: drop the cache, so it loads the version it is pinned to.
    """
    for referrer in remembered_referrers(instance, field):
        if field.is_cached(referrer) and field.get_cached_value(referrer) is instance:
            field.delete_cached_value(referrer)


def cached_referrers(
    instance: Any, relation: models.ForeignObjectRel
) -> Iterable[models.Model]:
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


def repoint_in_memory(
    referrer: Any,
    field: models.ForeignKey,
    old_pk: Any,
    target: Any,
    confirmation: CommitConfirmation | None,
) -> None:
    if getattr(referrer, field.attname) != old_pk:
        return
    if is_versioned(type(referrer)) and referrer.valid_to is not None:
        return
    setattr(referrer, field.attname, target.pk)
    field.set_cached_value(referrer, target)
    update_loaded_value(referrer, field.attname, target.pk)
    transactions.remember_followed_key(referrer, field, target, confirmation)


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


def copy_links(model: type[models.Model], using: str, from_pks: list[Any]) -> None:
    """
    Give the current version of each object whose row is in ``from_pks`` the
    many-to-many links that row declares.
    """
    for link in link_tables(model):
        if not link.declared_here:
            continue
        if copied_columns(link) is None:
            copy_links_in_python(model, link, using, from_pks)
        else:
            copy_links_in_database(model, link, using, from_pks)


def copy_links_in_database(
    model: Any, link: LinkTable, using: str, from_pks: list[Any]
) -> None:
    columns = cast(list[str], copied_columns(link))
    column = link.column_field.column
    connection = connections[using]
    quote = connection.ops.quote_name
    meta = model._meta
    table = quote(meta.db_table)
    pk_column = quote(meta.pk.column)
    identity = quote(meta.get_field("identity").column)
    valid_to = quote(meta.get_field("valid_to").column)
    target = ", ".join(quote(name) for name in columns)
    source = ", ".join(
        f"new_row.{pk_column}" if name == column else f"link_row.{quote(name)}"
        for name in columns
    )
    placeholders = ", ".join(["%s"] * len(from_pks))
    params = [link.column_field.get_db_prep_value(pk, connection) for pk in from_pks]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(link.through._meta.db_table)} ({target}) "
            f"SELECT {source} FROM {quote(link.through._meta.db_table)} link_row "
            f"JOIN {table} old_row ON old_row.{pk_column} = link_row.{quote(column)} "
            f"JOIN {table} new_row ON new_row.{identity} = old_row.{identity} "
            f"AND new_row.{valid_to} IS NULL "
            f"WHERE link_row.{quote(column)} IN ({placeholders})",
            params,
        )


def copy_links_in_python(
    model: type[models.Model], link: LinkTable, using: str, from_pks: list[Any]
) -> None:
    # A link table whose key is not generated by the database (a UUID key,
    # say) needs its new keys made in Python.
    new_pks = dict(
        models.QuerySet(model=model, using=using)
        .filter(pk__in=from_pks)
        .values_list("pk", current_pk_of(model, OuterRef(OuterRef("pk"))))
    )
    rows: models.QuerySet = models.QuerySet(model=link.through, using=using).filter(
        **{f"{link.column_field.attname}__in": from_pks}
    )
    copies = []
    for row in rows:
        new_pk = new_pks[getattr(row, link.column_field.attname)]
        row.pk = None
        row._state.adding = True
        if row._meta.pk.has_default():
            row.pk = row._meta.pk.get_default()
        setattr(row, link.column_field.attname, new_pk)
        copies.append(row)
    models.QuerySet(model=link.through, using=using).bulk_create(copies)


# Referrers that reached a versioned object through their foreign key -------
#
# Django caches `order.item` on the order only; the item does not know the
# order. So that `order.item.save()` also moves `order.item_id`, the forward
# descriptor of every key to a versioned model remembers (weakly) who read or
# set the object through it.

REFERRERS_ATTRIBUTE = "_versioning_referrers"


class FollowingForwardDescriptor(ForwardManyToOneDescriptor):
    """A foreign key's descriptor that tells the versioned target who holds it."""

    def __get__(
        self, instance: models.Model | None, cls: type[models.Model] | None = None
    ) -> models.Model | ForwardManyToOneDescriptor[Any] | None:
        target = super().__get__(instance, cls)
        if instance is not None and target is not None:
            remember_referrer(target, instance, self.field)
        return target

    def __set__(self, instance: models.Model, value: models.Model | None) -> None:
        super().__set__(instance, value)
        if value is not None:
            remember_referrer(value, instance, self.field)
            transactions.remember_followed_key(
                instance, self.field, value, transactions.unconfirmed_row(value)
            )


def remember_referrer(
    target: Any, referrer: models.Model, field: models.ForeignKey
) -> None:
    referrers = target.__dict__.setdefault(REFERRERS_ATTRIBUTE, {})
    referrers[(id(referrer), field.name)] = (weakref.ref(referrer), field)


def remembered_referrers(target: Any, field: models.ForeignKey) -> list[models.Model]:
    found = []
    remembered = target.__dict__.get(REFERRERS_ATTRIBUTE, {})
    for reference, remembered_field in remembered.values():
        referrer = reference()
        if referrer is not None and remembered_field is field:
            found.append(referrer)
    return found


def check_followed_keys_of(model: type[models.Model]) -> None:
    """
    Before ``model`` is saved, check the keys it followed inside a
    transaction, and that a new object's keys name current versions.
    """
    if any(
        is_key(field) and is_versioned(field.related_model)
        for field in model._meta.local_fields
    ):
        pre_save.connect(
            transactions.check_followed_keys,
            sender=model,
            dispatch_uid=f"versioning.unconfirmed.{model._meta.label}",
        )
        pre_save.connect(
            refuse_keys_to_closed_rows,
            sender=model,
            dispatch_uid=f"versioning.closed_targets.{model._meta.label}",
        )
        post_save.connect(
            follow_written_keys,
            sender=model,
            dispatch_uid=f"versioning.follow_written.{model._meta.label}",
        )


def follow_written_keys(
    sender: type[models.Model],
    instance: Any,
    raw: bool = False,
    using: str = "default",
    **kwargs: Any,
) -> None:
    """
    post_save: a key just written that names a row no longer current (its
    target got a new version meanwhile, in another transaction, or the key
    was loaded before it did) is re-pointed at the current version, in place.

    On PostgreSQL the check locks the target row (FOR SHARE) after the write:
    a save of the target that closed it first is waited for and its new
    version followed; one that comes later waits for this write and re-points
    it itself. A deleted object's last row stays named.
    """
    if raw:
        return
    for field in followed_keys(sender):
        key = getattr(instance, field.attname)
        if key is None:
            continue
        current = current_pk_if_moved(field.related_model, key, using)
        if current is DELETED:
            # The key was loaded before its object was deleted: what the
            # delete set on the referrers it found applies to this one too.
            from .deletion import key_set_on_delete  # deletion imports fixup

            current = key_set_on_delete(field, using)
            if current is DELETED:
                continue
        elif current is None:
            continue
        rows: models.QuerySet = models.QuerySet(model=sender, using=using)
        rows.filter(pk=instance.pk).update(**{field.attname: current})
        if is_expression(current):  # a database default (Django 6.1)
            current = rows.values_list(field.attname, flat=True).get(pk=instance.pk)
        setattr(instance, field.attname, current)
        update_loaded_value(instance, field.attname, current)


#: What names a closed row whose object was deleted: there is no current pk.
DELETED = object()


def current_pk_if_moved(target: Any, key: Any, using: str) -> Any:
    """
    The current version's pk if row ``key`` was closed by a new version;
    DELETED if it was closed by a delete.
    """
    connection = connections[using]
    quote = connection.ops.quote_name
    meta = target._meta
    table, pk = quote(meta.db_table), quote(meta.pk.column)
    identity = quote(meta.get_field("identity").column)
    valid_to = quote(meta.get_field("valid_to").column)
    lock = " FOR SHARE" if connection.features.has_select_for_update else ""
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {valid_to}, {identity} FROM {table} WHERE {pk} = %s{lock}",
                [meta.pk.get_db_prep_value(key, connection)],
            )
            row = cursor.fetchone()
    except OperationalError as error:
        if not transactions.lost_to_another_writer(error):
            raise
        raise StaleVersionError(
            f"Writing a key to {meta.object_name} {key} lost a race with another "
            "writer; nothing was written. Run the write again."
        ) from error
    if row is None or row[0] is None:
        return None
    # A new statement: it sees the new version a save that was waited for
    # committed (the locking read above returns the closed row as it is now).
    rows: models.QuerySet = models.QuerySet(model=target, using=using)
    current = rows.filter(valid_to__isnull=True, identity=row[1])
    current_pk = current.values_list("pk", flat=True).first()
    return DELETED if current_pk is None else current_pk


def refuse_keys_to_closed_rows(
    sender: type[models.Model], instance: Any, raw: bool = False, **kwargs: Any
) -> None:
    """
    pre_save: a new object may not point at a version that is no longer
    current (one read as of a moment, say): its key would never follow the
    object. Known from the object in hand, without a query.
    """
    if raw or not instance._state.adding:
        return
    for field in followed_keys(sender):
        target: Any = field.get_cached_value(instance, default=None)
        if (
            target is not None
            and target.valid_to is not None
            and target.pk == getattr(instance, field.attname)
        ):
            raise HistoricalVersionError(
                f"{sender._meta.object_name}.{field.name} would point at "
                f"{target._meta.object_name} {target.identity} version "
                f"{target.version}, which is no longer current. Assign the "
                "current version (obj.current_version()); to keep a version, "
                "use a PinnedForeignKey."
            )
