"""Who made a change and why: the changes() block, and the rule that decides."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any

from .tracking import assigned_who_and_why, loaded_values

__all__ = ["WhoAndWhy", "changes", "current_reason", "current_user", "who_and_why"]

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


@dataclass(frozen=True)
class WhoAndWhy:
    user_id: Any
    user: Any  # the user object when it came from changes(), else None
    reason: str


def who_and_why(instance: Any = None) -> WhoAndWhy:
    """
    Who made the next version of ``instance`` and why: what was assigned on
    the instance (even a value equal to the previous version's), otherwise
    the changes() block's.
    """
    user = current_user()
    from_context = WhoAndWhy(user.pk if user else None, user, current_reason())
    if instance is None:
        return from_context
    loaded = loaded_values(instance)
    assigned = assigned_who_and_why(instance)
    user_id, reason = instance.changed_by_id, instance.change_reason
    keep_user = "changed_by_id" in assigned or user_id != loaded.get("changed_by_id")
    keep_reason = "change_reason" in assigned or reason != loaded.get(
        "change_reason", ""
    )
    return WhoAndWhy(
        user_id if keep_user else from_context.user_id,
        None if keep_user else from_context.user,
        reason if keep_reason else from_context.reason,
    )
