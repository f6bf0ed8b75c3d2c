"""The change list of a versioned model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.contrib.admin.models import DELETION, LogEntry
from django.contrib.admin.utils import quote
from django.contrib.admin.views.main import ChangeList
from django.contrib.contenttypes.models import ContentType
from django.http import HttpRequest
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from .filters import AS_OF_PARAMETER, STATUS_PARAMETER, parse_as_of

if TYPE_CHECKING:
    from .options import VersionedAdmin

#: Columns about a version's making: in the deleted view they would name the
#: last version's author and time as if they were the deletion's.
VERSION_COLUMNS = frozenset({"valid_from", "valid_to", "changed_by", "change_reason"})

#: Set on each row of the deleted view: who deleted it, from the admin's log.
DELETED_BY_ATTRIBUTE = "_versioning_deleted_by"


@admin.display(description=_("deleted"), ordering="valid_to")
def deleted_at(obj: Any) -> Any:
    """When the object was deleted: its last version's closing time."""
    return obj.valid_to


@admin.display(description=_("deleted by"))
def deleted_by(obj: Any) -> str | None:
    """
    Who deleted the object, as the admin's log recorded it. delete() itself
    records no user, so an object deleted outside the admin shows none.
    """
    return getattr(obj, DELETED_BY_ATTRIBUTE, None)


class VersionedChangeList(ChangeList):
    """
    Only the present list of current objects opens change forms, named by
    identity (stable however many versions follow or are pruned). The table
    as of a moment, and deleted objects, open read-only version pages. The
    deleted view says when each object was deleted and, where the admin's
    log recorded it, by whom.
    """

    model_admin: VersionedAdmin

    def __init__(
        self,
        request: HttpRequest,
        model: Any,
        list_display: Any,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        # Read before Django's __init__, which fetches the results.
        self.as_of = parse_as_of(request.GET.get(AS_OF_PARAMETER))
        self.showing_deleted = request.GET.get(STATUS_PARAMETER) == "deleted"
        if self.showing_deleted:
            list_display = [
                *(
                    column
                    for column in list_display
                    if not (isinstance(column, str) and column in VERSION_COLUMNS)
                ),
                deleted_at,
                deleted_by,
            ]
        super().__init__(request, model, list_display, *args, **kwargs)
        if self.as_of is not None or self.showing_deleted:
            # Rows of the past and deleted objects are read-only: no inputs.
            self.list_editable = ()

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        if self.showing_deleted:
            # Django hides actions when the table (of current rows) is empty;
            # deleted objects can be restored all the same.
            self.show_admin_actions = bool(self.result_count)
            self._add_who_deleted(self.result_list)

    def _add_who_deleted(self, rows: Any) -> None:
        # The admin logs a deletion under the pk of the version it closed:
        # the deleted object's last version. One query a page.
        rows = list(rows)
        if not rows:
            return
        entries = (
            LogEntry.objects.filter(
                content_type=ContentType.objects.get_for_model(
                    self.model, for_concrete_model=False
                ),
                action_flag=DELETION,
                object_id__in=[str(row.pk) for row in rows],
            )
            .select_related("user")
            .order_by("action_time")
        )
        who = {entry.object_id: entry.user.get_username() for entry in entries}
        for row in rows:
            setattr(row, DELETED_BY_ATTRIBUTE, who.get(str(row.pk)))

    def url_for_result(self, result: Any) -> str:
        if result.is_current and self.as_of is None:
            return reverse(
                self.model_admin._urlname("change"),
                args=(quote(result.identity),),
                current_app=self.model_admin.admin_site.name,
            )
        return reverse(
            self.model_admin._urlname("version"),
            args=(quote(result.pk),),
            current_app=self.model_admin.admin_site.name,
        )
