"""How the admin's pages show a version's data."""

from __future__ import annotations

from typing import Any

from django.contrib.admin.utils import display_for_field
from django.db import models

from .. import links
from ..models import data_fields


def shown_fields(model: Any) -> list[Any]:
    """A version's data: its data fields, then the links it declares."""
    return [*data_fields(model), *links.declared_links(model)]


def display_value(field: models.Field[Any, Any], obj: Any, empty: str = "-") -> Any:
    """``field`` of ``obj`` as a page shows it; no value and no links read ``empty``."""
    if field.many_to_many:
        linked = links.links_of(obj, field)
        return str(linked) if linked.objects else empty
    value = field.value_from_object(obj)
    if field.is_relation and value is not None:
        related = getattr(obj, field.name, None)
        return str(related) if related is not None else value
    return display_for_field(value, field, empty)


def shown_change(value: Any, empty: str) -> Any:
    """A value before or after a change, with no value and no links read ``empty``."""
    if value is None or value == "" or (isinstance(value, links.Links) and not value):
        return empty
    return value
