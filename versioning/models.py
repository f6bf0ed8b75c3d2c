"""The abstract Versioned model: every save of a change inserts a new row."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Collection, Iterable, Sequence
from typing import Any, NoReturn, Self

from django.conf import settings
from django.core.checks import CheckMessage
from django.core.exceptions import ValidationError
from django.db import connections, models, router
from django.db.models.signals import class_prepared, pre_save
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import checks, fixup, schema, transactions, writes
from .exceptions import HistoricalVersionError
from .links import link_changes
from .managers import (
    AllVersionsManager,
    CurrentManager,
    RowsManager,
    VersionedQuerySet,
    alters_data,
)
from .tracking import (
    BOOKKEEPING_FIELD_NAMES,
    data_fields,
    forget_assignments,
    loaded_values,
    remember_loaded_row,
    remember_loaded_values,
    track_who_and_why_assignments,
    values_differ,
)

__all__ = ["BOOKKEEPING_FIELD_NAMES", "Versioned", "data_fields"]

#: The manager Django uses for its own access to rows (Meta.base_manager_name).
ROWS_MANAGER_NAME = "_versioned_rows"


class Versioned(models.Model):
    """
    Abstract base for models whose rows are never overwritten.

    Saving a changed object closes the loaded row and inserts a new one with
    the same ``identity`` and ``version + 1``; rows pointing at the closed
    row are re-pointed at the new one.
    """

    identity = models.UUIDField(
        _("identity"),
        default=uuid.uuid4,
        # Rows that exist when a model becomes versioned each get their own.
        db_default=schema.RandomUUID(),
        editable=False,
    )
    version = models.PositiveIntegerField(_("version"), default=1, editable=False)
    valid_from = models.DateTimeField(
        _("valid from"), default=timezone.now, editable=False
    )
    valid_to = models.DateTimeField(
        _("valid to"), null=True, blank=True, editable=False
    )
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("changed by"),
        null=True,
        blank=True,
        editable=False,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    change_reason = models.TextField(
        _("change reason"), blank=True, default="", editable=False
    )

    objects = CurrentManager()
    all_versions = AllVersionsManager()
    _versioned_rows = RowsManager()

    _is_versioned_model = True
    _pending_version: writes.PendingVersion | None = None

    class Meta:
        abstract = True

    def __getstate__(self) -> dict[str, Any]:
        # Weak references to in-memory referrers belong to this process only.
        state = super().__getstate__()
        state.pop(fixup.REFERRERS_ATTRIBUTE, None)
        return state

    def __str__(self) -> str:
        return f"{self._meta.verbose_name} {str(self.identity)[:8]} v{self.version}"

    # Loading ----------------------------------------------------------------

    @classmethod
    def from_db(
        cls,
        db: str | None,
        field_names: Collection[str],
        values: Collection[Any],
        **kwargs: Any,
    ) -> Self:
        instance = super().from_db(db, field_names, values, **kwargs)
        remember_loaded_row(instance, field_names, values)
        return instance

    def refresh_from_db(
        self,
        using: str | None = None,
        fields: Iterable[str] | None = None,
        from_queryset: models.QuerySet[Self] | None = None,
    ) -> None:
        written = transactions.unconfirmed_row(self)
        if written is not None and written.rolled_back:
            # Its key may belong to another row by now: never load that.
            raise self.DoesNotExist(
                f"{writes.label(self)} was written in a transaction that was "
                "rolled back. Load the current version: obj.current_version()."
            )
        super().refresh_from_db(using=using, fields=fields, from_queryset=from_queryset)
        if fields is None:
            remember_loaded_values(self)
            forget_assignments(self)
        else:
            concrete = {f.name: f.attname for f in self._meta.concrete_fields}
            concrete.update({attname: attname for attname in concrete.values()})
            remember_loaded_values(
                self, [concrete[name] for name in fields if name in concrete]
            )

    # Reading ----------------------------------------------------------------

    @property
    def is_current(self) -> bool:
        """Whether this row was the current version when it was loaded or saved."""
        return not self._state.adding and self.valid_to is None

    def history(self) -> models.QuerySet:
        """Every version of this object, oldest first."""
        return self._identity_versions().order_by("version")

    def current_version(self) -> Versioned | None:
        """The current row of this object, or None if the object was deleted."""
        # Read where a write of this object is checked: after a
        # StaleVersionError this is the row a save will accept, never a
        # lagging replica's.
        using = router.db_for_write(type(self), instance=self)
        current = self._identity_versions().using(using)
        return current.filter(valid_to__isnull=True).first()

    def previous_version(self) -> Versioned | None:
        """The version before this one, or None for version 1."""
        return self._identity_versions().filter(version=self.version - 1).first()

    def next_version(self) -> Versioned | None:
        """The version after this one, or None for the latest."""
        return self._identity_versions().filter(version=self.version + 1).first()

    def diff(self, other: Versioned) -> dict[str, tuple[Any, Any]]:
        """
        The data fields whose values differ between this version and
        ``other``, as ``{field name: (value here, value in other)}``; for a
        many-to-many field this model declares, the two versions' ``Links``.
        """
        if not isinstance(other, Versioned) or (
            other._meta.concrete_model is not self._meta.concrete_model
        ):
            raise TypeError(
                f"diff() compares two versions of one {self._meta.object_name}; "
                f"got {other!r}."
            )
        changes = {
            field.name: (field.value_from_object(self), field.value_from_object(other))
            for field in data_fields(type(self))
            if values_differ(
                field, field.value_from_object(self), field.value_from_object(other)
            )
        }
        return changes | link_changes(self, other)

    def _identity_versions(self) -> VersionedQuerySet:
        # Routed as Django routes related objects, with the instance as the
        # hint: a router may send history to a replica (docs/replicas.md).
        versions = type(self).all_versions.db_manager(hints={"instance": self})
        return versions.filter(identity=self.identity)

    # Writing: the rules live in versioning.writes ----------------------------

    @alters_data
    def save(self, *args: Any, **kwargs: Any) -> None:
        if args:
            raise TypeError(
                "Versioned.save() takes its options as keyword arguments, "
                "for example save(using='default')."
            )
        update_fields = kwargs.get("update_fields")
        if update_fields is not None:
            # As Django: nothing to save, or names that are not fields.
            if not update_fields:
                return
            # (Options._non_pk_concrete_field_names is not in django-stubs.)
            unknown = set(update_fields) - self._meta._non_pk_concrete_field_names  # type: ignore[attr-defined]
            if unknown:
                raise ValueError(
                    "The following fields do not exist in this model, are m2m "
                    "fields, primary keys, or are non-concrete fields: "
                    + ", ".join(sorted(unknown))
                )
        using = kwargs.get("using") or router.db_for_write(type(self), instance=self)
        # No pk is a new object, as for Django: a copy made by pk = None too.
        if self._state.adding or self.pk is None:
            self._save_options = {
                k: v for k, v in kwargs.items() if k not in {"update_fields", "using"}
            }
            try:
                writes.create_first_version(self, using)
            finally:
                del self._save_options
            return
        # A write rolled back with the caller's transaction says so first.
        transactions.check_written_row(self)
        self._load_deferred_bookkeeping(using)
        if self.valid_to is not None:
            self._refuse_historical("saved")
        # save(update_fields=[...]) still makes a complete new version.
        writes.save_version(self, using)

    def _insert_row(self, using: str) -> None:
        """Let Django insert this object as a new row (the engine's insert)."""
        options = dict(getattr(self, "_save_options", {}))
        options.pop("force_update", None)
        options.pop("force_insert", None)
        # An explicit pk must never update an existing row in place.
        super().save(**options, using=using, force_insert=True)

    def _save_table(
        self,
        raw: bool = False,
        cls: Any = None,
        force_insert: Any = False,
        force_update: bool = False,
        using: str | None = None,
        update_fields: Any = None,
    ) -> bool:
        # _save_table and _do_insert: Django internals django-stubs does not declare.
        updated = super()._save_table(  # type: ignore[misc]
            raw, cls, force_insert, force_update, using, update_fields
        )
        pending = self._pending_version
        if pending is None:
            return updated
        # Where the row was written: _state.db still names where the object
        # was read from (a replica, say) until Django's save_base() returns.
        using = using or router.db_for_write(type(self), instance=self)
        writes.fix_up_new_version(self, using, pending)
        # A new version of an existing object is an update from the caller's
        # point of view: post_save gets created=False.
        return True

    def _do_insert(
        self,
        manager: models.Manager[Any],
        using: str,
        fields: Sequence[models.Field],
        returning_fields: Sequence[models.Field],
        raw: bool,
    ) -> Any:
        if self._pending_version is None:
            return super()._do_insert(  # type: ignore[misc]
                manager, using, fields, returning_fields, raw
            )
        # A new version keeps auto_now_add values as the replaced row holds
        # them (the object's creation; Django 6 has already overwritten them
        # by now); every other field's pre_save (auto_now too) runs as on
        # update.
        replaced = loaded_values(self)
        for field in fields:
            if getattr(field, "auto_now_add", False) and field.attname in replaced:
                setattr(self, field.attname, replaced[field.attname])
            else:
                setattr(self, field.attname, field.pre_save(self, False))
        closing = self._pending_version.closing
        with (
            connections[using].execute_wrapper(closing)
            if closing is not None
            else contextlib.nullcontext()
        ):
            return super()._do_insert(  # type: ignore[misc]
                manager, using, fields, returning_fields, True
            )

    @alters_data
    def delete(
        self, using: str | None = None, keep_parents: bool = False
    ) -> tuple[int, dict[str, int]]:
        """
        Close the current version; every row stays, history() keeps working.
        The referrers' on_delete applies, except that versioned referrers are
        closed or given a new version, never erased.
        """
        if self._state.adding or self.pk is None:
            raise ValueError(
                f"{self._meta.object_name} object can't be deleted because it "
                "was never saved."
            )
        transactions.check_written_row(self)
        using = using or router.db_for_write(type(self), instance=self)
        self._load_deferred_bookkeeping(using)
        if self.valid_to is not None:
            self._refuse_historical("deleted")
        return writes.close_object(self, using)

    def _load_deferred_bookkeeping(self, using: str) -> None:
        """
        Load the bookkeeping a write checks, if it was deferred, from the
        database written to: a router may send plain reads to a replica that
        has not seen this row yet.
        """
        checked = ("identity", "version", "valid_from", "valid_to")
        deferred = [name for name in checked if name not in self.__dict__]
        if deferred:
            self.refresh_from_db(using=using, fields=deferred)

    def _refuse_historical(self, action: str) -> NoReturn:
        raise HistoricalVersionError(
            f"{writes.label(self)} is a historical version and cannot be "
            f"{action}. Change the current version, or call restore() on this one."
        )

    @alters_data
    def restore(self, *, using: str | None = None) -> Versioned:
        """
        Make this version's data current again, as a new version, and return
        that new version. Works on any row, also after the object was deleted.
        Restoring the current version changes nothing and returns it.
        """
        if self._state.adding:
            raise ValueError("restore() needs a saved version.")
        using = using or router.db_for_write(type(self), instance=self)
        return writes.restore_version(self, using)

    @alters_data
    def purge(self, *, using: str | None = None) -> tuple[int, dict[str, int]]:
        """Really delete every version of this object; see VersionedQuerySet.purge."""
        using = using or router.db_for_write(type(self), instance=self)
        return self._identity_versions().using(using).purge()

    # Validation and checks ---------------------------------------------------

    def validate_constraints(self, exclude: Any = None) -> None:
        # valid_to is never a form field, so stock Django would skip every
        # constraint scoped to current rows; those must still be checked, and
        # a scoped unique constraint reported as Django reports unique=True.
        if exclude:
            exclude = set(exclude) - {"valid_to"}
        using = router.db_for_write(type(self), instance=self)
        errors: dict[str, list] = {}
        constraint: Any  # read as a UniqueConstraint (.fields) on a unique error
        for model_class, constraints in self.get_constraints():
            for constraint in constraints:
                try:
                    if is_scoped_unique(constraint):
                        self._validate_scoped_unique(
                            model_class, constraint, exclude, using
                        )
                    else:
                        constraint.validate(
                            model_class, self, exclude=exclude, using=using
                        )
                except ValidationError as error:
                    if (
                        getattr(error, "code", None) == "unique"
                        and len(constraint.fields) == 1
                    ):
                        errors.setdefault(constraint.fields[0], []).append(error)
                    else:
                        errors = error.update_error_dict(errors)
        if errors:
            raise ValidationError(errors)

    def _validate_scoped_unique(
        self, model_class: Any, constraint: Any, exclude: Any, using: str
    ) -> None:
        """
        A unique constraint scoped to current rows, checked against the
        current rows of other objects (never against this object's own newer
        version) and reported as Django reports unique=True.
        """
        if exclude and set(constraint.fields) & set(exclude):
            return
        lookup = {}
        for name in constraint.fields:
            value = getattr(self, model_class._meta.get_field(name).attname)
            if value is None:
                return  # NULLs never collide
            lookup[name] = value
        others = model_class._default_manager.using(using).filter(**lookup)
        if others.exclude(identity=self.identity).exists():
            raise self.unique_error_message(model_class, constraint.fields)

    @classmethod
    def check(cls, **kwargs: Any) -> list[CheckMessage]:
        return [*super().check(**kwargs), *checks.check_versioned_model(cls, Versioned)]


def restore_reason(version: int) -> str:
    """The change reason of a restore that was given none: the admin's and restore's."""
    return str(_("Restored version %(version)s") % {"version": version})


#: The condition of a unique constraint scoped to current rows.
CURRENT_ROWS = models.Q(valid_to__isnull=True)


def is_scoped_unique(constraint: models.BaseConstraint) -> bool:
    """A unique constraint on fields, scoped to current rows, with Django's message."""
    return (
        isinstance(constraint, models.UniqueConstraint)
        and bool(constraint.fields)
        and not constraint.expressions
        and constraint.condition == CURRENT_ROWS
        and constraint.violation_error_message
        == constraint.default_violation_error_message
    )


def clear_primary_key_for_new_version(
    sender: type[models.Model], instance: Any, raw: bool = False, **kwargs: Any
) -> None:
    """Make Django insert a new row for a new version instead of updating."""
    if not raw and instance._pending_version is not None:
        instance.pk = None


def prepare_versioned_model(sender: type[models.Model], **kwargs: Any) -> None:
    if not issubclass(sender, Versioned) or sender._meta.abstract:
        return
    schema.add_version_constraints(sender)
    # Django's own access to rows (related managers' add(), say) goes through
    # the base manager: ours versions instead of overwriting. A base manager
    # the model names itself is its author's choice.
    if sender._meta.base_manager_name is None:
        sender._meta.base_manager_name = ROWS_MANAGER_NAME
    track_who_and_why_assignments(sender)
    pre_save.connect(
        clear_primary_key_for_new_version,
        sender=sender,
        dispatch_uid=f"versioning.clear_pk.{sender._meta.label}.{id(sender)}",
    )


class_prepared.connect(prepare_versioned_model)
