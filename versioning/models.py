"""The abstract Versioned model: every save of a change inserts a new row."""

from __future__ import annotations

import copy
import functools
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, models, router, transaction
from django.db.models.signals import class_prepared, pre_save
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import checks, context, fixup, schema
from .exceptions import HistoricalVersionError, StaleVersionError
from .query import (
    AllVersionsManager,
    AllVersionsQuerySet,
    CurrentManager,
    alters_data,
    close_row,
)
from .signals import version_created

#: Columns every versioned row gets; a subclass may not redefine them.
BOOKKEEPING_FIELD_NAMES = frozenset(
    {"identity", "version", "valid_from", "valid_to", "changed_by", "change_reason"}
)


@dataclass(frozen=True)
class _PendingVersion:
    """What the insert of a new version must fix up once the row exists."""

    replaces_pk: Any
    copy_links_from_pk: Any


class Versioned(models.Model):
    """
    Abstract base for models whose rows are never overwritten.

    Saving a changed object closes the loaded row and inserts a new one with
    the same ``identity`` and ``version + 1``; rows pointing at the closed
    row are re-pointed at the new one.
    """

    identity = models.UUIDField(_("identity"), default=uuid.uuid4, editable=False)
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

    _is_versioned_model = True
    _pending_version: _PendingVersion | None = None
    _loaded_values: dict[str, Any]

    class Meta:
        abstract = True

    def __getstate__(self):
        # Weak references to in-memory referrers and the undo log of a save
        # in progress belong to this process only.
        state = super().__getstate__()
        state.pop(fixup.REFERRERS_ATTRIBUTE, None)
        state.pop("_fixup_undo", None)
        return state

    def __str__(self) -> str:
        return f"{self._meta.verbose_name} {str(self.identity)[:8]} v{self.version}"

    # Loading ----------------------------------------------------------------

    @classmethod
    def from_db(cls, db, field_names, values, **kwargs):
        instance = super().from_db(db, field_names, values, **kwargs)
        loaded = dict(zip(field_names, values, strict=True))
        copy_mutable_values(cls, loaded)
        instance._loaded_values = loaded
        return instance

    def refresh_from_db(self, using=None, fields=None, from_queryset=None):
        super().refresh_from_db(using=using, fields=fields, from_queryset=from_queryset)
        if fields is None:
            self._remember_loaded_values()
        else:
            concrete = {f.name: f.attname for f in self._meta.concrete_fields}
            concrete.update({attname: attname for attname in concrete.values()})
            self._remember_loaded_values(
                [concrete[name] for name in fields if name in concrete]
            )

    def _remember_loaded_values(self, attnames=None) -> None:
        if attnames is None:
            self._loaded_values = {}
            attnames = [f.attname for f in self._meta.concrete_fields]
        elif not hasattr(self, "_loaded_values"):
            self._loaded_values = {}
        remembered = {a: self.__dict__[a] for a in attnames if a in self.__dict__}
        copy_mutable_values(type(self), remembered)
        self._loaded_values.update(remembered)

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
        return self._identity_versions().filter(valid_to__isnull=True).first()

    def previous_version(self) -> Versioned | None:
        """The version before this one, or None for version 1."""
        return self._identity_versions().filter(version=self.version - 1).first()

    def next_version(self) -> Versioned | None:
        """The version after this one, or None for the latest."""
        return self._identity_versions().filter(version=self.version + 1).first()

    def diff(self, other: Versioned) -> dict[str, tuple[Any, Any]]:
        """
        The data fields whose values differ between this version and
        ``other``, as ``{field name: (value here, value in other)}``.
        """
        if not isinstance(other, Versioned) or (
            other._meta.concrete_model is not self._meta.concrete_model
        ):
            raise TypeError(
                f"diff() compares two versions of one {self._meta.object_name}; "
                f"got {other!r}."
            )
        return {
            field.name: (field.value_from_object(self), field.value_from_object(other))
            for field in data_fields(type(self))
            if field.value_from_object(self) != field.value_from_object(other)
        }

    def _identity_versions(self) -> AllVersionsQuerySet:
        return (
            type(self).all_versions.using(self._state.db).filter(identity=self.identity)
        )

    # Writing ----------------------------------------------------------------

    @alters_data
    def save(self, *args, **kwargs):
        if self._state.adding:
            self._save_first_version(*args, **kwargs)
            return
        if args:
            raise TypeError(
                "Versioned.save() takes its options as keyword arguments, "
                "for example save(using='default')."
            )
        if self.valid_to is not None:
            raise HistoricalVersionError(
                f"{self._label()} is a historical version and cannot be saved. "
                "Edit the current version, or call restore() on this one."
            )
        using = kwargs.get("using") or router.db_for_write(type(self), instance=self)
        if not self._has_data_changes(using):
            return
        # A new version never loses data the caller did not load.
        self._load_deferred_fields(using)
        now = max(timezone.now(), self.valid_from)
        previous = self._closed_copy(using, now)
        with self._unchanged_on_error():
            try:
                with transaction.atomic(using=using):
                    if not close_row(type(self), using, now, self.pk):
                        raise StaleVersionError(self._stale_message())
                    self._write_version(
                        using,
                        now,
                        version=self.version + 1,
                        pending=_PendingVersion(self.pk, self.pk),
                        previous=previous,
                    )
            except IntegrityError as error:
                self._raise_if_stale(using, error)
                raise
        self._remember_loaded_values()

    def _save_first_version(self, *args, **kwargs):
        kwargs.pop("update_fields", None)
        kwargs.pop("force_update", None)
        # An explicit pk must never update an existing row in place.
        kwargs["force_insert"] = True
        using = kwargs.get("using") or router.db_for_write(type(self), instance=self)
        with self._unchanged_on_error(), transaction.atomic(using=using):
            self.version = 1
            self.valid_from = timezone.now()
            self.valid_to = None
            self._fill_who_and_why(self._loaded_values_or_empty())
            super().save(*args, **kwargs)
        self._remember_loaded_values()

    @alters_data
    def delete(self, using=None, keep_parents=False):
        """Close the current version; every row stays, history() keeps working."""
        if self._state.adding or self.pk is None:
            raise ValueError(
                f"{self._meta.object_name} object can't be deleted because it "
                "was never saved."
            )
        if self.valid_to is not None:
            raise HistoricalVersionError(
                f"{self._label()} is a historical version; only the current "
                "version can be deleted."
            )
        using = using or router.db_for_write(type(self), instance=self)
        now = max(timezone.now(), self.valid_from)
        if not close_row(type(self), using, now, self.pk):
            raise StaleVersionError(self._stale_message())
        self.valid_to = now
        self._remember_loaded_values(["valid_to"])
        return 1, {self._meta.label: 1}

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
        self._load_deferred_fields(using)
        try:
            with transaction.atomic(using=using):
                latest = (
                    self._identity_versions()
                    .using(using)
                    .select_for_update()
                    .latest("version")
                )
                if latest.valid_to is None and not self.diff(latest):
                    return latest
                now = max(
                    timezone.now(),
                    latest.valid_from,
                    latest.valid_to or latest.valid_from,
                )
                if latest.valid_to is None:
                    if not close_row(type(self), using, now, latest.pk):
                        raise StaleVersionError(latest._stale_message())
                    latest.valid_to = now
                restored = copy.copy(latest)
                for field in data_fields(type(self)):
                    setattr(restored, field.attname, field.value_from_object(self))
                restored._write_version(
                    using,
                    now,
                    version=latest.version + 1,
                    pending=_PendingVersion(latest.pk, self.pk),
                    previous=latest,
                )
        except IntegrityError as error:
            self._raise_if_stale(using, error)
            raise
        restored._remember_loaded_values()
        return restored

    @alters_data
    def purge(self, *, using: str | None = None) -> tuple[int, dict[str, int]]:
        """Really delete every version of this object; see AllVersionsQuerySet.purge."""
        using = using or router.db_for_write(type(self), instance=self)
        return self._identity_versions().using(using).purge()

    def _write_version(self, using, now, *, version, pending, previous) -> None:
        """Insert this object as a new row and fix up what pointed at the old one."""
        self.version = version
        self.valid_from = now
        self.valid_to = None
        self._fill_who_and_why(self._loaded_values_or_empty())
        self._pending_version = pending
        try:
            super().save(using=using, force_insert=True)
        finally:
            self._pending_version = None
        if version_created.has_listeners(type(self)):
            version_created.send(type(self), instance=self, previous=previous)

    def _save_table(self, *args, **kwargs):
        updated = super()._save_table(*args, **kwargs)
        pending = self._pending_version
        if pending is None:
            return updated
        using = self._state.db or router.db_for_write(type(self), instance=self)
        fixup.repoint_referrers(self, pending.replaces_pk, using)
        fixup.copy_m2m_links(type(self), pending.copy_links_from_pk, self.pk, using)
        # A new version of an existing object is an update from the caller's
        # point of view: post_save gets created=False.
        return True

    def _fill_who_and_why(self, loaded: dict) -> None:
        # A value the caller set on the instance wins over the changes() block.
        if self.changed_by_id == loaded.get("changed_by_id"):
            self.changed_by = context.current_user()
        if self.change_reason == loaded.get("change_reason", ""):
            self.change_reason = context.current_reason()

    def _loaded_values_or_empty(self) -> dict:
        return getattr(self, "_loaded_values", {})

    def _load_deferred_fields(self, using) -> None:
        deferred = self.get_deferred_fields()
        if deferred:
            self.refresh_from_db(using=using, fields=list(deferred))

    def _has_data_changes(self, using) -> bool:
        loaded = self._loaded_values_or_empty()
        unknown = []
        for field in data_fields(type(self)):
            attname = field.attname
            if attname not in self.__dict__:  # deferred and never touched
                continue
            if attname not in loaded:
                unknown.append(attname)
            elif self.__dict__[attname] != loaded[attname]:
                return True
        if not unknown:
            return False
        # Values that were fetched without passing through from_db (for
        # example by a peer fetch) are compared with the stored row.
        stored = (
            type(self)
            .all_versions.using(using)
            .filter(pk=self.pk)
            .order_by()
            .values(*unknown)
            .first()
        )
        return stored is None or any(self.__dict__[a] != stored[a] for a in unknown)

    def _closed_copy(self, using, now) -> Versioned | None:
        """The loaded row as it will be stored once closed, for version_created."""
        if not version_created.has_listeners(type(self)):
            return None
        loaded = self._loaded_values_or_empty()
        fields = self._meta.concrete_fields
        values = [loaded.get(f.attname, models.DEFERRED) for f in fields]
        previous = type(self).from_db(using, [f.attname for f in fields], values)
        previous._loaded_values = dict(loaded)
        previous.valid_to = now
        return previous

    def _unchanged_on_error(self):
        return _RestoreOnError(self)

    def _raise_if_stale(self, using, error) -> None:
        """Turn a lost race on the version constraints into StaleVersionError."""
        raced = (
            type(self)
            .all_versions.using(using)
            .filter(identity=self.identity)
            .filter(
                models.Q(version__gt=self.version) | models.Q(valid_to__isnull=True)
            )
            .exclude(pk=self.pk)
            .exists()
        )
        if raced:
            raise StaleVersionError(self._stale_message()) from error

    def _label(self) -> str:
        return f"{self._meta.object_name} {self.identity} version {self.version}"

    def _stale_message(self) -> str:
        return (
            f"{self._label()} is no longer current: a newer version was saved, "
            "or the object was deleted, after it was loaded. Nothing was "
            "written. Load the current version (obj.current_version()), "
            "reapply the change and save again."
        )

    # Validation and checks ---------------------------------------------------

    def validate_constraints(self, exclude=None):
        # valid_to is never a form field, so stock Django would skip every
        # constraint scoped to current rows; those must still be checked.
        if exclude:
            exclude = set(exclude) - {"valid_to"}
        super().validate_constraints(exclude=exclude)

    @classmethod
    def check(cls, **kwargs):
        return [*super().check(**kwargs), *checks.check_versioned_model(cls)]


