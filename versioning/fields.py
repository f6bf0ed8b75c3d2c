"""PinnedForeignKey: a key that keeps pointing at the exact version it was set to."""

from __future__ import annotations

from django import forms
from django.db import models

__all__ = ["PinnedForeignKey", "PinnedVersionChoiceField"]


class PinnedVersionChoiceField(forms.ModelChoiceField):
    """Labels each choice with its version number, since the key pins one version."""

    def label_from_instance(self, obj) -> str:
        return f"{obj} (version {obj.version})"


class PinnedForeignKey(models.ForeignKey):
    """
    A foreign key to one version of a versioned model. The related-field
    fixup never moves it: an order line keeps the price it was sold at.
    """

    def __init__(self, to, on_delete=models.PROTECT, **kwargs) -> None:
        super().__init__(to, on_delete, **kwargs)

    def formfield(self, *, using=None, **kwargs):
        # Any version may be pinned, so every version is a valid choice.
        kwargs.setdefault("form_class", PinnedVersionChoiceField)
        kwargs.setdefault("queryset", self.remote_field.model.all_versions.using(using))
        return super().formfield(using=using, **kwargs)
