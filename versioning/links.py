"""
Many-to-many links are part of a version of the model that declares them:
what one version links to, how two versions' links differ, and the marks
that let a form's save or a fixture write links as given (the writes
themselves are in versioning.related_writes).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

from django.db import models, router

from .tracking import is_versioned

#: Marks an object whose links are written as they are: inside a form save
#: that already made its new version (True), or loaded from a fixture.
LINKS_AS_GIVEN_ATTRIBUTE = "_versioning_links_as_given"
FROM_FIXTURE = "from a fixture"
#: Links read for a version, by (pk, field name): a row's links never change.
LINKS_CACHE_ATTRIBUTE = "_versioning_links"


class Links(frozenset):
    """
    The objects one version links to through a many-to-many field. Two
    versions' links compare by object: a versioned target by identity (its
    row changes with each of its versions), a plain one by primary key.
    """

    objects: tuple[models.Model, ...]

    def __new__(cls, objects: Iterable[models.Model]) -> Links:
        objects = tuple(objects)
        links = super().__new__(cls, (link_key(obj) for obj in objects))
        links.objects = tuple(sorted(objects, key=str))
        return links

    def __str__(self) -> str:
        return ", ".join(str(obj) for obj in self.objects) or "—"

    def __repr__(self) -> str:
        return f"Links([{', '.join(repr(obj) for obj in self.objects)}])"


def link_key(obj: models.Model) -> Any:
    return obj.identity if is_versioned(type(obj)) else obj.pk  # type: ignore[attr-defined]


def declared_links(model: Any) -> list[models.ManyToManyField]:
    """The many-to-many fields ``model`` declares: their links are its data."""
    return list(model._meta.concrete_model._meta.local_many_to_many)


def links_of(row: models.Model, field: Any) -> Links:
    """What ``row`` (one version) links to through ``field``."""
    cached = row.__dict__.get(LINKS_CACHE_ATTRIBUTE, {}).get((row.pk, field.name))
    if cached is None:
        prefetch_links([row])
        cached = row.__dict__[LINKS_CACHE_ATTRIBUTE][(row.pk, field.name)]
    return cached


def prefetch_links(rows: Iterable[models.Model | None]) -> None:
    """
    Read the links of many versions of one model at once (two queries per
    many-to-many field), for a history page or a command's report.
    """
    present: list[Any] = [row for row in rows if row is not None]
    if not present:
        return
    model = type(present[0])
    using = present[0]._state.db or router.db_for_read(model, instance=present[0])
    for field in declared_links(model):
        through: Any = field.remote_field.through
        source = through._meta.get_field(field.m2m_field_name()).attname
        target = through._meta.get_field(field.m2m_reverse_field_name()).attname
        # Read without joins: a historical version's links name historical rows.
        pairs = list(
            through._base_manager.using(using)
            .filter(**{f"{source}__in": {row.pk for row in present}})
            .values_list(source, target)
        )
        targets = field.related_model._base_manager.using(using).in_bulk(
            {key for _, key in pairs}
        )
        linked: dict[Any, list[models.Model]] = {}
        for source_pk, target_pk in pairs:
            linked.setdefault(source_pk, []).append(targets[target_pk])
        for row in present:
            cache = row.__dict__.setdefault(LINKS_CACHE_ATTRIBUTE, {})
            cache[(row.pk, field.name)] = Links(linked.get(row.pk, ()))


def link_changes(
    one: models.Model, other: models.Model
) -> dict[str, tuple[Links, Links]]:
    """The many-to-many fields whose links differ, as ``{name: (here, other)}``."""
    changes = {}
    for field in declared_links(type(one)):
        here, there = links_of(one, field), links_of(other, field)
        if here != there:
            changes[field.name] = (here, there)
    return changes


@contextlib.contextmanager
def one_version(instance: models.Model, *, made: bool) -> Iterator[None]:
    """
    Link changes inside the block belong to one version of ``instance``: the
    one its save just ``made``, or else the first link change makes one.
    """
    given = instance.__dict__.get(LINKS_AS_GIVEN_ATTRIBUTE)
    instance.__dict__[LINKS_AS_GIVEN_ATTRIBUTE] = made or "first change versions"
    try:
        yield
    finally:
        if given is None:
            instance.__dict__.pop(LINKS_AS_GIVEN_ATTRIBUTE, None)
        else:
            instance.__dict__[LINKS_AS_GIVEN_ATTRIBUTE] = given


def remember_raw_save(
    sender: Any, instance: Any, raw: bool = False, **kwargs: Any
) -> None:
    """
    pre_save: an object loaded from a fixture gets its links as given. (Not
    post_save: a save must be able to tell receivers of its own from the
    user's by post_save.has_listeners().)
    """
    if raw and is_versioned(type(instance)):
        instance.__dict__[LINKS_AS_GIVEN_ATTRIBUTE] = FROM_FIXTURE
