"""Who made a change and why: the changes() context manager and its middleware."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any

_UNSET: Any = object()


@dataclass(frozen=True)
class ChangeContext:
    user: Any = None
    reason: str = ""


# ChangeContext is frozen, so sharing the default instance is safe.
_active: ContextVar[ChangeContext] = ContextVar(
    "versioning_change_context",
    default=ChangeContext(),  # noqa: B039
)


@contextmanager
def changes(*, user: Any = _UNSET, reason: str = _UNSET) -> Iterator[None]:
    """
    Record ``user`` as ``changed_by`` and ``reason`` as ``change_reason`` on
    every version written inside the block. Blocks nest; an inner block keeps
    whatever it does not set. ``user`` may also be a callable returning the
    user, resolved when a version is written.
    """
    current = _active.get()
    updates = {}
    if user is not _UNSET:
        updates["user"] = user
    if reason is not _UNSET:
        if reason is None:
            reason = ""
        if not isinstance(reason, str):
            raise TypeError(
                f"changes(reason=...) takes a string, not {type(reason).__name__}."
            )
        updates["reason"] = reason
    token = _active.set(replace(current, **updates))
    try:
        yield
    finally:
        _active.reset(token)


def current_user() -> Any:
    """The user to record on a version written now, or None."""
    user = _active.get().user
    if callable(user) and not hasattr(user, "_meta"):
        user = user()
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    if getattr(user, "pk", None) is None:
        return None
    return user


def current_reason() -> str:
    """The reason to record on a version written now ("" when none)."""
    return _active.get().reason


class VersioningMiddleware:
    """
    Records the request's authenticated user as ``changed_by`` on every
    version written while the request is handled. Place it after
    ``AuthenticationMiddleware``.
    """

    def __init__(self, get_response: Callable) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        with changes(user=lambda: getattr(request, "user", None)):
            return self.get_response(request)
