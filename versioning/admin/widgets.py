"""
The admin's input for a PinnedForeignKey: one version of one object, chosen
among the versions of the objects the target's admin shows, grouped per
object; its icons open the pinned version's read-only page.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin
from django.contrib.admin.exceptions import NotRegistered
from django.contrib.admin.options import BaseModelAdmin
from django.contrib.admin.widgets import RelatedFieldWidgetWrapper
from django.db import models
from django.forms.models import ModelChoiceIterator, ModelChoiceIteratorValue
from django.http import HttpRequest
from django.utils.translation import gettext as _

from ..fields import PinnedForeignKey, PinnedVersionChoiceField
from .filters import every_version

__all__ = [
    "PinnedForeignKeyMixin",
    "PinnedVersionField",
    "PinnedVersionWidgetWrapper",
]


class PinnedVersionChoiceIterator(ModelChoiceIterator):
    """The choices as one <optgroup> per object, its newest version first."""

    field: PinnedVersionField

    def __iter__(self) -> Iterator[Any]:
        if self.field.empty_label is not None:
            yield ("", self.field.empty_label)
        groups: dict[Any, list[Any]] = {}
        for row in self.queryset:  # in the target admin's order
            groups.setdefault(row.identity, []).append(row)
        for rows in groups.values():
            rows.sort(key=lambda row: row.version, reverse=True)
        ambiguous = shared_labels(groups)
        for identity, rows in groups.items():
            name = str(rows[0])
            if identity in ambiguous:
                # A label another object shares: the identity tells them apart,
                # and names every version of the object alike.
                name = f"{name} ({str(identity)[:8]})"
            deleted = rows[0].valid_to is not None
            group = _("%(object)s (deleted)") % {"object": name} if deleted else name
            yield (
                group,
                [
                    (
                        ModelChoiceIteratorValue(self.field.prepare_value(row), row),
                        version_label(row, name if identity in ambiguous else str(row)),
                    )
                    for row in rows
                ],
            )


def shared_labels(groups: dict[Any, list[Any]]) -> set[Any]:
    """The identities whose object or version labels another object shares."""
    owners: dict[str, set[Any]] = {}
    for identity, rows in groups.items():
        labels = [str(rows[0]), *(version_label(row, str(row)) for row in rows)]
        for label in labels:
            owners.setdefault(label, set()).add(identity)
    return {
        identity for shared in owners.values() if len(shared) > 1 for identity in shared
    }


def version_label(row: Any, name: str) -> str:
    if row.valid_to is None:
        label = _("%(object)s — version %(version)s (current)")
    else:
        label = _("%(object)s — version %(version)s")
    return label % {"object": name, "version": row.version}


class PinnedVersionField(PinnedVersionChoiceField):
    """
    The versions of the objects that exist, grouped per object. A deleted
    object's versions are left out, except the one the form's object already
    pins: it stays shown and may be kept, not newly chosen.
    """

    iterator = PinnedVersionChoiceIterator

    def __init__(
        self,
        queryset: models.QuerySet[Any],
        *,
        existing: models.QuerySet[Any],
        **kwargs: Any,
    ) -> None:
        # ``queryset``: every version one may see; ``existing``: the current
        # rows of the objects one may see.
        self.versions = queryset
        self.existing_identities = existing.values("identity")
        super().__init__(self.choosable(), **kwargs)

    def choosable(self, pinned: Any = None) -> models.QuerySet[Any]:
        alive = models.Q(identity__in=self.existing_identities)
        if pinned not in self.empty_values:
            alive |= models.Q(pk=pinned)
        return self.versions.filter(alive)

    def get_bound_field(self, form: forms.BaseForm, field_name: str) -> Any:
        # The field is a copy made for this form: the version its object
        # pins is known here, before the form is shown or validated.
        pinned = form.get_initial_for_field(self, field_name)
        if pinned not in self.empty_values:
            if isinstance(pinned, models.Model):
                pinned = pinned.pk
            self.queryset = self.choosable(pinned)
        return super().get_bound_field(form, field_name)


class PinnedVersionWidgetWrapper(RelatedFieldWidgetWrapper):
    """
    The view icon opens the pinned version's read-only page. There is no
    change icon (a pinned version is history: no one edits it) nor delete
    icon (deleting closes the object, not the version pinned here).
    """

    def __init__(
        self,
        widget: Any,
        rel: Any,
        admin_site: admin.AdminSite,
        can_add_related: bool | None = None,
        can_change_related: bool = False,
        can_delete_related: bool = False,
        can_view_related: bool = False,
    ) -> None:
        super().__init__(
            widget,
            rel,
            admin_site,
            can_add_related=can_add_related,
            can_change_related=False,
            can_delete_related=False,
            can_view_related=can_view_related or can_change_related,
        )

    @classmethod
    def replacing(
        cls, wrapper: RelatedFieldWidgetWrapper
    ) -> PinnedVersionWidgetWrapper:
        return cls(
            wrapper.widget,
            wrapper.rel,
            wrapper.admin_site,
            can_add_related=wrapper.can_add_related,
            can_view_related=wrapper.can_view_related or wrapper.can_change_related,
        )

    def get_context(
        self, name: str, value: Any, attrs: dict[str, Any] | None
    ) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        if self.can_view_related:
            opts = self.rel.model._meta
            context["change_related_template_url"] = self.get_related_url(
                (opts.app_label, str(opts.model_name)), "version", "__fk__"
            )
        return context


if TYPE_CHECKING:
    _AdminBase = BaseModelAdmin[Any]
else:
    _AdminBase = BaseModelAdmin


class PinnedForeignKeyMixin(_AdminBase):
    """
    For a ModelAdmin or an inline whose model has a PinnedForeignKey, e.g.
    ``class OrderLineInline(PinnedForeignKeyMixin, admin.TabularInline)``.
    VersionedAdmin includes it.
    """

    def formfield_for_foreignkey(
        self, db_field: models.ForeignKey[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> forms.ModelChoiceField[Any] | None:
        if isinstance(db_field, PinnedForeignKey) and self._pins_by_choice(
            db_field, request, kwargs
        ):
            kwargs = {**pinned_field_kwargs(self, db_field, request), **kwargs}
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_dbfield(
        self, db_field: models.Field[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> forms.Field | None:
        formfield = super().formfield_for_dbfield(db_field, request, **kwargs)
        if (
            isinstance(db_field, PinnedForeignKey)
            and formfield is not None
            and type(formfield.widget) is RelatedFieldWidgetWrapper
            and has_version_pages(self.admin_site, db_field)
        ):
            formfield.widget = PinnedVersionWidgetWrapper.replacing(formfield.widget)
        return formfield

    def _pins_by_choice(
        self, db_field: models.Field[Any, Any], request: HttpRequest, kwargs: Any
    ) -> bool:
        # Raw ids, autocomplete and a widget of one's own are left as chosen.
        return "widget" not in kwargs and db_field.name not in (
            *self.raw_id_fields,
            *self.get_autocomplete_fields(request),
        )


def target_admin(
    admin_site: admin.AdminSite, db_field: models.Field[Any, Any]
) -> admin.ModelAdmin[Any] | None:
    try:
        return admin_site.get_model_admin(db_field.related_model)  # type: ignore[arg-type]
    except NotRegistered:
        return None


def has_version_pages(
    admin_site: admin.AdminSite, db_field: models.Field[Any, Any]
) -> bool:
    return hasattr(target_admin(admin_site, db_field), "version_view")


def pinned_field_kwargs(
    model_admin: BaseModelAdmin[Any],
    db_field: models.ForeignKey[Any, Any],
    request: HttpRequest,
) -> dict[str, Any]:
    """
    The choices as the target's admin scopes them: the versions its
    get_versions_queryset() (or get_queryset()) shows, of the objects its
    get_queryset() shows as existing, in its order.
    """
    target: Any = db_field.related_model
    related = target_admin(model_admin.admin_site, db_field)
    if related is None:
        existing = target._default_manager.all()
        versions = target.all_versions.all()
        ordering: Any = ()
    else:
        existing = related.get_queryset(request)
        hook = getattr(related, "get_versions_queryset", None)
        versions = hook(request) if hook else every_version(existing)
        ordering = related.get_ordering(request) or ()
    if ordering:
        versions = versions.order_by(*ordering, "identity", "-version")
    return {
        "form_class": PinnedVersionField,
        "queryset": versions,
        "existing": existing,
    }
