"""
Queries that cross a relation into a versioned model see the versions that
belong to the query: the current rows (``objects``, and every plain model's
queryset), the rows current at a moment (``as_of()``), or every row
(``all_versions``).

Django lets a relation add a condition to its joins (the hook generic
relations use). Each key to or from a versioned model gets one: the joined
table keeps its current rows. Versioned querysets carry their scope in their
``VersionedQuery``, whose joins replace that condition for history: the rows
current at the moment, matched by identity (a referrer re-pointed in place
later still leads to the version that was current then), or every row.
"""

from __future__ import annotations

import copy
import datetime
import functools
from typing import Any

from django.db.models import BooleanField, Exists, Expression, F, OuterRef
from django.db.models.lookups import GreaterThan, IsNull, LessThanOrEqual
from django.db.models.sql.datastructures import Join
from django.db.models.sql.query import Query
from django.db.models.sql.where import AND, OR, WhereNode

from .exceptions import VersioningError
from .fields import PinnedForeignKey
from .tracking import is_versioned

__all__ = ["ALL", "AS_OF", "CURRENT", "ROWS", "VersionedQuery"]

#: The rows a query stands for.
CURRENT, ALL, AS_OF, ROWS = "current", "all versions", "as of", "rows"


def current_rows(model: Any, alias: str) -> IsNull:
    return IsNull(model._meta.get_field("valid_to").get_col(alias), True)


def rows_at(model: Any, alias: str, when: datetime.datetime) -> WhereNode:
    """valid_from <= when < valid_to, on the table joined as ``alias``."""
    valid_from = model._meta.get_field("valid_from").get_col(alias)
    valid_to = model._meta.get_field("valid_to").get_col(alias)
    still_open: list[Any] = [GreaterThan(valid_to, when), IsNull(valid_to, True)]
    started: list[Any] = [LessThanOrEqual(valid_from, when)]
    return WhereNode([*started, WhereNode(still_open, OR)], AND)


def joined_versions(
    relation: Any, alias: str, scope: str, when: datetime.datetime | None
) -> Any:
    """
    The condition that keeps the versions of the query's scope in the table
    that ``relation`` (a key, or its reverse) joins as ``alias``.

    Following a key of an ordinary model to its target is left alone for
    current rows: the fixup keeps current referrers on current rows, a key
    left on a deleted object's last row names that row (as ``obj.key``
    does), and so select_related(), values() and order_by() never lose a
    row. Link rows of a many-to-many table belong to versions of the
    declaring object, so the keys of a through table are always scoped.
    """
    model = relation.related_model
    if not is_versioned(model) or scope in (ALL, ROWS):
        return None
    if isinstance(relation, PinnedForeignKey):
        return None  # a pinned key names one version, whichever it is
    if scope == AS_OF:
        assert when is not None
        return rows_at(model, alias, when)
    if relation.concrete and not getattr(relation, "versioning_link_key", False):
        return None
    return current_rows(model, alias)


def both(*conditions: Any) -> Any:
    present = [condition for condition in conditions if condition is not None]
    if len(present) > 1:
        return WhereNode(present, AND)
    return present[0] if present else None


def restrict_key_join(key: Any, alias: str | None, related_alias: str) -> Any:
    """
    The join hook of a key: ``alias`` is the target table joined from the
    key's own table (``related_alias``). Django's exclude() asks with no
    ``alias`` for the key's own table, the start of its subquery.
    """
    own = type(key).get_extra_restriction(key, alias, related_alias)
    if alias is None:
        return both(
            own,
            joined_versions(key.remote_field, related_alias, CURRENT, None),
            current_links(key, related_alias),
        )
    return both(own, joined_versions(key, alias, CURRENT, None))


def restrict_reverse_join(reverse: Any, alias: str, related_alias: str) -> Any:
    """The join hook of a key's reverse: ``alias`` is the key's own table."""
    key = reverse.field
    own = type(key).get_extra_restriction(key, related_alias, alias)
    return both(
        own,
        joined_versions(reverse, alias, CURRENT, None),
        current_links(key, alias),
    )


def current_links(key: Any, alias: str) -> Any:
    """
    Joined from one side into a many-to-many table (as ``alias``), keep the
    links whose other side is a current row. Django reads a link's other
    key in place of joining the other table when that is all a lookup
    needs (``isnull``, ``Count()``, ``values()``), so the link rows are
    scoped themselves.
    """
    other = getattr(key, "versioning_other_link_key", None)
    if other is None or not is_versioned(other.related_model):
        return None
    if isinstance(other, PinnedForeignKey):
        return None
    return CurrentRowKey(other, alias)


def links_at(key: Any, alias: str, when: datetime.datetime) -> Any:
    """
    Joined from the other side into a many-to-many table (as ``alias``) as of
    ``when``, keep the links of the declaring rows that were current then.
    """
    declaring = getattr(key, "versioning_other_link_key", None)
    if declaring is None or getattr(declaring, "versioning_by_identity", True):
        return None  # not a link table, or joined from the declaring side
    if not is_versioned(declaring.related_model):
        return None
    return CurrentRowKey(declaring, alias, when)


