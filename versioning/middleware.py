"""VersioningMiddleware: the request's user is who made every version written."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from .context import changes

__all__ = ["VersioningMiddleware"]


class VersioningMiddleware:
    """
    Records the request's authenticated user as ``changed_by`` on every
    version written while the request is handled, in sync and async views.
    Place it after ``AuthenticationMiddleware``.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        if self.is_async:
            return self.__acall__(request)
        with changes(user=self.user_of(request)):
            return self.get_response(request)

    async def __acall__(self, request: Any) -> Any:
        get_response: Callable[[Any], Awaitable[Any]] = self.get_response
        with changes(user=self.user_of(request)):
            return await get_response(request)

    @staticmethod
    def user_of(request: Any) -> Callable[[], Any]:
        # Resolved when a version is written, so requests that write nothing
        # never load the user.
        return lambda: getattr(request, "user", None)