class _RestoreOnError:
    """Put an instance's bookkeeping back as it was when a write fails."""

    def __init__(self, instance: Versioned) -> None:
        self.instance = instance
        meta = instance._meta
        self.attnames = [meta.pk.attname] + [
            field.attname
            for field in meta.concrete_fields
            if field.name in BOOKKEEPING_FIELD_NAMES
        ]

    def __enter__(self):
        instance = self.instance
        self.saved = {
            a: instance.__dict__[a] for a in self.attnames if a in instance.__dict__
        }
        self.saved_cache = dict(instance._state.fields_cache)
        self.adding = instance._state.adding
        fixup.begin_undo_log(instance)
        return self

    def __exit__(self, exc_type, exc, traceback):
        instance = self.instance
        fixup.end_undo_log(instance, undo=exc_type is not None)
        if exc_type is not None:
            instance.__dict__.update(self.saved)
            instance._state.fields_cache = self.saved_cache
            instance._state.adding = self.adding
        return False


#: Fields whose values are immutable Python objects (str, int, Decimal,
#: datetime, UUID…): their loaded values need no copy to detect a change.
IMMUTABLE_FIELD_TYPES = frozenset(
    {
        "AutoField",
        "BigAutoField",
        "BigIntegerField",
        "BooleanField",
        "CharField",
        "DateField",
        "DateTimeField",
        "DecimalField",
        "DurationField",
        "EmailField",
        "FloatField",
        "ForeignKey",
        "GenericIPAddressField",
        "IntegerField",
        "OneToOneField",
        "PositiveBigIntegerField",
        "PositiveIntegerField",
        "PositiveSmallIntegerField",
        "SlugField",
        "SmallAutoField",
        "SmallIntegerField",
        "TextField",
        "TimeField",
        "URLField",
        "UUIDField",
    }
)


