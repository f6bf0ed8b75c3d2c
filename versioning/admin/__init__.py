"""The admin for versioned models: ``VersionedAdmin`` and what it is built from."""

from .options import VersionedAdmin

__all__ = ["VersionedAdmin"]
