"""How the admin's pages show a version's data and its changes."""

from __future__ import annotations

from typing import Any

from django.contrib.admin.utils import display_for_field
from django.db import models
from django.utils.text import capfirst

from .. import links
from ..models import data_fields


def shown_fields(model: Any) -> list[Any]:
    """A version's data: its data fields, then the links it declares."""
    return [*data_fields(model), *links.declared_links(model)]


def display_value(field: models.Field[Any, Any], obj: Any) -> Any:
    if field.many_to_many:
        return str(links.links_of(obj, field))
    value = field.value_from_object(obj)
    if field.is_relation and value is not None:
        related = getattr(obj, field.name, None)
        return str(related) if related is not None else value
    return display_for_field(value, field, "-")


def history_entries(page: list[Any], latest: Any = None) -> list[dict[str, Any]]:
    """
    Each version on a history page (newest first) with what changed since
    the one before it. ``latest`` is the newest version when the page does
    not start with it.
    """
    latest = latest or (page[0] if page else None)
    entries = []
    previous_of_last = (
        page[-1].previous_version() if page and page[-1].version > 1 else None
    )
    links.prefetch_links([*page, previous_of_last])
    for index, version in enumerate(page):
        previous = page[index + 1] if index + 1 < len(page) else previous_of_last
        if previous is not None and previous.version != version.version - 1:
            previous = None
        changes = previous.diff(version) if previous is not None else {}
        entries.append(
            {
                "version": version,
                "changes": [
                    (
                        capfirst(version._meta.get_field(name).verbose_name),
                        old,
                        new,
                    )
                    for name, (old, new) in changes.items()
                ],
                "created": version.version == 1,
                "deleted": version.pk == latest.pk and version.valid_to is not None,
            }
        )
    return entries
