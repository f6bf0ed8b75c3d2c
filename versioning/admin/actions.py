"""Admin actions for versioned models, and how the admin reports a refused restore."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import model_ngettext
from django.core.exceptions import ValidationError
from django.db import models, router
from django.http import HttpRequest
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

import versioning

from ..exceptions import RestoreRefusedError, StaleVersionError, VersioningError
from ..models import Versioned, restore_reason

if TYPE_CHECKING:
    from .options import VersionedAdmin


def refusal_reason(error: ValidationError | VersioningError) -> str:
    """Why restore() refused, as a sentence for a person in the admin."""
    if isinstance(error, StaleVersionError):
        return stale_reason()
    if isinstance(error, ValidationError):
        return " ".join(error.messages)
    # The error names the version by its identity, for logs and the shell;
    # the admin's message names the object already.
    if isinstance(error, RestoreRefusedError):
        return error.reason
    return str(error)


def stale_reason() -> str:
    return _("someone changed it meanwhile. Look at its history and try again.")


def latest_version(row: Versioned, using: str) -> Versioned:
    return (
        type(row)
        .all_versions.using(using)
        .filter(identity=row.identity)
        .latest("version")
    )


def selected_rows(
    modeladmin: VersionedAdmin, request: HttpRequest, queryset: models.QuerySet[Any]
) -> list[Any]:
    """
    The selected rows: those still in the list, then those that left it since
    it was shown (restored or changed meanwhile), so those are reported
    rather than skipped. A row ``get_versions_queryset`` hides stays unknown.
    """
    rows = list(queryset)
    listed = {str(row.pk) for row in rows}
    pk = modeladmin.opts.pk
    left = []
    for value in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME):
        if value in listed:
            continue
        try:
            left.append(pk.to_python(value))
        except ValidationError:
            continue
    if left:
        rows += modeladmin.get_versions_queryset(request).filter(pk__in=left)
    return rows


def restored_message(version: int) -> str:
    """The change message of a restore's log entry."""
    return _("Restored version %(version)s.") % {"version": version}


def refused_message(row: Versioned, reason: str) -> str:
    return _("“%(object)s” was not restored: %(reason)s") % {
        "object": row,
        "reason": reason,
    }


@admin.action(
    description=gettext_lazy("Restore selected %(verbose_name_plural)s"),
    permissions=["change"],
)
def restore_selected(
    modeladmin: VersionedAdmin, request: HttpRequest, queryset: models.QuerySet[Any]
) -> None:
    """Bring back the selected deleted objects, each with its last version's data."""
    using = router.db_for_write(modeladmin.model)
    restored = 0
    for row in selected_rows(modeladmin, request, queryset):
        if not modeladmin.has_change_permission(request, row):
            reason = _("you may not change it.")
        elif (latest := latest_version(row, using)).valid_to is None:
            reason = _("it is not deleted.")
        elif latest.pk != row.pk:
            reason = stale_reason()
        else:
            try:
                with versioning.changes(
                    user=request.user, reason=restore_reason(row.version)
                ):
                    new = row.restore(using=using)
            except (ValidationError, VersioningError) as error:
                reason = refusal_reason(error)
            else:
                modeladmin.log_change(request, new, restored_message(row.version))
                restored += 1
                continue
        modeladmin.message_user(request, refused_message(row, reason), messages.ERROR)
    if restored:
        modeladmin.message_user(
            request,
            ngettext(
                "Restored %(count)d %(items)s.",
                "Restored %(count)d %(items)s.",
                restored,
            )
            % {"count": restored, "items": model_ngettext(modeladmin.opts, restored)},
            messages.SUCCESS,
        )
