"""Which template each admin page renders: Django's lookup, ending at versioning's."""

from __future__ import annotations

from typing import Any


class PageTemplate:
    """
    A ModelAdmin template attribute that looks the page's template up as
    Django does for its own pages (per model, then per app) and ends at
    versioning's template instead of Django's. A subclass or an instance
    that sets the attribute to a name of its own wins, as with Django's
    ``change_form_template``.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, model_admin: Any, owner: type | None = None) -> Any:
        if model_admin is None:
            return self
        opts = model_admin.opts
        return [
            f"admin/{opts.app_label}/{opts.model_name}/{self.name}",
            f"admin/{opts.app_label}/{self.name}",
            f"admin/versioning/{self.name}",
        ]

    def __repr__(self) -> str:
        return f"PageTemplate({self.name!r})"
