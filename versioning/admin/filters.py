"""VersionedAdmin's change-list filters: the table as of a moment, deleted objects."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Iterator
from typing import Any

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.db import models
from django.db.models import Exists, OuterRef
from django.db.models.lookups import IsNull
from django.db.models.sql.where import AND
from django.http import HttpRequest
from django.utils import dateparse, timezone
from django.utils.translation import gettext_lazy as _

from ..joins import ALL, CURRENT

AS_OF_PARAMETER = "as_of"
STATUS_PARAMETER = "status"


def parse_as_of(value: str | None) -> datetime.datetime | None:
    """A moment from the filter's input (datetime-local or ISO 8601), or None."""
    if not value:
        return None
    try:
        # A bare date means the end of that day: the table as the day left it.
        day = dateparse.parse_date(value.strip())
        moment = (
            datetime.datetime.combine(day, datetime.time.max)
            if day is not None
            else dateparse.parse_datetime(value.strip())
        )
    except ValueError:
        return None
    if moment is not None and timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


def every_version(queryset: models.QuerySet[Any]) -> models.QuerySet[Any]:
    """
    ``queryset`` (of current rows, as the default manager gives them) applied
    to every version: the same filters, annotations and ordering, without the
    current-rows condition. A queryset whose filters cannot be separated from
    that condition (e.g. a union) gives every version of the objects it shows.
    Querysets of history (``all_versions``, ``as_of()``) are returned as they are.
    """
    model = queryset.model
    if getattr(queryset, "versioning_scope", CURRENT) != CURRENT:
        return queryset
    clone = queryset.all()
    query = clone.query
    where = query.where
    if (
        where.connector == AND
        and not where.negated
        and not query.combinator
        and not query.is_sliced
    ):
        for index, child in enumerate(where.children):
            lhs = getattr(child, "lhs", None)
            if (
                isinstance(child, IsNull)
                and child.rhs is True
                and getattr(getattr(lhs, "target", None), "name", None) == "valid_to"
                and getattr(lhs, "alias", None) == query.base_table
            ):
                del where.children[index]
                clone.versioning_scope = ALL  # type: ignore[attr-defined]
                return clone
    return model.all_versions.filter(identity__in=queryset.values("identity"))


def deleted_objects(
    model: type[Any],
    queryset: models.QuerySet[Any] | None = None,
    as_of: datetime.datetime | None = None,
) -> models.QuerySet[Any]:
    """
    The last version of every object that has no current version, among the
    versions of ``queryset`` (by default, all of them).

    ``as_of`` asks the same of the table at that moment: the objects deleted
    as of then, whose last version had closed at or before it, with no later
    version begun by then. An object deleted afterwards was current then; one
    deleted and restored since is listed.
    """
    newer = model.all_versions.filter(
        identity=OuterRef("identity"), version__gt=OuterRef("version")
    )
    rows = model.all_versions.all() if queryset is None else every_version(queryset)
    if as_of is None:
        return rows.filter(valid_to__isnull=False).exclude(Exists(newer))
    return rows.filter(valid_to__lte=as_of).exclude(
        Exists(newer.filter(valid_from__lte=as_of))
    )


class NoFacetsMixin:
    # These filters swap the queryset for another one; per-choice counts
    # would be counts of a different table.
    def __init__(
        self,
        request: HttpRequest,
        params: dict[str, Any],
        model: type[models.Model],
        model_admin: admin.ModelAdmin[Any],
    ) -> None:
        self.model_admin = model_admin
        super().__init__(request, params, model, model_admin)  # type: ignore[call-arg]

    def versions(
        self, request: HttpRequest, queryset: models.QuerySet[Any]
    ) -> models.QuerySet[Any]:
        """
        Every version the admin shows, when ``queryset`` is its own queryset
        of current rows: ``VersionedAdmin.get_versions_queryset(request)``.
        """
        hook = getattr(self.model_admin, "get_versions_queryset", None)
        if hook is not None and getattr(queryset, "versioning_scope", "") == CURRENT:
            return hook(request)
        return every_version(queryset)

    def get_facet_counts(
        self, pk_attname: str, filtered_qs: models.QuerySet[Any]
    ) -> dict[str, models.Count]:
        return {}


class AsOfFilter(NoFacetsMixin, admin.SimpleListFilter):
    """Shows the table as it was at a moment: read-only, historical rows included."""

    # Shown as the heading, not in Django's "By <title>" (its template's).
    title = _("as of a date and time")
    parameter_name = AS_OF_PARAMETER
    template = "admin/versioning/as_of_filter.html"

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]
    ) -> Iterable[tuple[str, Any]]:
        return ()

    def has_output(self) -> bool:
        return True

    def moment(self) -> datetime.datetime | None:
        return parse_as_of(self.value())

    def choices(self, changelist: ChangeList) -> Iterator[Any]:
        value = self.value() or ""
        moment = self.moment()
        yield {
            "value": value[:16] if moment else value,
            "invalid": bool(value) and moment is None,
            "hidden": [
                (key, item)
                for key, items in changelist.params.items()
                if key != self.parameter_name
                for item in (items if isinstance(items, list) else [items])
            ],
            "clear_url": changelist.get_query_string(remove=[self.parameter_name]),
            "selected": moment is not None,
        }

    def queryset(
        self, request: HttpRequest, queryset: models.QuerySet[Any]
    ) -> models.QuerySet[Any]:
        moment = self.moment()
        if moment is None or request.GET.get(STATUS_PARAMETER) == "deleted":
            # With "Deleted objects", the status filter lists those deleted
            # as of the moment: they were not current then.
            return queryset
        # The admin's get_queryset() (its filters and annotations) applied
        # to the rows current at the moment.
        return self.versions(request, queryset).as_of(moment)  # type: ignore[attr-defined]


class StatusFilter(NoFacetsMixin, admin.SimpleListFilter):
    """Current objects (the default) or deleted ones, which can be restored."""

    title = _("status")
    parameter_name = STATUS_PARAMETER

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]
    ) -> Iterable[tuple[str, Any]]:
        return [("deleted", _("Deleted objects"))]

    def choices(self, changelist: ChangeList) -> Iterator[Any]:
        yield {
            "selected": self.value() is None,
            "query_string": changelist.get_query_string(remove=[self.parameter_name]),
            "display": _("Current objects"),
        }
        yield {
            "selected": self.value() == "deleted",
            "query_string": changelist.get_query_string(
                {self.parameter_name: "deleted"}
            ),
            "display": _("Deleted objects"),
        }

    def queryset(
        self, request: HttpRequest, queryset: models.QuerySet[Any]
    ) -> models.QuerySet[Any]:
        if self.value() == "deleted":
            return deleted_objects(
                queryset.model,
                self.versions(request, queryset),
                as_of=parse_as_of(request.GET.get(AS_OF_PARAMETER)),
            )
        return queryset
