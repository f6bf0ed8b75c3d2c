"""
VersionedModelForm: a ModelForm that refuses to save over a version someone
else replaced since the form was loaded.
"""

from __future__ import annotations

import datetime
from typing import Any, cast

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import router, transaction
from django.forms.models import modelform_factory
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _

from . import links
from .exceptions import StaleVersionError
from .models import Versioned

__all__ = [
    "LOADED_VERSION_FIELD",
    "REASON_FIELD",
    "VersionedModelForm",
    "versionedmodelform_factory",
]

#: The hidden field that carries the version the form was loaded from.
LOADED_VERSION_FIELD = "versioning_loaded_version"
#: The optional "Reason for this change" field, saved as ``change_reason``.
REASON_FIELD = "versioning_reason"

_NO_VERSION = _("This form did not say which version it edits; reload the page.")


class VersionedModelForm(forms.ModelForm):
    """
    A ModelForm for a ``Versioned`` model with the admin's conflict safety.

    The version the form was loaded from travels with it in a hidden field.
    Validation refuses the form when that version is no longer current: the
    non-field error names who changed the object and when (code ``"stale"``),
    or when it was deleted (``"deleted"``); a version number the object was
    not at is refused too (``"version_mismatch"``). Nothing is written and the
    bound data stays in the form, so the page shows the user's input again.

    Bind it to the current row of the object, or, for a POST, to the row the
    form was loaded from or the object's latest row (current or not), so a
    form posted after a delete says so instead of answering 404.

    ``save()`` records the optional reason field as ``change_reason``. If the
    object is changed by someone else between validation and the write,
    ``save()`` adds the same error to the form and raises
    ``StaleVersionError``; catch it and show the form again. When validation
    and save run in one transaction (``ATOMIC_REQUESTS`` or
    ``transaction.atomic()``) on a database with row locks (PostgreSQL),
    validation locks the row, so that race cannot happen.

    A subclass drops the reason field with ``versioning_reason = None``.
    """

    versioning_loaded_version = forms.IntegerField(
        widget=forms.HiddenInput,
        error_messages={"required": _NO_VERSION, "invalid": _NO_VERSION},
    )
    versioning_reason = forms.CharField(
        label=_("Reason for this change"),
        required=False,
        max_length=500,
        help_text=_("Optional; shown in the object's history."),
    )

    #: After a refusal because someone saved a newer version: that version,
    #: and the verbose names of what it changed since the form's version.
    current_version: Versioned | None = None
    changed_fields: list[str] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.instance, Versioned):
            raise TypeError(
                f"{type(self).__name__} edits versioned models; "
                f"{type(self.instance).__name__} is not a Versioned model."
            )
        if LOADED_VERSION_FIELD not in self.fields:
            return
        if self.instance._state.adding:
            # A new object has no version to be stale against.
            del self.fields[LOADED_VERSION_FIELD]
        else:
            self.fields[LOADED_VERSION_FIELD].initial = self.instance.version

    @property
    def loaded_version(self) -> int | None:
        """The version this form was loaded from, once validated; else None."""
        cleaned = getattr(self, "cleaned_data", None) or {}
        return cleaned.get(LOADED_VERSION_FIELD)

    @property
    def has_conflict(self) -> bool:
        """Whether the form was refused because the object changed or was deleted."""
        return self.has_error(NON_FIELD_ERRORS, "stale") or self.has_error(
            NON_FIELD_ERRORS, "deleted"
        )

    def clean(self) -> dict[str, Any] | None:
        cleaned = super().clean()
        loaded = self.loaded_version
        if loaded is not None:  # a missing or bad number has the field's own error
            self._check_still_current(loaded)
        return cleaned

    def _check_still_current(self, loaded_version: int) -> None:
        """
        Raise ValidationError unless ``loaded_version`` is the current version
        of the object and the form's instance is that row. Inside a transaction
        the row stays locked (``select_for_update``) until the transaction ends.
        """
        instance = self.instance
        if not 1 <= loaded_version <= instance.version:
            raise ValidationError(
                _(
                    "This form was for version %(loaded)s, which is not the "
                    "version being edited (%(version)s); nothing was saved. "
                    "Reload the page."
                ),
                code="version_mismatch",
                params={"loaded": loaded_version, "version": instance.version},
            )
        if loaded_version == instance.version and instance.valid_to is None:
            using = router.db_for_write(type(instance), instance=instance)
            row = type(instance).all_versions.using(using).filter(pk=instance.pk)
            if not transaction.get_autocommit(using):
                # No save can slip in between this check and the form's own
                # save in the same transaction.
                row = row.select_for_update()
            if list(row.values_list("valid_to", flat=True)) == [None]:
                return
        raise self._conflict_error(loaded_version)

    def _conflict_error(self, loaded_version: int) -> ValidationError:
        """
        Who changed the object and when, or when it was deleted. A statement
        of its own, so it sees what another transaction committed meanwhile
        (on PostgreSQL, after waiting for the row lock).
        """
        instance = self.instance
        latest = (
            type(instance)
            .all_versions.using(router.db_for_write(type(instance), instance=instance))
            .filter(identity=instance.identity)
            .select_related("changed_by")
            .order_by("-version")
            .first()
        )
        if latest is None:  # purged meanwhile
            return ValidationError(
                _("“%(object)s” was deleted after you opened it. Nothing was saved."),
                code="deleted",
                params={"object": instance},
            )
        if latest.valid_to is not None:
            return ValidationError(
                _(
                    "“%(object)s” was deleted at %(when)s, after you opened it. "
                    "Nothing was saved."
                ),
                code="deleted",
                params={"object": latest, "when": _display_time(latest.valid_to)},
            )
        if latest.pk == instance.pk and latest.version == loaded_version:
            # A save that lost a race leaving no newer version (a deadlock).
            return ValidationError(
                _(
                    "Someone saved “%(object)s” while you were saving it; nothing "
                    "of yours was written. Try again."
                ),
                code="stale",
                params={"object": latest},
            )
        self.current_version = latest
        self.changed_fields = self._changed_since(loaded_version, latest)
        if self.changed_fields:
            message = _(
                "“%(object)s” was changed by %(who)s at %(when)s (now version "
                "%(version)s) after you opened it; changed: %(fields)s. Nothing "
                "was saved; your input is kept below. Open the current version "
                "and apply your changes to it."
            )
        else:  # the versions in between were pruned
            message = _(
                "“%(object)s” was changed by %(who)s at %(when)s (now version "
                "%(version)s) after you opened it. Nothing was saved; your input "
                "is kept below. Open the current version and apply your changes "
                "to it."
            )
        return ValidationError(
            message,
            code="stale",
            params={
                "object": latest,
                "who": latest.changed_by or _("someone"),
                "when": _display_time(latest.valid_from),
                "version": latest.version,
                "fields": ", ".join(self.changed_fields),
            },
        )

    def _changed_since(self, loaded_version: int, latest: Versioned) -> list[str]:
        """The verbose names of what changed since the form's version, links too."""
        loaded = (
            type(latest)
            .all_versions.using(router.db_for_write(type(latest), instance=latest))
            .filter(identity=latest.identity, version=loaded_version)
            .first()
        )
        if loaded is None:  # pruned meanwhile
            return []
        opts = latest._meta
        return [
            str(capfirst(opts.get_field(name).verbose_name))  # type: ignore[union-attr]
            for name in loaded.diff(latest)
        ]

    def save(self, commit: bool = True) -> Versioned:
        """
        Save as ModelForm does, recording the reason as ``change_reason``. A
        save that finds the object changed meanwhile writes nothing, adds the
        conflict to the form's errors and raises ``StaleVersionError``.
        """
        reason = self.cleaned_data.get(REASON_FIELD)
        if reason:
            # A value assigned on the instance wins over a changes() block.
            self.instance.change_reason = reason
        self._version_before_save = (
            None if self.instance._state.adding else self.instance.version
        )
        if not commit:
            return super().save(commit=False)
        using = router.db_for_write(type(self.instance), instance=self.instance)
        try:
            # The new version and its many-to-many links, or neither.
            with transaction.atomic(using=using):
                return super().save(commit=True)
        except StaleVersionError:
            loaded = self.loaded_version
            if loaded is not None:
                self.add_error(None, self._conflict_error(loaded))
            raise

    def _save_m2m(self) -> None:
        # The fields and the links of one form are one version: the one the
        # save just made, or else the one the first change of links makes.
        before = getattr(self, "_version_before_save", None)
        made = before is None or self.instance.version != before
        with links.one_version(self.instance, made=made):
            super()._save_m2m()  # type: ignore[misc]


def versionedmodelform_factory(
    model: type[Versioned],
    form: type[forms.ModelForm] = VersionedModelForm,
    **kwargs: Any,
) -> type[VersionedModelForm]:
    """
    A VersionedModelForm class for ``model``; the keyword arguments are
    ``modelform_factory``'s (``fields``, ``exclude``, ``widgets``, ...). A
    ``form`` that is a plain ModelForm gets VersionedModelForm mixed in.
    """
    if not (isinstance(model, type) and issubclass(model, Versioned)):
        raise TypeError(
            f"versionedmodelform_factory() needs a Versioned model, not {model!r}."
        )
    if issubclass(VersionedModelForm, form):
        form = VersionedModelForm  # forms.ModelForm itself
    elif not issubclass(form, VersionedModelForm):
        form = type(form.__name__, (form, VersionedModelForm), {})
    return cast(
        "type[VersionedModelForm]", modelform_factory(model, form=form, **kwargs)
    )


def _display_time(moment: datetime.datetime) -> str:
    if timezone.is_aware(moment):
        moment = timezone.localtime(moment)
    return date_format(moment, "DATETIME_FORMAT")
