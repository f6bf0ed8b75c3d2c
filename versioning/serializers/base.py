"""What versioning's serializers add to Django's, whatever the format."""

from __future__ import annotations

import datetime
import functools
import itertools
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.core.management.utils import parse_apps_and_model_labels
from django.db import DEFAULT_DB_ALIAS, models, router

from versioning.tracking import is_versioned

if TYPE_CHECKING:
    from django.core.serializers import base, python

    SerializerBase = base.Serializer
    PythonSerializerBase = python.Serializer
else:
    SerializerBase = PythonSerializerBase = object

#: Rows read ahead, so that their links take one query per many-to-many field
#: (within every backend's limit on query parameters).
CHUNK_SIZE = 500

PREFETCH_CACHE = "_prefetched_objects_cache"


@dataclass(frozen=True)
class DumpSelection:
    """The models a ``dumpdata`` run writes: its labels, less its ``--exclude``."""

    chosen_models: frozenset[Any]
    chosen_apps: frozenset[Any]
    excluded_models: frozenset[Any]
    excluded_apps: frozenset[Any]

    @classmethod
    def of(cls, labels: Iterable[str], excludes: Iterable[str]) -> DumpSelection:
        """Raises CommandError for an unknown label, as ``dumpdata`` does."""
        chosen_models, chosen_apps = parse_apps_and_model_labels(labels)
        excluded_models, excluded_apps = parse_apps_and_model_labels(excludes)
        return cls(
            frozenset(chosen_models),
            frozenset(chosen_apps),
            frozenset(excluded_models),
            frozenset(excluded_apps),
        )

    def __contains__(self, model: Any) -> bool:
        app = model._meta.app_config
        if model in self.excluded_models or app in self.excluded_apps:
            return False
        if not self.chosen_models and not self.chosen_apps:
            return True
        return model in self.chosen_models or app in self.chosen_apps


#: The models of the dump being written; None outside versioning's dumpdata.
dump_selection: ContextVar[DumpSelection | None] = ContextVar(
    "versioning_dump_selection", default=None
)


class FixtureSerializerMixin(SerializerBase):
    """Stored links, and the versions a dump's rows point at."""

    def serialize(self, queryset: Iterable[models.Model], **options: Any) -> Any:
        rows = fixture_rows(
            queryset,
            dump_selection.get(),
            natural_keys=options.get("use_natural_foreign_keys", False),
        )
        return super().serialize(rows, **options)


class ExactTimesMixin(PythonSerializerBase):
    """A versioned row's datetimes and times to the microsecond, as text."""

    _current: dict[str, Any]

    def handle_field(self, obj: models.Model, field: Any) -> None:
        super().handle_field(obj, field)
        value = self._current[field.name]
        exact = isinstance(value, datetime.datetime) or (
            isinstance(value, datetime.time) and value.tzinfo is None
        )
        if exact and is_versioned(type(obj)):
            text = value.isoformat()
            self._current[field.name] = (
                text.removesuffix("+00:00") + "Z" if text.endswith("+00:00") else text
            )


def fixture_rows(
    objects: Iterable[models.Model],
    selection: DumpSelection | None,
    *,
    natural_keys: bool,
) -> Iterator[models.Model]:
    """
    ``objects`` with their stored links loaded, followed, in a dump, by the
    historical versions they point at (and those these point at) that the
    dump has not written.
    """
    referenced = ReferencedVersions(selection) if selection is not None else None
    for chunk in chunks(objects):
        load_stored_links(chunk, natural_keys=natural_keys)
        for row in chunk:
            if referenced is not None:
                referenced.saw(row)
            yield row
    while referenced is not None and (missing := referenced.missing()):
        for model, pks in missing.items():
            rows: models.QuerySet = models.QuerySet(model=model, using=referenced.using)
            for some in chunks(sorted(pks)):
                chunk = list(
                    rows.filter(pk__in=some, valid_to__isnull=False).order_by("pk")
                )
                load_stored_links(chunk, natural_keys=natural_keys)
                for row in chunk:
                    referenced.saw(row)
                    yield row


