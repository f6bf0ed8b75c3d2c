from django.dispatch import Signal

#: Sent after a save() that wrote a new version of an existing object,
#: inside the saving transaction. Arguments: ``sender`` (the model class),
#: ``instance`` (now the new version) and ``previous`` (the version that was
#: closed, as it is now stored).
version_created = Signal()
