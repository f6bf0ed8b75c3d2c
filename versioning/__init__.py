"""Keep every version of a row in the row's own table."""

from .context import changes

__all__ = ["changes"]
