"""
What refers to the rows of a versioned model: keys from any model (plain,
pinned, one-to-one, a versioned referrer's historical rows), the links other
objects hold to it through a many-to-many table, and generic foreign keys. A
version that something refers to is kept by ``prune``. The links a version
holds itself (a many-to-many its model declares) are not references to it:
they are part of that version and go with it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.core.exceptions import ValidationError
from django.db import models

from .statements import plain_rows


@dataclass(frozen=True)
class KeyReference:
    """A foreign key or one-to-one, on any model, to the versioned model."""

    field: Any
    label: str

    def referenced(self, model: Any, using: str, pks: Collection[Any]) -> set[Any]:
        """Which of ``pks`` (rows of ``model``) some row's key names."""
        target = self.field.target_field
        if target.primary_key:
            values = {pk: pk for pk in pks}
        else:
            values = dict(
                plain_rows(model, using)
                .filter(pk__in=pks)
                .values_list(target.attname, "pk")
            )
        attname = self.field.attname
        named = (
            plain_rows(self.field.model, using)
            .filter(**{f"{attname}__in": list(values)})
            .values_list(attname, flat=True)
            .distinct()
        )
        return {values[value] for value in named if value in values}


@dataclass(frozen=True)
class GenericReference:
    """A content type and object id pair (a GenericForeignKey's columns)."""

    model: Any
    content_type_field: Any
    object_id_field: Any
    label: str

    def referenced(self, model: Any, using: str, pks: Collection[Any]) -> set[Any]:
        content_types = content_type_ids(model, using)
        if not content_types:
            return set()
        values = {object_id_value(self.object_id_field, pk): pk for pk in pks}
        values.pop(None, None)
        attname = self.object_id_field.attname
        named = (
            plain_rows(self.model, using)
            .filter(
                **{
                    f"{self.content_type_field.attname}__in": content_types,
                    f"{attname}__in": list(values),
                }
            )
            .values_list(attname, flat=True)
            .distinct()
        )
        return {values[value] for value in named if value in values}


Reference = KeyReference | GenericReference


def references_to(model: Any) -> list[Reference]:
    """Every way a row can refer to a row of ``model``, its own links excepted."""
    concrete = model._meta.concrete_model
    own = set(own_link_keys(concrete))
    references: list[Reference] = []
    for relation in concrete._meta.get_fields(include_hidden=True):
        if relation.concrete or not relation.auto_created or relation.many_to_many:
            continue  # a many-to-many is reached through its table's keys
        field = relation.field
        if isinstance(field, models.ForeignKey) and field not in own:
            references.append(KeyReference(field, key_label(field)))
    references.extend(generic_references(concrete))
    return references


def referenced_versions(
    model: Any, using: str, pks: Collection[Any]
) -> dict[str, set[Any]]:
    """Of ``pks``, those that something refers to, by what refers to them."""
    found: dict[str, set[Any]] = {}
    for reference in references_to(model):
        referenced = reference.referenced(model, using, pks)
        if referenced:
            found[reference.label] = found.get(reference.label, set()) | referenced
    return found


def own_link_keys(model: Any) -> list[models.ForeignKey]:
    """The keys of ``model``'s own link rows: its many-to-many tables' owner side."""
    keys = []
    for m2m in model._meta.concrete_model._meta.many_to_many:
        through = m2m.remote_field.through
        if isinstance(through, str):  # not set up yet
            continue
        keys.append(through._meta.get_field(m2m.m2m_field_name()))
    return keys


def key_label(field: Any) -> str:
    declaring = field.model._meta.auto_created
    if declaring:  # an automatic link table: name the many-to-many
        for m2m in declaring._meta.local_many_to_many:
            if m2m.remote_field.through is field.model:
                return f"{declaring._meta.label}.{m2m.name}"
    return f"{field.model._meta.label}.{field.name}"


def generic_references(model: Any) -> list[GenericReference]:
    """Generic foreign keys anywhere, and generic relations declared on ``model``."""
    if not apps.is_installed("django.contrib.contenttypes"):
        return []
    from django.contrib.contenttypes.fields import GenericForeignKey, GenericRelation

    pairs: dict[tuple[Any, str, str], str] = {}
    for other in model._meta.apps.get_models():
        for field in other._meta.private_fields:
            if isinstance(field, GenericForeignKey):
                key = (other, field.ct_field, field.fk_field)
                pairs.setdefault(key, f"{other._meta.label}.{field.name}")
    for field in model._meta.private_fields:
        if isinstance(field, GenericRelation):
            related = field.related_model
            key = (related, field.content_type_field_name, field.object_id_field_name)
            pairs.setdefault(key, f"{model._meta.label}.{field.name}")
    return [
        GenericReference(
            other,
            other._meta.get_field(content_type),
            other._meta.get_field(object_id),
            label,
        )
        for (other, content_type, object_id), label in pairs.items()
    ]


def content_type_ids(model: Any, using: str) -> list[Any]:
    """The content types naming ``model`` or one of its proxies in ``using``."""
    from django.contrib.contenttypes.models import ContentType

    concrete = model._meta.concrete_model
    condition = models.Q(pk__in=[])
    for candidate in concrete._meta.apps.get_models():
        if candidate._meta.concrete_model is concrete:
            meta = candidate._meta
            condition |= models.Q(app_label=meta.app_label, model=meta.model_name)
    return list(
        ContentType.objects.db_manager(using)
        .filter(condition)
        .values_list("pk", flat=True)
    )


def object_id_value(field: Any, pk: Any) -> Any:
    """``pk`` as an object id column holds it (what a GenericForeignKey writes)."""
    try:
        return field.to_python(pk)
    except ValidationError:
        return None
