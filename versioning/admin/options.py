"""VersionedAdmin: history, comparison, restore and conflict-safe admin editing."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IS_POPUP_VAR
from django.contrib.admin.templatetags.admin_urls import add_preserved_filters
from django.contrib.admin.utils import quote, unquote
from django.contrib.admin.views.main import PAGE_VAR, ChangeList
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, router
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.text import capfirst
from django.utils.translation import gettext as _

import versioning

from ..deletion_preview import Consequence, DeletionPreview
from ..exceptions import StaleVersionError, VersioningError
from ..forms import (
    LOADED_VERSION_FIELD,
    REASON_FIELD,
    VersionedModelForm,
    versionedmodelform_factory,
)
from ..history import history_with_changes
from ..models import Versioned, restore_reason
from .filters import (
    AS_OF_PARAMETER,
    STATUS_PARAMETER,
    AsOfFilter,
    StatusFilter,
    every_version,
    parse_as_of,
)

if TYPE_CHECKING:
    from django.contrib.admin.options import ActionLocation

from .actions import (
    refusal_reason,
    refused_message,
    restore_selected,
    restored_message,
)
from .helpers import display_value, shown_change, shown_fields
from .templates import PageTemplate
from .views import VersionedChangeList
from .widgets import PinnedForeignKeyMixin


def _parsed(field: models.Field[Any, Any], key: str) -> Any | None:
    """``key`` as a value of ``field``, or None if it cannot be one."""
    try:
        return field.to_python(key)
    except (ValueError, TypeError, forms.ValidationError):
        return None


class VersionedAdmin(PinnedForeignKeyMixin, admin.ModelAdmin):
    """
    A ModelAdmin for versioned models. Edits make new versions, carry the
    loaded version so a concurrent save is reported instead of overwritten,
    and every version can be viewed, compared and restored.
    """

    # Each page looks for admin/<app_label>/<model_name>/<page>.html, then
    # admin/<app_label>/<page>.html, then versioning's own; a name set here
    # by a subclass wins, as in Django.
    change_form_template = PageTemplate("change_form.html")
    change_list_template = PageTemplate("change_list.html")
    object_history_template = PageTemplate("object_history.html")
    delete_confirmation_template = PageTemplate("delete_confirmation.html")
    delete_selected_confirmation_template = PageTemplate(
        "delete_selected_confirmation.html"
    )
    version_template: Any = PageTemplate("version.html")
    compare_template: Any = PageTemplate("compare.html")
    restore_confirmation_template: Any = PageTemplate("restore_confirmation.html")
    form = VersionedModelForm
    history_per_page = 50

    # URLs --------------------------------------------------------------------

    def _urlname(self, view: str) -> str:
        opts = self.opts
        return f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_{view}"

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        name = f"{self.opts.app_label}_{self.opts.model_name}"
        own = [
            path(
                "<path:object_id>/version/",
                wrap(self.version_view),
                name=f"{name}_version",
            ),
            path(
                "<path:object_id>/compare/",
                wrap(self.compare_view),
                name=f"{name}_compare",
            ),
            path(
                "<path:object_id>/restore/",
                wrap(self.restore_view),
                name=f"{name}_restore",
            ),
        ]
        return own + super().get_urls()

    # Reading rows --------------------------------------------------------------

    def get_versions_queryset(self, request: HttpRequest) -> models.QuerySet[Any]:
        """
        The versions this admin shows, for every view, filter and action that
        reads history: ``get_queryset(request)`` applied to every version (its
        filters and annotations kept, the current-rows condition dropped).
        Override it to decide differently.
        """
        return every_version(self.get_queryset(request))

    def _get_version(self, request: HttpRequest, object_id: str) -> Versioned | None:
        """
        A version (historical or current) that the admin shows, or None.
        ``object_id`` is a version's pk, or the object's identity, which names
        its newest version shown: the current one, or a deleted object's last.
        """
        key = unquote(object_id)
        pk = _parsed(self.model._meta.pk, key)
        identity = _parsed(self.model._meta.get_field("identity"), key)
        rows = self.get_versions_queryset(request).select_related("changed_by")
        if request.method == "POST":
            # A post writes: the version it acts on is read where writes go,
            # not from a replica that may not have it yet.
            rows = rows.using(router.db_for_write(self.model))
        if pk is None and identity is None:
            return None
        if identity is None:
            return rows.filter(pk=pk).first()
        if pk is None:
            return rows.filter(identity=identity).order_by("-version").first()
        # A key that parses as both (a UUID pk): the pk first, in one query.
        return (
            rows.filter(models.Q(pk=pk) | models.Q(identity=identity))
            .order_by(models.Case(models.When(pk=pk, then=0), default=1), "-version")
            .first()
        )

    def _hides_current(self, request: HttpRequest, row: Versioned) -> bool:
        """Whether ``row``'s object has a current version ``get_queryset`` hides."""
        visible = self.get_queryset(request).filter(identity=row.identity)
        return (
            self.model.all_versions.filter(identity=row.identity, valid_to__isnull=True)
            .exclude(pk__in=visible.values("pk"))
            .exists()
        )

    def _version_or_404(
        self,
        request: HttpRequest,
        object_id: str,
        permission: Callable[[HttpRequest, Any], bool],
    ) -> Versioned:
        """The version named in the URL, if ``permission`` allows the user to see it."""
        row = self._get_version(request, object_id)
        if row is None:
            raise Http404(_("No such version."))
        if not permission(request, row):
            raise PermissionDenied
        return row

    def get_object(
        self, request: HttpRequest, object_id: str, from_field: str | None = None
    ) -> Any | None:
        obj = super().get_object(request, object_id, from_field)
        if obj is None and from_field is None:
            # The object's identity names its current version.
            identity = _parsed(self.model._meta.get_field("identity"), object_id)
            if identity is not None:
                obj = self.get_queryset(request).filter(identity=identity).first()
        if obj is None and request.method == "POST" and from_field is None:
            # A form posted from a version that is no longer current: bind it
            # anyway, so the conflict is shown with the user's input kept.
            obj = self._get_version(request, object_id)
            if obj is not None and self._hides_current(request, obj):
                obj = None
        return obj

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return VersionedChangeList

    def get_list_filter(self, request: HttpRequest) -> list[Any]:
        return [AsOfFilter, StatusFilter, *super().get_list_filter(request)]

    def get_actions(
        self, request: HttpRequest, action_location: ActionLocation | None = None
    ) -> dict[str, Any]:
        # Django 6.1 also asks for actions shown on the change form
        # (action_location); only the change list's depend on the view.
        if action_location is None:
            actions = super().get_actions(request)
        else:
            actions = super().get_actions(  # type: ignore[call-arg]
                request,
                action_location=action_location,
            )
            if getattr(action_location, "value", "CHANGE_LIST") != "CHANGE_LIST":
                return actions
        if request.GET.get(AS_OF_PARAMETER):
            # The past is read-only, deleted objects included: restoring
            # is done from the present.
            return {}
        if request.GET.get(STATUS_PARAMETER) == "deleted":
            if not self.has_change_permission(request):
                return {}
            return {"restore_selected": self.get_action(restore_selected)}
        return actions

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        context = {
            "as_of": parse_as_of(request.GET.get(AS_OF_PARAMETER)),
            "showing_deleted": request.GET.get(STATUS_PARAMETER) == "deleted",
            "can_restore_selected": "restore_selected" in self.get_actions(request),
            **(extra_context or {}),
        }
        return super().changelist_view(request, context)

    # Editing -------------------------------------------------------------------

    def get_form(
        self,
        request: HttpRequest,
        obj: Any | None = None,
        change: bool = False,
        **kwargs: Any,
    ) -> type[forms.ModelForm[Any]]:
        form = super().get_form(request, obj, change=change, **kwargs)
        if issubclass(form, VersionedModelForm):
            return form
        # A custom ``form`` that is a plain ModelForm keeps the conflict check.
        return versionedmodelform_factory(self.model, form=form)

    def get_fields(
        self, request: HttpRequest, obj: Any | None = None
    ) -> list[str | list[str] | tuple[str, ...]]:
        # The version and reason inputs are placed by the template.
        return [
            name
            for name in super().get_fields(request, obj)
            if name not in (LOADED_VERSION_FIELD, REASON_FIELD)
        ]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        row = self._get_version(request, object_id)
        if row is None:
            return self._redirect_from_missing(request, object_id)
        if not row.is_current and request.method != "POST":
            return self._redirect_from_historical(request, row)
        return super().change_view(request, object_id, form_url, extra_context)

    def _redirect_from_missing(
        self, request: HttpRequest, object_id: str
    ) -> HttpResponseRedirect:
        # Django's "Perhaps it was deleted?" is wrong here: deleted objects
        # keep their versions. A missing pk was pruned (or never shown).
        self.message_user(
            request,
            _(
                "%(name)s with ID “%(key)s” doesn’t exist. It may have named an "
                "old version that was pruned; an object's identity names it for "
                "good."
            )
            % {"name": capfirst(self.opts.verbose_name), "key": unquote(object_id)},
            messages.WARNING,
        )
        return HttpResponseRedirect(
            reverse("admin:index", current_app=self.admin_site.name)
        )

    def _redirect_from_historical(
        self, request: HttpRequest, row: Versioned, view: str = "change"
    ) -> HttpResponseRedirect:
        current = self.get_queryset(request).filter(identity=row.identity).first()
        if current is None and self._hides_current(request, row):
            return self._get_obj_does_not_exist_redirect(  # type: ignore[attr-defined]
                request, self.opts, str(row.pk)
            )
        if current is None:
            self.message_user(
                request,
                _("“%(object)s” was deleted; this is its last version, read-only.")
                % {"object": row},
                messages.WARNING,
            )
            return HttpResponseRedirect(self._url("version", row))
        self.message_user(
            request,
            _(
                "That link was to version %(old)s of “%(object)s”; this is the "
                "current version, %(new)s."
            )
            % {"old": row.version, "object": current, "new": current.version},
            messages.INFO,
        )
        return HttpResponseRedirect(
            reverse(
                self._urlname(view),
                args=(quote(current.identity),),
                current_app=self.admin_site.name,
            )
        )

    def save_model(
        self, request: HttpRequest, obj: Any, form: Any, change: bool
    ) -> None:
        # The form's save(commit=False) has put its reason on obj. The
        # version before the save tells response_change() whether one was made.
        request._versioning_version_before = (  # type: ignore[attr-defined]
            obj.version if change else None
        )
        with versioning.changes(user=request.user):
            obj.save()

    def save_related(
        self, request: HttpRequest, form: Any, formsets: Any, change: bool
    ) -> None:
        # The links are saved here, into the version save_model() made (or
        # into one new version if only links changed).
        with versioning.changes(user=request.user):
            super().save_related(request, form, formsets, change)

    def response_change(self, request: HttpRequest, obj: Any) -> HttpResponse:
        if IS_POPUP_VAR in request.POST:
            return super().response_change(request, obj)
        # Django's responses, with one message that says whether the save
        # made a version; "Save and continue editing" opens the new version,
        # not the URL it came from, which names the closed one.
        made = obj.version != getattr(request, "_versioning_version_before", None)
        change_url = self._url("change", obj)
        name = self.opts.verbose_name
        link = format_html('<a href="{}">{}</a>', change_url, obj)
        if made:
            message = format_html(
                _(
                    "The {name} “{obj}” was changed successfully and saved as "
                    "version {version}."
                ),
                name=name,
                obj=link,
                version=obj.version,
            )
        else:
            message = format_html(
                _("The {name} “{obj}” was not changed; no new version was made."),
                name=name,
                obj=link,
            )
        level = messages.SUCCESS if made else messages.INFO
        if "_continue" in request.POST:
            follow = _("You may edit it again below.")
            redirect_url = change_url
        elif "_addanother" in request.POST:
            follow = format_html(_("You may add another {name} below."), name=name)
            redirect_url = self._url("add")
        else:
            self.message_user(request, message, level)
            return self.response_post_save_change(request, obj)
        self.message_user(request, format_html("{} {}", message, follow), level)
        preserved_filters = self.get_preserved_filters(request)
        return HttpResponseRedirect(
            add_preserved_filters(
                {
                    "preserved_filters": preserved_filters,
                    "preserved_qsl": self._get_preserved_qsl(  # type: ignore[attr-defined]
                        request, preserved_filters
                    ),
                    "opts": self.opts,
                },
                redirect_url,
            )
        )

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except StaleVersionError:
            # Only reachable when a save slips in between validation and the
            # write on a database without row locks (SQLite).
            self.message_user(
                request,
                _(
                    "Someone saved this object while you were saving it; nothing "
                    "of yours was written. This is the current version."
                ),
                messages.ERROR,
            )
            row = self._get_version(request, object_id)  # type: ignore[arg-type]
            current = row.current_version() if row else None
            if current is None:
                return HttpResponseRedirect(self._url("changelist"))
            return HttpResponseRedirect(self._url("change", current))

    # Deleting --------------------------------------------------------------------

    def get_deleted_objects(
        self, objs: Sequence[Any] | models.QuerySet[Any], request: HttpRequest
    ) -> tuple[list[str], dict[Any, int], set[Any], list[str]]:
        # A dry run of the delete: what it closes (history kept), deletes,
        # changes, and the protected objects that would refuse it.
        objs = list(objs)
        if not objs:
            return [], {}, set(), []
        preview = DeletionPreview(router.db_for_write(self.model), origin=objs)
        preview.collect(objs)
        needed: set[Any] = set()

        def link(obj: Any) -> str:
            opts = obj._meta
            if self.admin_site.is_registered(type(obj)):
                try:
                    url = reverse(
                        f"{self.admin_site.name}:{opts.app_label}_"
                        f"{opts.model_name}_change",
                        args=(quote(obj.pk),),
                    )
                except NoReverseMatch:
                    pass
                else:
                    return format_html(
                        '{}: <a href="{}">{}</a>', capfirst(opts.verbose_name), url, obj
                    )
            return format_html("{}: {}", capfirst(opts.verbose_name), obj)

        def new_value(field: Any, value: Any) -> str:
            if value is None:
                return _("NULL")
            if field.is_relation and not isinstance(value, models.Model):
                rows = field.related_model._base_manager.using(preview.using)
                value = rows.filter(pk=value).first() or value
            return f"“{value}”"

        def describe(obj: Any, consequence: Consequence) -> str:
            if consequence.action != "update":
                if self.admin_site.is_registered(type(obj)):
                    model_admin = self.admin_site.get_model_admin(type(obj))
                    if not model_admin.has_delete_permission(request, obj):
                        needed.add(obj._meta.verbose_name)
                if consequence.action == "close":
                    return format_html(
                        "{} — {}", link(obj), _("will be closed (history kept)")
                    )
                return format_html("{} — {}", link(obj), _("will be deleted"))
            changes = "; ".join(
                _("%(field)s will be set to %(value)s")
                % {"field": field.verbose_name, "value": new_value(field, value)}
                for field, value in consequence.keys
            )
            if consequence.versioned:
                changes = _("%(changes)s (as a new version)") % {"changes": changes}
            return format_html("{} — {}", link(obj), changes)

        listed: list[Any] = preview.nested(describe)

        def protector(obj: Any) -> str:
            targets = ", ".join(
                f"{target._meta.verbose_name} “{target}”"
                for target in preview.protects(obj)
            )
            if not targets:
                return link(obj)
            protects = _("protects %(objects)s") % {"objects": targets}
            return format_html("{} — {}", link(obj), protects)

        protected = [protector(obj) for obj in preview.protected]
        summary = {
            "close": _("%(objects)s closed (history kept)"),
            "delete": _("%(objects)s deleted"),
            "update": _("%(objects)s changed"),
        }
        counts = {
            summary[action] % {"objects": model._meta.verbose_name_plural}: count
            for (model, action), count in preview.counts().items()
        }
        return listed, counts, needed, protected

    def delete_view(
        self,
        request: HttpRequest,
        object_id: str,
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        # An old pk (or a deleted object's identity, or a second "Yes" from
        # another tab) names a closed version: ask again about the current
        # one, or say the object is deleted, never delete a closed version.
        row = self._get_version(request, object_id)
        if row is None:
            return self._redirect_from_missing(request, object_id)
        if not row.is_current:
            return self._redirect_from_historical(request, row, "delete")
        return super().delete_view(request, object_id, extra_context)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        with versioning.changes(user=request.user):
            obj.delete()

    def delete_queryset(
        self, request: HttpRequest, queryset: models.QuerySet[Any]
    ) -> None:
        with versioning.changes(user=request.user):
            queryset.delete()

    # History, version, comparison, restore ---------------------------------

    def history_view(
        self,
        request: HttpRequest,
        object_id: str,
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        row = self._get_version(request, object_id)
        if row is None:
            return self._redirect_from_missing(request, object_id)
        if not self.has_view_or_change_permission(request, row):
            raise PermissionDenied
        shown = self.get_versions_queryset(request).filter(identity=row.identity)
        versions = shown.select_related("changed_by").order_by("-version")
        paginator = self.get_paginator(request, versions, self.history_per_page)
        page = paginator.get_page(request.GET.get(PAGE_VAR, 1))
        latest = versions.first() if page.number > 1 else None
        empty = self.get_empty_value_display()
        entries = [
            dataclasses.replace(
                entry,
                changes={
                    name: (shown_change(old, empty), shown_change(new, empty))
                    for name, (old, new) in entry.changes.items()
                },
            )
            for entry in history_with_changes(list(page.object_list), shown)
        ]
        current = next((e.version for e in entries if e.version.is_current), None)
        newest = latest or (entries[0].version if entries else None)
        # The newest version shown is current unless the object was deleted
        # or its current version is hidden: only then ask which.
        shown_current = newest is not None and newest.is_current
        context = {
            **self.admin_site.each_context(request),
            "title": _("History: %s") % row,
            "subtitle": None,
            "object": current or row,
            "entries": entries,
            "page_obj": page,
            "page_range": paginator.get_elided_page_range(page.number),
            "page_var": PAGE_VAR,
            "pagination_required": paginator.num_pages > 1,
            "module_name": str(capfirst(self.opts.verbose_name_plural)),
            "opts": self.opts,
            "can_restore": self.has_change_permission(request, row)
            and (shown_current or not self._hides_current(request, row)),
            "compare_url": self._url("compare", row),
            "empty_value_display": empty,
            "preserved_filters": self.get_preserved_filters(request),
            **(extra_context or {}),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.object_history_template, context)

    def version_view(self, request: HttpRequest, object_id: str) -> TemplateResponse:
        row = self._version_or_404(
            request, object_id, self.has_view_or_change_permission
        )
        context = self._version_context(
            request,
            row,
            title=_("Version %(version)s of “%(object)s”")
            % {"version": row.version, "object": row},
        )
        # Only a current version this user may see is named and linked.
        current = (
            row
            if row.is_current
            else self.get_queryset(request).filter(identity=row.identity).first()
        )
        empty = self.get_empty_value_display()
        context.update(
            fields=[
                (capfirst(field.verbose_name), display_value(field, row, empty))
                for field in shown_fields(self.model)
            ],
            current=current,
            current_hidden=current is None and self._hides_current(request, row),
        )
        return TemplateResponse(request, self.version_template, context)

    def compare_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        row = self._version_or_404(
            request, object_id, self.has_view_or_change_permission
        )
        older = self._get_version(request, request.GET.get("a", ""))
        newer = self._get_version(request, request.GET.get("b", ""))
        if (
            older is None
            or newer is None
            or {older.identity, newer.identity} != {row.identity}
        ):
            self.message_user(
                request,
                _("Choose two versions of this object to compare."),
                messages.ERROR,
            )
            return HttpResponseRedirect(self._url("history", row))
        if older.version > newer.version:
            older, newer = newer, older
        changed = older.diff(newer)
        context = self._version_context(
            request,
            row,
            title=_("Versions %(a)s and %(b)s of “%(object)s”")
            % {"a": older.version, "b": newer.version, "object": newer},
        )
        empty = self.get_empty_value_display()
        context.update(
            older=older,
            newer=newer,
            rows=[
                (
                    capfirst(field.verbose_name),
                    display_value(field, older, empty),
                    display_value(field, newer, empty),
                    field.name in changed,
                )
                for field in shown_fields(self.model)
            ],
        )
        return TemplateResponse(request, self.compare_template, context)

    def restore_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        row = self._version_or_404(request, object_id, self.has_change_permission)
        if self._hides_current(request, row):
            # A restore changes the current version, which this user cannot see.
            raise Http404(_("No such version."))
        if request.method == "POST":
            return self._restore_posted(request, row)
        context = self._version_context(
            request,
            row,
            title=_("Restore version %(version)s of “%(object)s”?")
            % {"version": row.version, "object": row},
        )
        current = row.current_version()
        changed = current.diff(row) if current else {}
        empty = self.get_empty_value_display()
        context.update(
            current=current,
            latest=self._latest_version(row),
            # Shown as the version and compare pages show values.
            changes=[
                (
                    capfirst(field.verbose_name),
                    display_value(field, current, empty),
                    display_value(field, row, empty),
                )
                for field in shown_fields(self.model)
                if field.name in changed
            ],
        )
        return TemplateResponse(request, self.restore_confirmation_template, context)

    def _latest_version(self, row: Versioned) -> int:
        """The newest version number of ``row``'s object, current or deleted."""
        versions = self.model.all_versions.using(router.db_for_write(self.model))
        return int(
            versions.filter(identity=row.identity)
            .order_by("-version")
            .values_list("version", flat=True)[0]
        )

    def _restore_posted(
        self, request: HttpRequest, row: Versioned
    ) -> HttpResponseRedirect:
        if request.POST.get("version") != str(row.version):
            self.message_user(
                request,
                _(
                    "The restore request did not match this version; nothing "
                    "was restored."
                ),
                messages.ERROR,
            )
            return HttpResponseRedirect(self._url("history", row))
        reason = request.POST.get("reason", "").strip() or restore_reason(row.version)
        try:
            shown = request.POST.get("latest")
            if shown is not None and shown != str(self._latest_version(row)):
                # The page showed what the restore would change; the object
                # changed (or was deleted or restored) since it was shown.
                raise StaleVersionError
            with versioning.changes(user=request.user, reason=reason):
                restored = row.restore(using=router.db_for_write(self.model))
        except (ValidationError, VersioningError) as error:
            self.message_user(
                request, refused_message(row, refusal_reason(error)), messages.ERROR
            )
            return HttpResponseRedirect(self._url("history", row))
        if restored.pk == row.pk or restored.version == row.version:
            self.message_user(
                request, _("That version is already current."), messages.INFO
            )
        else:
            self.log_change(request, restored, restored_message(row.version))
            self.message_user(
                request,
                _("Restored version %(old)s as version %(new)s.")
                % {"old": row.version, "new": restored.version},
                messages.SUCCESS,
            )
        return HttpResponseRedirect(self._url("change", restored))

    def _version_context(
        self, request: HttpRequest, row: Versioned, *, title: str
    ) -> dict[str, Any]:
        request.current_app = self.admin_site.name
        return {
            **self.admin_site.each_context(request),
            "title": title,
            "subtitle": None,
            "opts": self.opts,
            "module_name": str(capfirst(self.opts.verbose_name_plural)),
            "version": row,
            "history_url": self._url("history", row),
            "restore_url": self._url("restore", row),
            "can_restore": self.has_change_permission(request, row)
            and not self._hides_current(request, row),
        }

    def _url(self, view: str, obj: Any = None) -> str:
        # An object's pages go by its identity, which lasts; a version's by
        # its pk.
        if obj is None:
            args: tuple[str, ...] = ()
        elif view in ("change", "history"):
            args = (quote(obj.identity),)
        else:
            args = (quote(obj.pk),)
        return reverse(self._urlname(view), args=args, current_app=self.admin_site.name)
