"""
History with changes: each version of an object with what changed since the
version before it, whether it created or deleted the object, and why its
changes are unknown when the version before it is gone. Computed once here
for the admin's history page and the ``history`` command.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery
from django.utils.translation import gettext_lazy as _

from .links import prefetch_links

if TYPE_CHECKING:
    from django.db.models import Field, ForeignObjectRel

    from .models import Versioned

__all__ = [
    "PREVIOUS_VERSION_HIDDEN",
    "PREVIOUS_VERSION_PRUNED",
    "HistoryEntry",
    "history_with_changes",
]

#: Said, in the admin and by the command alike, of a version whose previous
#: version ``prune`` removed: there is nothing left to compare it with.
PREVIOUS_VERSION_PRUNED = _("(changes unknown: previous version pruned)")
#: Said of a version whose previous version exists but is not among the rows
#: the caller may show (the admin's ``get_versions_queryset()``).
PREVIOUS_VERSION_HIDDEN = _("(changes not shown: previous version hidden)")

#: (identity, version number) pairs read per query.
PAIRS_PER_QUERY = 500

VersionKey = tuple[Any, int]


@dataclass(frozen=True)
class HistoryEntry:
    """One version and what it did to its object."""

    version: Versioned
    #: ``{field name: (value before, value at this version)}``; a many-to-many
    #: field's values are ``Links``.
    changes: dict[str, tuple[Any, Any]]
    created: bool
    deleted: bool
    previous_pruned: bool = False
    previous_hidden: bool = False

    @property
    def changed_fields(
        self,
    ) -> list[tuple[Field[Any, Any] | ForeignObjectRel, Any, Any]]:
        """The changes as (field, value before, value at this version)."""
        meta = self.version._meta
        return [
            (meta.get_field(name), old, new)
            for name, (old, new) in self.changes.items()
        ]

    @property
    def changes_unknown(self) -> str | None:
        """Why no changes can be given for this version, if they cannot."""
        if self.previous_pruned:
            return str(PREVIOUS_VERSION_PRUNED)
        if self.previous_hidden:
            return str(PREVIOUS_VERSION_HIDDEN)
        return None


def history_with_changes(
    versions: Sequence[Versioned], rows: QuerySet[Any] | None = None
) -> list[HistoryEntry]:
    """
    ``versions`` (of one model, in the order given) each with its changes
    since the version before it. ``rows`` are the versions the caller may
    show (every version of the model when None): a previous version outside
    them is hidden, never compared, and one that is not stored at all was
    pruned. The neighbours ``versions`` leave out (the version before the
    oldest, the one after a closed version) cost one query, and the links
    theirs.
    """
    if not versions:
        return []
    model: Any = type(versions[0])
    given: dict[VersionKey, Versioned] = {_key(v): v for v in versions}
    before = {(v.identity, v.version - 1) for v in versions if v.version > 1}
    # A closed version whose next one is not given: deleted there, or edited?
    after = {
        (v.identity, v.version + 1)
        for v in versions
        if v.valid_to is not None and (v.identity, v.version + 1) not in given
    }
    stored = model.all_versions.using(versions[0]._state.db).order_by()
    if rows is not None:
        stored = stored.annotate(
            versioning_shown=Exists(rows.filter(pk=OuterRef("pk")))
        )
    # A closed version's next one may be pruned rather than never made: the
    # object's newest stored version, read with the neighbours, tells them apart.
    newest_of = {identity for identity, _ in after}
    neighbours = {
        _key(row): row
        for row in _read_versions(
            stored, (before - given.keys()) | after, newest_of=newest_of
        )
    }
    newest = {identity: 0 for identity in newest_of}
    for identity, number in [*given, *neighbours]:
        if identity in newest:
            newest[identity] = max(newest[identity], number)
    read_before = {
        pair: row
        for pair, row in neighbours.items()
        if pair in before and getattr(row, "versioning_shown", True)
    }
    previous_of = given | read_before
    prefetch_links([*versions, *read_before.values()])

    entries = []
    for version in versions:
        before_it = (version.identity, version.version - 1)
        after_it = (version.identity, version.version + 1)
        previous = previous_of.get(before_it)
        lost = version.version > 1 and previous is None
        entries.append(
            HistoryEntry(
                version=version,
                changes=previous.diff(version) if previous is not None else {},
                created=version.version == 1,
                deleted=version.valid_to is not None
                and after_it not in given
                and after_it not in neighbours
                and newest[version.identity] == version.version,
                previous_pruned=lost and before_it not in neighbours,
                previous_hidden=lost and before_it in neighbours,
            )
        )
    return entries


def _key(version: Versioned) -> VersionKey:
    return (version.identity, version.version)


def _read_versions(
    rows: QuerySet[Any],
    pairs: Iterable[VersionKey],
    newest_of: Collection[Any] = (),
) -> list[Any]:
    """
    The rows with these (identity, version) pairs, a few hundred per query,
    and the newest stored version of each object in ``newest_of``.
    """
    pairs = sorted(pairs, key=lambda pair: (str(pair[0]), pair[1]))
    found: list[Any] = []
    newest_rows = Q()
    if newest_of:
        newest_number = (
            rows.model.all_versions.using(rows.db)
            .filter(identity=OuterRef("identity"))
            .order_by("-version")
            .values("version")[:1]
        )
        newest_rows = Q(identity__in=newest_of, version=Subquery(newest_number))
    for start in range(0, len(pairs), PAIRS_PER_QUERY):
        numbers: dict[Any, list[int]] = {}
        for identity, number in pairs[start : start + PAIRS_PER_QUERY]:
            numbers.setdefault(identity, []).append(number)
        matching = Q(
            *(
                Q(identity=identity, version__in=wanted)
                for identity, wanted in numbers.items()
            ),
            _connector=Q.OR,
        )
        if start == 0:
            matching |= newest_rows
        found.extend(rows.filter(matching))
    return found
