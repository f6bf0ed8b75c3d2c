"""Errors raised by versioned models; all of them derive from VersioningError."""

__all__ = ["HistoricalVersionError", "StaleVersionError", "VersioningError"]


class VersioningError(Exception):
    """Base class for every error this app raises on purpose."""


class StaleVersionError(VersioningError):
    """
    The version being saved, deleted or restored is no longer current:
    someone else wrote a newer version after it was loaded. Nothing was
    written; reload the object, reapply the change and save again.
    """


class HistoricalVersionError(VersioningError):
    """
    A historical (closed) version was asked to change. Historical rows are
    read-only; edit the current version, or call restore() on this one to
    make its data current again.
    """


class RestoreRefusedError(VersioningError):
    """
    A version cannot be restored as it is: a key or link names an object
    deleted since. ``reason`` says why, without naming the version.
    """

    def __init__(self, version: str, reason: str) -> None:
        super().__init__(f"{version} cannot be restored: {reason}")
        self.reason = reason