class ReferencedVersions:
    """The rows of versioned models that a dump names, and those it has written."""

    def __init__(self, selection: DumpSelection) -> None:
        self.selection = selection
        self.written: dict[Any, set[Any]] = {}
        self.named: dict[Any, set[Any]] = {}
        self.using = DEFAULT_DB_ALIAS

    def saw(self, row: models.Model) -> None:
        model = row._meta.concrete_model
        self.using = row._state.db or self.using
        if is_versioned(model):
            self.written.setdefault(model, set()).add(row.pk)
        for field in keys_to_versions(model):
            value = getattr(row, field.attname)
            if value is not None:
                self.name(field.related_model._meta.concrete_model, value)
        cache = getattr(row, PREFETCH_CACHE, {})
        for m2m in stored_link_fields(model):
            for target in cache.get(m2m.name, ()):
                self.name(target._meta.concrete_model, target.pk)
        for content_type, object_id in generic_keys(model):
            self.name_generic(
                getattr(row, content_type.attname), getattr(row, object_id.attname)
            )

    def name(self, model: Any, pk: Any) -> None:
        if (
            is_versioned(model)
            and model in self.selection
            and router.allow_migrate_model(self.using, model)
        ):
            self.named.setdefault(model, set()).add(pk)

    def name_generic(self, content_type_id: Any, object_id: Any) -> None:
        if content_type_id is None or object_id is None:
            return
        from django.contrib.contenttypes.models import ContentType

        try:
            content_type = ContentType.objects.db_manager(self.using).get_for_id(
                content_type_id
            )
        except ObjectDoesNotExist:
            return
        named = content_type.model_class()
        if named is None:
            return
        model: Any = named._meta.concrete_model
        try:
            pk = model._meta.pk.to_python(object_id)
        except ValidationError:
            return
        self.name(model, pk)

    def missing(self) -> dict[Any, set[Any]]:
        """Named but not written yet; each is asked for once."""
        missing = {}
        for model, pks in self.named.items():
            written = self.written.setdefault(model, set())
            unwritten = pks - written
            if unwritten:
                missing[model] = unwritten
                written |= unwritten
        return missing


def load_stored_links(rows: list[models.Model], *, natural_keys: bool) -> None:
    """
    Put each row's stored links where Django's serializers look first (its
    prefetch cache): the link rows as they are, also those that the related
    manager of a versioned model leaves out. One query per field and chunk.
    """
    by_model: dict[Any, list[models.Model]] = {}
    for row in rows:
        by_model.setdefault(row._meta.concrete_model, []).append(row)
    for model, group in by_model.items():
        using = group[0]._state.db
        for m2m in stored_link_fields(model):
            through: Any = m2m.remote_field.through
            source = through._meta.get_field(m2m.m2m_field_name()).attname
            target = through._meta.get_field(m2m.m2m_reverse_field_name()).attname
            pairs = list(
                models.QuerySet(model=through, using=using)
                .filter(**{f"{source}__in": [row.pk for row in group]})
                .order_by("pk")
                .values_list(source, target)
            )
            targets: models.QuerySet = models.QuerySet(
                model=m2m.related_model, using=using
            )
            if not (natural_keys and hasattr(m2m.related_model, "natural_key")):
                targets = targets.only("pk")
            found = targets.in_bulk({target_pk for _, target_pk in pairs})
            linked: dict[Any, list[models.Model]] = {}
            for source_pk, target_pk in pairs:
                if target_pk in found:
                    linked.setdefault(source_pk, []).append(found[target_pk])
            for row in group:
                cache = row.__dict__.setdefault(PREFETCH_CACHE, {})
                cache[m2m.name] = evaluated(targets, linked.get(row.pk, []))


def evaluated(queryset: models.QuerySet, rows: list[models.Model]) -> models.QuerySet:
    """A queryset holding ``rows``, as prefetch_related() leaves one in the cache."""
    queryset = queryset.all()
    queryset._result_cache = rows
    return queryset


@functools.cache
def stored_link_fields(model: Any) -> tuple[Any, ...]:
    """The many-to-many fields serialized with ``model`` that touch versioning."""
    return tuple(
        m2m
        for m2m in model._meta.local_many_to_many
        if m2m.serialize
        and m2m.remote_field.through._meta.auto_created
        and (is_versioned(model) or is_versioned(m2m.related_model))
    )


@functools.cache
def keys_to_versions(model: Any) -> tuple[Any, ...]:
    """``model``'s keys whose values are primary keys of versioned rows."""
    return tuple(
        field
        for field in model._meta.local_fields
        if isinstance(field, models.ForeignKey)
        and is_versioned(field.related_model)
        and field.target_field.primary_key
    )


@functools.cache
def generic_keys(model: Any) -> tuple[tuple[Any, Any], ...]:
    """The (content type, object id) fields of ``model``'s generic foreign keys."""
    if not apps.is_installed("django.contrib.contenttypes"):
        return ()
    from django.contrib.contenttypes.fields import GenericForeignKey

    return tuple(
        (model._meta.get_field(field.ct_field), model._meta.get_field(field.fk_field))
        for field in model._meta.private_fields
        if isinstance(field, GenericForeignKey)
    )


def chunks(items: Iterable[Any]) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, CHUNK_SIZE)):
        yield chunk
