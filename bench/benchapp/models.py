"""
One small model kept four ways: no history, versioning, simple-history,
reversion; and the versioned models whose cost growth the benchmark plots.
"""

import uuid

import reversion
from django.conf import settings
from django.db import models
from simple_history.models import HistoricalRecords

from versioning import CurrentIndex
from versioning.models import Versioned


class Fields(models.Model):
    title = models.CharField(max_length=100)
    body = models.TextField()
    counter = models.IntegerField(default=0)

    class Meta:
        abstract = True

    def __str__(self):
        return self.title


class PlainNote(Fields):
    """No history: the floor."""


class VersionedNote(Fields, Versioned):
    """This app."""


class SameColumnsNote(Fields):
    """No history, but a versioned row's columns: the floor for reads."""

    identity = models.UUIDField(default=uuid.uuid4)
    version = models.PositiveIntegerField(default=1)
    valid_from = models.DateTimeField()
    valid_to = models.DateTimeField(null=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    change_reason = models.TextField(default="")


class HistoryNote(Fields):
    """django-simple-history."""

    history = HistoricalRecords()


@reversion.register()
class ReversionNote(Fields):
    """django-reversion."""


class HandNote(Fields):
    """Hand-written versioned rows with the same columns and constraints as ours."""

    identity = models.UUIDField(default=uuid.uuid4)
    version = models.PositiveIntegerField(default=1)
    valid_from = models.DateTimeField()
    valid_to = models.DateTimeField(null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["identity"],
                condition=models.Q(valid_to__isnull=True),
                name="handnote_current",
            ),
            models.UniqueConstraint(
                fields=["identity", "version"], name="handnote_version"
            ),
        ]
        indexes = [
            models.Index(fields=["valid_from", "valid_to"], name="handnote_asof")
        ]


class Growth(Fields, Versioned):
    """
    A versioned note with a data field looked up among current rows only.
    One table per history depth, so that every depth is measured in the
    same rounds.
    """

    code = models.CharField(max_length=40)

    class Meta:
        abstract = True
        # Current rows only: a lookup by code reads no history.
        indexes = [CurrentIndex(fields=["code"], name="%(class)s_code")]


class GrowthDepth1(Growth):
    """Objects of 1 version each."""


class GrowthDepth10(Growth):
    """Objects of 10 versions each."""


class GrowthDepth100(Growth):
    """Objects of 100 versions each."""


class GrowthDepth1000(Growth):
    """Objects of 1,000 versions each."""
