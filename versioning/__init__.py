"""Keep every version of a row in the row's own table."""

from .context import changes
from .indexes import CurrentIndex

__version__ = "0.2.0"

__all__ = ["CurrentIndex", "__version__", "changes"]
