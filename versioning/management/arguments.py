"""Parsing shared by the management commands; every failure is a CommandError."""

from __future__ import annotations

import datetime
import re
import uuid
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.db.models import Count, F, Max
from django.utils import dateparse, timezone

from versioning.tracking import is_versioned

if TYPE_CHECKING:
    from versioning.models import Versioned

DURATION_UNITS = {
    "s": "seconds",
    "m": "minutes",
    "h": "hours",
    "d": "days",
    "w": "weeks",
}


def versioned_model(label: str) -> type[Versioned]:
    """The versioned model named ``app_label.ModelName``."""
    try:
        model = apps.get_model(label)
    except (LookupError, ValueError):
        raise CommandError(
            f"Unknown model '{label}'. Name it as app_label.ModelName, "
            "for example catalog.Product."
        ) from None
    if not is_versioned(model):
        raise CommandError(
            f"{model._meta.label} is not a versioned model: it does not inherit "
            "versioning.models.Versioned."
        )
    return model


def moment(value: str, option: str) -> datetime.datetime:
    """An aware datetime from ISO 8601 or '2026-11-27 14:00' (project time zone)."""
    text = value.strip()
    try:
        parsed = dateparse.parse_datetime(text)
        if parsed is None:
            day = dateparse.parse_date(text)
            parsed = datetime.datetime.combine(day, datetime.time()) if day else None
    except ValueError:
        parsed = None
    if parsed is None:
        raise CommandError(
            f"{option}: '{value}' is not a date and time. Use ISO 8601, for "
            "example 2026-11-27T14:00:00+00:00, or '2026-11-27 14:00' in the "
            "project's time zone."
        )
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed)
    return parsed


def duration(value: str) -> datetime.timedelta:
    """A timedelta from '90d', '12h', '2w', '30m' or '45s'."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", value)
    if not match or int(match[1]) == 0:
        raise CommandError(
            f"--older-than: '{value}' is not a duration. Use a positive number "
            "and a unit: 45s, 30m, 12h, 90d or 2w."
        )
    return datetime.timedelta(**{DURATION_UNITS[match[2]]: int(match[1])})


def positive(value: str, option: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1:
        raise CommandError(f"{option}: '{value}' must be a whole number of 1 or more.")
    return number


def identity_of(model: type[Versioned], reference: str, using: str) -> uuid.UUID:
    """The identity named by a UUID, or by the primary key of a stored version."""
    rows = model.all_versions.using(using)
    try:
        identity = uuid.UUID(reference)
    except ValueError:
        identity = None
    if identity is not None and rows.filter(identity=identity).exists():
        return identity
    try:
        pk = model._meta.pk.to_python(reference)
        found = rows.filter(pk=pk).values_list("identity", flat=True).first()
    except (ValidationError, ValueError, TypeError):
        pk = found = None
    label = model._meta.label
    if found is None and pk is not None and may_have_been_pruned(model, using, pk):
        raise CommandError(
            f"No version of {label} has primary key '{reference}' any more: prune "
            "has removed old versions of this model, and this may have been one. "
            "Name the object by its identity (UUID), which prune never changes, or "
            "by the primary key of a version still stored."
        )
    if found is None:
        raise CommandError(
            f"No {label} has identity or primary key '{reference}'. Give an "
            "identity (UUID) or the primary key of one of its stored versions."
        )
    return found


def may_have_been_pruned(model: type[Versioned], using: str, pk: Any) -> bool:
    """
    Whether ``pk``, which names no stored version, could have named one that
    prune removed: some object lacks versions before its newest, and a
    number below the largest stored key (a larger one was never given out).
    """
    rows = model.all_versions.using(using).order_by()
    if isinstance(pk, int) and not rows.filter(pk__gt=pk).exists():
        return False
    return (
        rows.values("identity")
        .annotate(stored=Count("pk"), newest=Max("version"))
        .filter(stored__lt=F("newest"))
        .exists()
    )