class CurrentRowKey(Expression):
    """
    ``key`` (on the table joined as ``alias``) names a current row, or a row
    that was current at ``when``.
    """

    conditional = True
    output_field = BooleanField()

    def __init__(self, key: Any, alias: str, when: datetime.datetime | None = None):
        super().__init__()
        self.key = key
        self.key_column = key.get_col(alias)
        self.when = when

    def get_source_expressions(self) -> list[Any]:
        return [self.key_column]

    def set_source_expressions(self, exprs: Any) -> None:
        [self.key_column] = exprs

    def as_sql(self, compiler: Any, connection: Any) -> Any:
        if self.when is None and getattr(
            compiler.query, "versioning_exact_links", False
        ):
            return "1 = 1", []  # an owner's related manager asks for its own links
        quote = connection.ops.quote_name
        meta = self.key.related_model._meta
        key_sql, params = compiler.compile(self.key_column)
        column = quote(self.key.target_field.column)
        valid_from = quote(meta.get_field("valid_from").column)
        valid_to = quote(meta.get_field("valid_to").column)
        if self.when is None:
            rows, row_params = f"{valid_to} IS NULL", []
        else:
            moment = meta.get_field("valid_to").get_db_prep_value(self.when, connection)
            rows = f"{valid_from} <= %s AND ({valid_to} > %s OR {valid_to} IS NULL)"
            row_params = [moment, moment]
        sql = f"{key_sql} IN (SELECT {column} FROM {quote(meta.db_table)} WHERE {rows})"
        return sql, [*params, *row_params]


class IdentityMatch(Expression):
    """
    The key column of the referrer names a row of the target's identity:
    ``target.identity = (identity of the row the key names)``.
    """

    conditional = True
    output_field = BooleanField()

    def __init__(self, key: Any, referrer_alias: str, target_alias: str):
        super().__init__()
        self.key = key
        self.key_column = key.get_col(referrer_alias)
        identity = key.related_model._meta.get_field("identity")
        self.target_identity = identity.get_col(target_alias)

    def get_source_expressions(self) -> list[Any]:
        return [self.key_column, self.target_identity]

    def set_source_expressions(self, exprs: Any) -> None:
        self.key_column, self.target_identity = exprs

    def as_sql(self, compiler: Any, connection: Any) -> Any:
        quote = connection.ops.quote_name
        meta = self.key.related_model._meta
        named = quote(f"{self.target_identity.alias}_named")
        pk = f"{named}.{quote(meta.pk.column)}"
        identity = f"{named}.{quote(meta.get_field('identity').column)}"
        key_sql, key_params = compiler.compile(self.key_column)
        identity_sql, identity_params = compiler.compile(self.target_identity)
        table = quote(meta.db_table)
        # An equality between the target's identity and an expression of the
        # referrer alone, so that the database can hash or merge the join.
        sql = (
            f"{identity_sql} = (SELECT {identity} FROM {table} {named} "
            f"WHERE {pk} = {key_sql})"
        )
        return sql, [*identity_params, *key_params]


class ScopedJoinField:
    """
    Stands in for a join's field while the join is written for a history
    scope: Django's own condition, the scope's rows of the joined table, and
    the identity match that replaces the key equality.
    """

    def __init__(self, join: VersionedJoin, scope: str, when: Any, by_identity: bool):
        self.join = join
        self.scope = scope
        self.when = when
        self.by_identity = by_identity

    def get_extra_restriction(self, alias: str, related_alias: str) -> Any:
        relation: Any = self.join.join_field
        key = key_of(relation)
        if key is relation:
            own = type(key).get_extra_restriction(key, alias, related_alias)
            referrer_alias, target_alias = related_alias, alias
        else:
            own = type(key).get_extra_restriction(key, related_alias, alias)
            referrer_alias, target_alias = alias, related_alias
        match = None
        if self.by_identity:
            match = IdentityMatch(key, referrer_alias, target_alias)
        links = None
        if self.scope == AS_OF and key is not relation:
            links = links_at(key, alias, self.when)
        return both(
            own, match, joined_versions(relation, alias, self.scope, self.when), links
        )


def key_of(relation: Any) -> Any:
    """The key behind a join: the field itself, or the field of its reverse."""
    return (
        relation if not relation.auto_created or relation.concrete else relation.field
    )


class VersionedJoin(Join):
    """A join whose condition follows the scope of the query it is written for."""

    def as_sql(self, compiler: Any, connection: Any) -> Any:
        query = compiler.query
        scope = getattr(query, "versioning_scope", CURRENT)
        if scope == CURRENT:
            return super().as_sql(compiler, connection)
        by_identity = scope == AS_OF and getattr(
            key_of(self.join_field), "versioning_by_identity", False
        )
        join: Any = copy.copy(self)
        join.join_field = ScopedJoinField(
            self, scope, query.versioning_when, by_identity
        )
        if by_identity:
            join.join_fields = join.join_cols = ()
        return Join.as_sql(join, compiler, connection)