@functools.cache
def mutable_attnames(model: type[Versioned]) -> tuple[str, ...]:
    """Columns whose loaded values are copied, so edits in place count as changes."""
    return tuple(
        field.attname
        for field in model._meta.concrete_fields
        if field.get_internal_type() not in IMMUTABLE_FIELD_TYPES
    )


def copy_mutable_values(model: type[Versioned], values: dict[str, Any]) -> None:
    # Values that can be edited in place (JSON dicts, lists) are copied, so
    # that such an edit still shows up as a change.
    for attname in mutable_attnames(model):
        if attname in values:
            values[attname] = copy.deepcopy(values[attname])


def data_fields(model: type[Versioned]) -> list[models.Field]:
    """The concrete fields that hold an object's data (not the pk, not bookkeeping)."""
    meta = model._meta
    return [
        field
        for field in meta.concrete_fields
        if not field.primary_key and field.name not in BOOKKEEPING_FIELD_NAMES
    ]


def clear_primary_key_for_new_version(sender, instance, raw=False, **kwargs):
    """Make Django insert a new row for a new version instead of updating."""
    if not raw and instance._pending_version is not None:
        instance.pk = None


def prepare_versioned_model(sender, **kwargs):
    if not issubclass(sender, Versioned) or sender._meta.abstract:
        return
    schema.add_version_constraints(sender)
    pre_save.connect(
        clear_primary_key_for_new_version,
        sender=sender,
        dispatch_uid=f"versioning.clear_pk.{sender._meta.label}.{id(sender)}",
    )


class_prepared.connect(prepare_versioned_model)
