"""Admin actions for versioned models."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.db import models
from django.http import HttpRequest
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

import versioning

from ..exceptions import StaleVersionError

if TYPE_CHECKING:
    from .options import VersionedAdmin


@admin.action(description=gettext_lazy("Restore selected %(verbose_name_plural)s"))
def restore_selected(
    modeladmin: VersionedAdmin, request: HttpRequest, queryset: models.QuerySet[Any]
) -> None:
    restored = 0
    with versioning.changes(user=request.user, reason=_("Restored after delete")):
        for row in queryset:
            try:
                row.restore()
                restored += 1
            except StaleVersionError:
                pass
    modeladmin.message_user(
        request,
        _("Restored %(count)d object(s).") % {"count": restored},
        messages.SUCCESS,
    )