class VersionedQuery(Query):
    """The query of a versioned queryset: it knows which rows it stands for."""

    join_class = VersionedJoin
    versioning_scope = CURRENT
    versioning_when: datetime.datetime | None = None

    def combine(self, rhs: Any, connector: Any) -> None:
        versioned_query_combinable(self, rhs, "Combining querysets with | or &")
        super().combine(rhs, connector)

    def is_nullable(self, field: Any) -> bool:
        # As of a moment, a key's target may not have existed yet (or any
        # more): joins that select through it are outer joins, so that no row
        # is lost for it; filters still make them inner joins.
        if self.versioning_scope == AS_OF and getattr(
            field, "versioning_by_identity", False
        ):
            return True
        return super().is_nullable(field)

    def trim_joins(self, targets: Any, joins: Any, path: Any) -> Any:
        # Django reads a key in place of joining the table it names when that
        # is enough; as of a moment, the key may name another version than
        # the one current then, so a versioned table at the end stays joined.
        if (
            self.versioning_scope == AS_OF
            and path
            and is_versioned(path[-1].to_opts.model)
        ):
            return targets, joins[-1], joins
        return super().trim_joins(targets, joins, path)

    def split_exclude(
        self, filter_expr: Any, can_reuse: Any, names_with_path: Any
    ) -> Any:
        if self.versioning_scope == CURRENT:
            return super().split_exclude(filter_expr, can_reuse, names_with_path)
        # Django starts its subquery at the related table and matches it by
        # key; history is matched by identity, so the subquery starts here,
        # with this query's scope, and matches the row itself.
        inner: Any = self.__class__(self.model)
        inner.versioning_scope = self.versioning_scope
        inner.versioning_when = self.versioning_when
        inner._filtered_relations = self._filtered_relations  # type: ignore[attr-defined]
        lookup, value = filter_expr
        if isinstance(value, OuterRef):
            value = OuterRef(value)
        elif isinstance(value, F):
            value = OuterRef(value.name)  # type: ignore[attr-defined]
        inner.add_filter(lookup, value)
        inner.add_filter("pk", OuterRef("pk"))
        inner.clear_ordering(force=True)
        return self.build_filter(Exists(inner))  # type: ignore[arg-type]


def versioned_query_combinable(query: Any, other: Any, operation: str) -> None:
    """Queries read at different moments cannot be combined: say so."""
    scope = getattr(query, "versioning_scope", CURRENT)
    other_scope = getattr(other, "versioning_scope", CURRENT)
    moment = getattr(query, "versioning_when", None)
    other_moment = getattr(other, "versioning_when", None)
    if (scope, moment) != (other_scope, other_moment):
        raise VersioningError(
            f"{operation} needs querysets that read the same versions; these "
            f"read {describe_scope(scope, moment)} and "
            f"{describe_scope(other_scope, other_moment)}. Evaluate them "
            "separately, or filter one queryset with Q objects."
        )


def describe_scope(scope: str, moment: datetime.datetime | None) -> str:
    if scope == AS_OF and moment is not None:
        return f"the versions as of {moment.isoformat()}"
    return {CURRENT: "current versions", ALL: "every version"}.get(scope, "every row")


def scope_joins(all_models: list[Any]) -> None:
    """
    Give each key that touches a versioned model, and its reverse, the join
    hook that keeps the joined table's scope.
    """
    many_to_many = [
        m2m
        for model in all_models
        for m2m in model._meta.local_many_to_many
        # Not set up yet (a through model named but not defined): wired
        # again once it is.
        if not isinstance(m2m.remote_field.through, str)
        and hasattr(m2m, "m2m_field_name")
    ]
    for m2m in many_to_many:
        through = m2m.remote_field.through
        one = through._meta.get_field(m2m.m2m_field_name())
        other = through._meta.get_field(m2m.m2m_reverse_field_name())
        one.versioning_other_link_key = other
        other.versioning_other_link_key = one
    through_models = {m2m.remote_field.through for m2m in many_to_many}
    exact_keys = {
        m2m.remote_field.through._meta.get_field(m2m.m2m_field_name())
        for m2m in many_to_many
    }
    for model in all_models:
        for key in model._meta.local_fields:
            if not key.is_relation or isinstance(key.related_model, str):
                continue  # not a relation, or one whose model is not defined yet
            other = getattr(key, "versioning_other_link_key", None)
            if (
                is_versioned(key.model)
                or is_versioned(key.related_model)
                or (other is not None and is_versioned(other.related_model))
            ):
                key.versioning_link_key = model in through_models
                scope_key(key, by_identity=key not in exact_keys)


def scope_key(key: Any, *, by_identity: bool) -> None:
    key.get_extra_restriction = functools.partial(restrict_key_join, key)
    key.remote_field.get_extra_restriction = functools.partial(
        restrict_reverse_join, key.remote_field
    )
    # A link row names the exact version that declares it; every other key
    # (but a pinned one) follows its target from version to version.
    key.versioning_by_identity = (
        by_identity
        and is_versioned(key.related_model)
        and not isinstance(key, PinnedForeignKey)
        and key.target_field.primary_key
    )
