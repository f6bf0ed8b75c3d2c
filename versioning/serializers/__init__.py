"""
Fixtures of versioned models: serializers that extend Django's, and the
switch versioning's ``dumpdata`` turns on while it runs.

- Every row is written as it is stored. Django's JSON encoder keeps only
  milliseconds of a datetime (the ECMA-262 date format), which collapses
  short intervals between versions and changes ``as_of()`` answers after a
  reload; these serializers write a versioned row's datetimes and times to
  the microsecond. Many-to-many links of versioned rows are the stored link
  rows, also those a related manager hides (a link to a deleted object).
- A dump carries every version its rows point at (a pinned key, a link or a
  generic key naming an old version), when that version's model is part of
  the dump, so that ``loaddata`` finds each row a key names: a plain
  ``dumpdata`` writes current rows only.

Rows of models that are not versioned are written exactly as Django writes
them. ``loaddata`` needs nothing of this: Django's deserializers read these
fixtures, and a fixture's rows are saved raw, as given.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from django.core import serializers

from .base import DumpSelection, dump_selection

__all__ = ["FORMATS", "DumpSelection", "fixture_serializers"]

#: Django's fixture formats that versioning extends, with the module of each.
FORMATS = {
    "json": "versioning.serializers.json",
    "jsonl": "versioning.serializers.jsonl",
    "xml": "versioning.serializers.xml_serializer",
}


@contextlib.contextmanager
def fixture_serializers(format: str, selection: DumpSelection) -> Iterator[None]:
    """
    While the block runs, ``format`` is written by versioning's serializer
    (when the project has not chosen its own through SERIALIZATION_MODULES),
    and a dump of ``selection`` carries the versions its rows point at.
    Django's dumpdata finds its serializer in the registry by format name and
    has no other hook, so the entry is swapped for the block and put back.
    """
    restore = None
    module = FORMATS.get(format)
    if module is not None:
        try:
            current = serializers.get_serializer(format)
        except serializers.SerializerDoesNotExist:
            current = None
        builtin = serializers.BUILTIN_SERIALIZERS[format]
        if current is not None and current.__module__ == builtin:
            serializers.register_serializer(format, module)
            restore = current.__module__
    token = dump_selection.set(selection)
    try:
        yield
    finally:
        dump_selection.reset(token)
        if restore is not None:
            serializers.register_serializer(format, restore)
