"""The signal sent for every new version made from Python objects."""

from django.dispatch import Signal

__all__ = ["version_created"]

#: Sent after every new version made from Python objects (save(), restore(),
#: bulk_update(), reverse managers' add()/remove()), inside the writing
#: transaction. Arguments: ``sender`` (the model class), ``instance`` (now
#: the new version), ``previous`` (the version that was closed, as it is now
#: stored) and ``using``. update() sends none, like Django's own update().
version_created = Signal()
