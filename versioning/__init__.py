"""Keep every version of a row in the row's own table."""

from .context import changes

__version__ = "0.2.0"

__all__ = ["__version__", "changes"]
