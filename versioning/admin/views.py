"""The change list of a versioned model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib.admin.utils import quote
from django.contrib.admin.views.main import ChangeList
from django.urls import reverse

if TYPE_CHECKING:
    from .options import VersionedAdmin


class VersionedChangeList(ChangeList):
    """Rows that are not current link to their read-only version page."""

    model_admin: VersionedAdmin

    def url_for_result(self, result: Any) -> str:
        if result.is_current:
            return super().url_for_result(result)
        return reverse(
            self.model_admin._urlname("version"),
            args=(quote(result.pk),),
            current_app=self.model_admin.admin_site.name,
        )
