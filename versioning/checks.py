"""System checks for versioned models (ids versioning.E001..., versioning.W001...)."""

from __future__ import annotations

from typing import Any

from django.core import checks
from django.core.exceptions import FieldDoesNotExist
from django.db import models

from .managers import CurrentManager, VersionedQuerySetMixin
from .tracking import BOOKKEEPING_FIELD_NAMES, data_fields, is_versioned

SCOPED_HINT = (
    "Every version of an object repeats its values, so this would fail on "
    "the second version. Scope it to current rows instead: "
    "models.UniqueConstraint(fields=[...], condition=models.Q(valid_to__isnull=True), "
    "name=...) in Meta.constraints; model validation checks it in forms and the admin."
)


def check_versioned_model(
    model: type[models.Model], base: type[models.Model]
) -> list[checks.CheckMessage]:
    if model._meta.abstract or model._meta.proxy:
        return []
    return [
        *check_reserved_names(model, base),
        *check_primary_key(model),
        *check_inheritance(model),
        *check_uniqueness(model),
        *check_cascading_keys(model),
        *check_data_field_indexes(model),
        *check_default_manager(model),
        *check_queryset_classes(model),
        *check_through_models(model),
    ]


def check_reserved_names(model: Any, base: Any) -> list[checks.Error]:
    errors = []
    for name in sorted(BOOKKEEPING_FIELD_NAMES):
        ours = base._meta.get_field(name)
        try:
            field = model._meta.get_field(name)
        except FieldDoesNotExist:
            field = None
        # Fields inherited from an abstract model are copies that keep their
        # creation_counter; a redefinition has a new one.
        if field is None or field.creation_counter != ours.creation_counter:
            errors.append(
                checks.Error(
                    f"'{model._meta.label}.{name}' redefines a field that "
                    "versioning manages.",
                    hint=f"Rename your field; '{name}' is reserved by Versioned.",
                    obj=model,
                    id="versioning.E001",
                )
            )
    return errors


def check_primary_key(model: type[models.Model]) -> list[checks.Error]:
    pk = model._meta.pk
    if isinstance(pk, models.AutoField) or pk.has_default() or pk.has_db_default():
        return []
    return [
        checks.Error(
            f"The primary key '{model._meta.label}.{pk.name}' has no default, "
            "so new versions cannot get a key of their own.",
            hint="Use an auto-incrementing key (the default) or give the key a "
            "default, e.g. models.UUIDField(primary_key=True, default=uuid.uuid4).",
            obj=model,
            id="versioning.E002",
        )
    ]


def check_inheritance(model: type[models.Model]) -> list[checks.Error]:
    if not model._meta.parents:
        return []
    return [
        checks.Error(
            f"'{model._meta.label}' uses multi-table inheritance, which "
            "versioning does not support: the parent's rows would not be versioned.",
            hint="Make the parent abstract (Meta.abstract = True), or use a "
            "proxy model or a OneToOneField instead.",
            obj=model,
            id="versioning.E003",
        )
    ]


def check_uniqueness(model: type[models.Model]) -> list[checks.Error]:
    label = model._meta.label
    errors = []
    for field in model._meta.local_fields:
        if field.primary_key or field.name in BOOKKEEPING_FIELD_NAMES:
            continue
        if isinstance(field, models.OneToOneField):
            errors.append(
                checks.Error(
                    f"'{label}.{field.name}' is a OneToOneField, which is unique.",
                    hint="Use a ForeignKey with a UniqueConstraint scoped to current "
                    "rows. " + SCOPED_HINT,
                    obj=field,
                    id="versioning.E005",
                )
            )
        elif field.unique:
            errors.append(
                checks.Error(
                    f"'{label}.{field.name}' has unique=True.",
                    hint="Remove unique=True. " + SCOPED_HINT,
                    obj=field,
                    id="versioning.E004",
                )
            )
    if model._meta.unique_together:
        errors.append(
            checks.Error(
                f"'{label}' has Meta.unique_together.",
                hint="Replace it. " + SCOPED_HINT,
                obj=model,
                id="versioning.E006",
            )
        )
    for constraint in model._meta.constraints:
        if (
            isinstance(constraint, models.UniqueConstraint)
            and constraint.condition is None
            and "identity" not in constraint.fields
        ):
            errors.append(
                checks.Error(
                    f"'{label}' has the unconditional unique constraint "
                    f"'{constraint.name}'.",
                    hint="Add condition=models.Q(valid_to__isnull=True). "
                    + SCOPED_HINT,
                    obj=model,
                    id="versioning.E007",
                )
            )
    return errors


def check_cascading_keys(model: Any) -> list[checks.Warning]:
    # Deleting a versioned target closes its referrers instead (delete()
    # applies on_delete); a plain target's rows are really deleted.
    warnings = []
    for field in model._meta.local_fields:
        if (
            field.many_to_one
            and field.remote_field.on_delete is models.CASCADE
            and not is_versioned(field.related_model)
        ):
            warnings.append(
                checks.Warning(
                    f"'{model._meta.label}.{field.name}' has on_delete=CASCADE: "
                    "deleting the row it points at erases every version of "
                    "this model that points there.",
                    hint="Use on_delete=models.PROTECT to keep history safe.",
                    obj=field,
                    id="versioning.W001",
                )
            )
    return warnings


