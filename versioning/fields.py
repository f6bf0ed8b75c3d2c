"""PinnedForeignKey: a key that keeps pointing at the exact version it was set to."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from django import forms
from django.db import models

if TYPE_CHECKING:
    from .models import Versioned

__all__ = ["PinnedForeignKey", "PinnedVersionChoiceField"]


class PinnedVersionChoiceField(forms.ModelChoiceField):
    """Labels each choice with its version number, since the key pins one version."""

    def label_from_instance(self, obj: Any) -> str:
        return f"{obj} (version {obj.version})"


class PinnedForeignKey(models.ForeignKey):
    """
    A foreign key to one version of a versioned model. The related-field
    fixup never moves it: an order line keeps the price it was sold at.
    """

    def __init__(
        self,
        to: type[models.Model] | str,
        on_delete: Callable[..., None] = models.PROTECT,
        **kwargs: Any,
    ) -> None:
        super().__init__(to, on_delete, **kwargs)

    def formfield(
        self, *, using: str | None = None, **kwargs: Any
    ) -> forms.Field | None:
        # Any version may be pinned, so every version is a valid choice.
        kwargs.setdefault("form_class", PinnedVersionChoiceField)
        kwargs.setdefault(
            "queryset",
            cast("type[Versioned]", self.remote_field.model).all_versions.using(using),
        )
        return super().formfield(using=using, **kwargs)
