"""The admin for versioned models: ``VersionedAdmin`` and what it is built from."""

from .options import VersionedAdmin
from .widgets import PinnedForeignKeyMixin

__all__ = ["PinnedForeignKeyMixin", "VersionedAdmin"]