def check_data_field_indexes(model: Any) -> list[checks.Warning]:
    """
    A plain index on a data field holds every version of each object, so a
    lookup of current rows through it reads history too. Quiet when the
    field also leads an index or unique constraint of current rows only.
    Foreign keys keep Django's index: pruning and deletion read history
    through them.
    """
    label = model._meta.label
    for_current_rows = fields_leading_current_row_indexes(model)
    warnings = []
    field: Any
    for field in data_fields(model):
        if (
            field.db_index
            and not field.unique
            and not field.is_relation
            and field.name not in for_current_rows
        ):
            warnings.append(
                checks.Warning(
                    f"'{label}.{field.name}' has db_index=True: the index holds "
                    "every version of each object, so a lookup of current rows "
                    f"by '{field.name}' reads through their history too.",
                    hint="Index current rows only: remove db_index=True and add "
                    f"versioning.CurrentIndex(fields=['{field.name}'], name=...) "
                    "to Meta.indexes. Keep a plain index as well only to look "
                    "up history by this field.",
                    obj=field,
                    id="versioning.W003",
                )
            )
    data_names = {field.name for field in data_fields(model)}
    for index in model._meta.indexes:
        names = indexed_field_names(index)
        if (
            selects_current_rows_only(index.condition)
            or not data_names.intersection(names)
            or (index.fields and names[0] in for_current_rows)
        ):
            continue
        warnings.append(
            checks.Warning(
                f"The index '{index.name}' of '{label}' holds every version of "
                "each object, so a lookup of current rows through it reads "
                "through their history too.",
                hint="Index current rows only: versioning.CurrentIndex(...) "
                "instead of models.Index(...). Keep a plain index as well only "
                "to look up history by these fields.",
                obj=model,
                id="versioning.W003",
            )
        )
    return warnings


def fields_leading_current_row_indexes(model: Any) -> set[str]:
    leading = set()
    for scoped in [*model._meta.indexes, *model._meta.constraints]:
        fields = getattr(scoped, "fields", None)
        condition = getattr(scoped, "condition", None)
        if fields and selects_current_rows_only(condition):
            leading.add(fields[0].removeprefix("-"))
    return leading


def indexed_field_names(index: Any) -> list[str]:
    if index.fields:
        return [name.removeprefix("-") for name in index.fields]
    nodes: list[Any] = [
        node
        for expression in index.expressions
        for node in (
            [expression] if isinstance(expression, models.F) else expression.flatten()
        )
    ]
    references: list[Any] = [node for node in nodes if isinstance(node, models.F)]
    return [reference.name for reference in references]


def selects_current_rows_only(condition: models.Q | None) -> bool:
    """Whether a condition holds only for current rows (valid_to IS NULL)."""
    if not isinstance(condition, models.Q) or condition.negated:
        return False
    if condition.connector != models.Q.AND and len(condition.children) > 1:
        return False
    return any(
        child in (("valid_to__isnull", True), ("valid_to", None))
        or (isinstance(child, models.Q) and selects_current_rows_only(child))
        for child in condition.children
    )


def check_default_manager(model: type[models.Model]) -> list[checks.Warning]:
    if isinstance(model._default_manager, CurrentManager):
        return []
    return [
        checks.Warning(
            f"The default manager of '{model._meta.label}' is not versioning's "
            "CurrentManager, so the admin, forms and related managers will see "
            "historical rows too.",
            hint="Declare objects = CurrentManager() (versioning.managers) first, or "
            "subclass it for your own manager.",
            obj=model,
            id="versioning.W002",
        )
    ]


def check_queryset_classes(model: type[models.Model]) -> list[checks.Error]:
    """A manager whose queryset is Django's own would overwrite rows in place."""
    errors = []
    for manager in model._meta.managers:
        queryset_class = getattr(manager, "_queryset_class", models.QuerySet)
        if issubclass(queryset_class, VersionedQuerySetMixin):
            continue
        errors.append(
            checks.Error(
                f"Manager '{manager.name}' of '{model._meta.label}' uses "
                f"{queryset_class.__name__}, which is not a versioned queryset: "
                "its update() and delete() would overwrite or erase rows, "
                "history included.",
                hint="Base your queryset class on versioning.managers."
                "VersionedQuerySet (or add VersionedQuerySetMixin), and build "
                "the manager with CurrentManager.from_queryset(YourQuerySet)().",
                obj=model,
                id="versioning.E008",
            )
        )
    return errors


def check_through_models(model: Any) -> list[checks.Error]:
    """
    A versioned model named as a many-to-many's ``through``: links are already
    versions of the declaring object (each of its versions keeps its own link
    rows), and link rows that are versions themselves would be versioned twice.
    """
    errors = []
    seen = set()
    for key in model._meta.local_fields:
        if not key.many_to_one or isinstance(key.related_model, str):
            continue
        for m2m in key.related_model._meta.local_many_to_many:
            if m2m.remote_field.through is not model or m2m in seen:
                continue
            seen.add(m2m)
            errors.append(
                checks.Error(
                    f"'{model._meta.label}' is the through model of "
                    f"'{m2m.model._meta.label}.{m2m.name}' and is versioned "
                    "itself, which versioning does not support: copying the "
                    "links to a new version fails, and removed links stay.",
                    hint=f"Make '{model._meta.object_name}' a plain model (not "
                    "Versioned): each version of the object that declares the "
                    "ManyToManyField keeps its own links, so they have history "
                    "already. If a link has a history of its own, drop the "
                    "ManyToManyField and use the model through its ForeignKeys.",
                    obj=model,
                    id="versioning.E009",
                )
            )
    return errors
